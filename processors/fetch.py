"""TRANSCRIPT_FETCH: download a session's transcript, safely and with every failure classified."""

from __future__ import annotations

import base64
import hashlib
import http.client
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from domain.company import Company, CredentialRef
from domain.payloads import FetchedTranscript
from domain.session import Session
from domain.stages import Stage
from processors.base import StageError, WorkContext
from processors.clock import utc_now
from processors.credentials import CredentialError, resolve_password
from processors.http_get import BodyDecodingError, BodyTooLarge, HttpGetClient, Response
from processors.netguard import AllowList, BlockedAddress, check_host

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class FetchSettings:
    timeout: float = 30.0
    connect_timeout: float = 10.0
    max_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    allow: AllowList = field(default_factory=lambda: AllowList.parse([]))
    user_agent: str = "LiveDash-Pipeline/0.1 (transcript fetcher)"


@dataclass(frozen=True)
class FetchInputs:
    raw_url: str
    csv_source: str
    username: str | None
    password_ref: CredentialRef | None


def is_local_source(csv_source: str) -> bool:
    return "://" not in csv_source or csv_source.startswith("file://")


def local_path(source: str) -> Path:
    if source.startswith("file://"):
        return Path(unquote(urlsplit(source).path))
    return Path(source)


def resolve_url(raw: str, csv_source: str) -> str | Path:
    """An absolute http(s) URL, or a local path for file URLs and paths relative to a local CSV.

    Raises StageError("bad_url") for anything we will not fetch.
    """
    raw = raw.strip()
    try:
        parts = urlsplit(raw)
        _ = parts.port  # raises for a port out of range
    except ValueError as e:
        raise StageError("bad_url", f"invalid URL {raw!r}: {e}", retryable=False) from None
    scheme = parts.scheme.lower()
    local = is_local_source(csv_source)
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise StageError("bad_url", f"URL without a host: {raw!r}", retryable=False)
        return raw
    if scheme == "file" or (not scheme and local):
        if not local:
            raise StageError(
                "bad_url",
                "file URLs are only allowed for companies whose CSV source is a local file",
                retryable=False,
            )
        base = local_path(csv_source).resolve().parent
        path = Path(unquote(urlsplit(raw).path)) if scheme == "file" else base / raw
        path = path.resolve()
        if not path.is_relative_to(base):
            raise StageError(
                "bad_url",
                f"{raw!r} points outside the CSV file's directory {base}",
                retryable=False,
            )
        return path
    if not scheme:
        return urljoin(csv_source, raw)
    raise StageError("bad_url", f"unsupported URL scheme {scheme!r} in {raw!r}", retryable=False)


class TranscriptFetchProcessor:
    stage = Stage.TRANSCRIPT_FETCH

    def __init__(
        self,
        settings: FetchSettings,
        env: Mapping[str, str],
        client: HttpGetClient | None = None,
    ) -> None:
        self.settings = settings
        self.env = env
        self.client = client or HttpGetClient(
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.timeout,
            headers={"User-Agent": settings.user_agent},
        )

    def close(self) -> None:
        self.client.close()

    def prepare(self, session: Session, company: Company) -> FetchInputs:
        assert session.row.transcript_url, "skip rule should have skipped a row without URL"
        return FetchInputs(
            raw_url=session.row.transcript_url,
            csv_source=company.csv_url,
            username=company.username,
            password_ref=company.password_ref,
        )

    def run(self, inputs: FetchInputs, ctx: WorkContext | None = None) -> FetchedTranscript:
        target = resolve_url(inputs.raw_url, inputs.csv_source)
        if isinstance(target, Path):
            return self._read_file(target)
        guard = not is_local_source(inputs.csv_source)
        return self._get(target, inputs, guard)

    def record(
        self, session: Session, attempt: int, output: FetchedTranscript, now: datetime
    ) -> None:
        session.record_transcript(
            attempt,
            output,
            now,
            {"size": output.size, "sha256": output.sha256, "content_type": output.content_type},
        )

    # ------------------------------------------------------------------ local
    def _read_file(self, path: Path) -> FetchedTranscript:
        if path.exists() and not path.is_file():
            raise StageError("not_found", f"{path} is not a file", retryable=False)
        try:
            size = path.stat().st_size
            if size > self.settings.max_bytes:
                raise StageError(
                    "too_large",
                    f"transcript is {size} bytes, over the {self.settings.max_bytes} byte cap",
                    retryable=False,
                )
            data = path.read_bytes()
        except FileNotFoundError:
            raise StageError(
                "not_found", f"no transcript file at {path}", retryable=False
            ) from None
        except OSError as e:
            raise StageError(
                "io_error", f"cannot read {path}: {e.strerror}", retryable=True
            ) from None
        return self._transcript(path.as_uri(), data, "text/plain")

    # ------------------------------------------------------------------- http
    def _get(self, url: str, inputs: FetchInputs, guard: bool) -> FetchedTranscript:
        headers = self._auth(inputs)
        deadline = time.monotonic() + self.settings.timeout
        for _hop in range(self.settings.max_redirects + 1):
            try:
                addresses = self._guard(url) if guard else None
                with self.client.get(url, headers, addresses) as response:
                    if response.is_redirect:
                        url = self._redirect_target(url, response)
                        continue
                    self._check_status(response)
                    data = self._read_capped(response, deadline)
                    content_type = response.headers.get("content-type")
                    return self._transcript(url, data, content_type, response.charset)
            except BodyDecodingError as e:
                raise StageError(
                    "bad_encoding", f"cannot decode {url}: {e}", retryable=False
                ) from None
            except ssl.SSLCertVerificationError as e:
                raise StageError(
                    "tls_error",
                    f"certificate of {url} not accepted: {e.verify_message}",
                    retryable=False,
                ) from None
            except TimeoutError as e:
                raise StageError(
                    "timeout", f"timed out fetching {url}: {e or 'no answer'}", retryable=True
                ) from None
            except (ValueError, http.client.InvalidURL) as e:  # bad port, control character
                raise StageError("bad_url", f"invalid URL {url!r}: {e}", retryable=False) from None
            except (OSError, http.client.HTTPException) as e:
                raise StageError(
                    "connection_error", f"cannot fetch {url}: {type(e).__name__}: {e}", True
                ) from None
        raise StageError(
            "too_many_redirects",
            f"more than {self.settings.max_redirects} redirects starting at {inputs.raw_url}",
            retryable=False,
        )

    @staticmethod
    def _redirect_target(url: str, response: Response) -> str:
        location = response.headers.get("location")
        if not location:
            raise StageError(
                "bad_redirect", f"HTTP {response.status} without Location", retryable=False
            )
        target = urljoin(url, location)
        if urlsplit(target).scheme not in ("http", "https"):
            raise StageError("bad_url", f"redirect to {target!r}", retryable=False)
        return target

    def _auth(self, inputs: FetchInputs) -> dict[str, str]:
        if not inputs.username:
            return {}
        try:
            password = resolve_password(inputs.password_ref, self.env)
        except CredentialError as e:
            raise StageError("credentials", str(e), retryable=False) from None
        pair = f"{inputs.username}:{password or ''}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}

    def _guard(self, url: str) -> list[str] | None:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            return check_host(parts.hostname or "", port, self.settings.allow)
        except BlockedAddress as e:
            raise StageError("blocked_address", str(e), retryable=False) from None
        except OSError as e:
            raise StageError("dns_error", str(e), retryable=True) from None

    @staticmethod
    def _check_status(response: Response) -> None:
        code = response.status
        if 200 <= code < 300:
            return
        reason = f"HTTP {code} {response.reason}".strip()
        if code in (401, 403):
            raise StageError(
                f"http_{code}",
                f"{reason}: check the company's --username and password reference "
                "(transcripts use the CSV credentials)",
                retryable=False,
            )
        if code in RETRYABLE_STATUS:
            raise StageError(
                f"http_{code}", reason, retryable=True, retry_after=_retry_after(response.headers)
            )
        raise StageError(f"http_{code}", reason, retryable=code >= 500)

    def _read_capped(self, response: Response, deadline: float) -> bytes:
        cap = self.settings.max_bytes
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise StageError(
                "too_large", f"transcript is {declared} bytes, over the {cap} byte cap", False
            )
        chunks: list[bytes] = []
        try:
            for chunk in response.iter_decoded(cap):
                if time.monotonic() > deadline:
                    raise StageError("timeout", "transcript download took too long", True)
                chunks.append(chunk)
        except BodyTooLarge:
            raise StageError(
                "too_large", f"transcript exceeds the {cap} byte cap", retryable=False
            ) from None
        return b"".join(chunks)

    @staticmethod
    def _transcript(
        url: str, data: bytes, content_type: str | None, encoding: str | None = None
    ) -> FetchedTranscript:
        if not data.strip():
            raise StageError("empty", "transcript is empty", retryable=False)
        try:
            text = data.decode(encoding or "utf-8")
        except (UnicodeDecodeError, LookupError):
            text = data.decode("utf-8", errors="replace")
        return FetchedTranscript(
            url=url,
            text=text,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            content_type=content_type,
            fetched_at=utc_now(),
        )


def _retry_after(headers: Mapping[str, Any] | Message) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - utc_now()).total_seconds())
