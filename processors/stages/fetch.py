"""TRANSCRIPT_FETCH: download a session's transcript, safely and with every failure classified.

The company's password goes only to the origin of its CSV source and to the origins the
operator listed (`company update --auth-scope`), never over plain http to a non-loopback host
unless allowed, and never along a redirect to another origin. Each fetch has one deadline,
connect to last byte, and each host at most `per_host` fetches at once, so one slow or
hostile host cannot take every slot of the stage.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import ipaddress
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from domain.company import Company, CredentialRef
from domain.payloads import FetchedTranscript
from domain.session import Session
from domain.stages import Stage
from domain.urls import Origin, format_origin, has_userinfo, origin_of, redact, without_userinfo
from processors.clock import utc_now
from processors.net.credentials import CredentialError, SecretResolver, resolve_password
from processors.net.http_get import BodyDecodingError, BodyTooLarge, HttpGetClient, Response
from processors.net.netguard import (
    LOOKUPS,
    AllowList,
    BlockedAddress,
    check_host,
    is_loopback,
    resolve,
)
from processors.net.retry_after import RETRYABLE_STATUS, retry_after_seconds
from processors.stages.base import StageError, WorkContext, WorkReleased


@dataclass(frozen=True)
class FetchSettings:
    timeout: float = 30.0
    """Total seconds for one fetch, connect to last byte, redirects included."""
    connect_timeout: float = 10.0
    max_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    allow: AllowList = field(default_factory=lambda: AllowList.parse([]))
    user_agent: str = "LiveDash-Pipeline/0.1 (transcript fetcher)"
    per_host: int = 4
    """Fetches from one host at once; more wait ``host_wait`` and are then handed back."""
    host_wait: float = 2.0
    """Long enough that a host answering in normal time frees a slot first (no hand-back);
    short enough that a slow host's waiters leave their pool threads to other hosts soon."""


HOST_BUSY = "host_busy"
"""A fetch handed back unstarted because its host had no free slot: nothing was sent."""


@dataclass(frozen=True)
class FetchInputs:
    raw_url: str
    csv_source: str
    username: str | None
    password_ref: CredentialRef | None
    auth_scope: tuple[str, ...] = ()
    """Origins besides the CSV source's own that may receive the credentials."""
    allow_plain_http_auth: bool = False


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
    if has_userinfo(raw):
        raise StageError(
            "bad_url",
            f"transcript URL {redact(raw)} has a user name or password in it: not fetched, so "
            "it cannot reach another host; remove it from the export (the company's "
            "--username/--password-env are sent to its own origins)",
            retryable=False,
        )
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
        secrets: SecretResolver,
        client: HttpGetClient | None = None,
    ) -> None:
        self.settings = settings
        self.secrets = secrets
        self.hosts = HostSlots(settings.per_host)
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
            auth_scope=tuple(company.auth_scope),
            allow_plain_http_auth=company.allow_plain_http_auth,
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
        deadline = time.monotonic() + self.settings.timeout
        scope = auth_origins(inputs)
        credentials: dict[str, str] | None = None  # resolved when first needed
        for _hop in range(self.settings.max_redirects + 1):
            shown = redact(url)
            origin = origin_of(url)
            headers: dict[str, str] = {}
            if inputs.username and origin is not None and origin in scope:
                self._check_transport(origin, inputs)
                credentials = credentials if credentials is not None else self._auth(inputs)
                headers = credentials
            host = origin[1] if origin else ""
            self._take_host(host, deadline)
            try:
                addresses = self._addresses(url, guard, deadline)
                with self.client.get(url, headers, addresses, deadline) as response:
                    if response.is_redirect:
                        # The next hop gets the credentials only if its origin is in scope.
                        url = self._redirect_target(url, response)
                        continue
                    self._check_status(response, bool(headers), bool(inputs.username))
                    data = self._read_capped(response, deadline)
                    content_type = response.headers.get("content-type")
                    return self._transcript(url, data, content_type, response.charset)
            except BodyDecodingError as e:
                raise StageError(
                    "bad_encoding", f"cannot decode {shown}: {e}", retryable=False
                ) from None
            except ssl.SSLCertVerificationError as e:
                raise StageError(
                    "tls_error",
                    f"certificate of {shown} not accepted: {e.verify_message}",
                    retryable=False,
                ) from None
            except TimeoutError as e:
                raise StageError(
                    "timeout", f"timed out fetching {shown}: {e or 'no answer'}", retryable=True
                ) from None
            except (ValueError, http.client.InvalidURL) as e:  # bad port, control character
                raise StageError(
                    "bad_url", f"invalid URL {shown!r}: {redact(str(e))}", retryable=False
                ) from None
            except (OSError, http.client.HTTPException) as e:
                if time.monotonic() >= deadline:
                    raise StageError(
                        "timeout", f"timed out fetching {shown}: {type(e).__name__}", True
                    ) from None
                raise StageError(
                    "connection_error",
                    f"cannot fetch {shown}: {type(e).__name__}: {redact(str(e))}",
                    True,
                ) from None
            finally:
                self.hosts.release(host)
        raise StageError(
            "too_many_redirects",
            f"more than {self.settings.max_redirects} redirects starting at "
            f"{redact(inputs.raw_url)}",
            retryable=False,
        )

    def _take_host(self, host: str, deadline: float) -> None:
        """A slot for ``host``, waiting briefly: a fetch that cannot start soon is handed
        back unstarted (no attempt used, nothing sent), so its pool thread serves other hosts
        meanwhile."""
        wait = max(0.0, min(self.settings.host_wait, deadline - time.monotonic()))
        if not self.hosts.acquire(host, wait):
            raise WorkReleased(
                f"{HOST_BUSY}: {self.settings.per_host} fetches from {host} are running "
                "already; handed back without a request"
            )

    @staticmethod
    def _check_transport(origin: Origin, inputs: FetchInputs) -> None:
        scheme, host, _port = origin
        if scheme == "http" and not is_loopback(host) and not inputs.allow_plain_http_auth:
            raise StageError(
                "insecure_credentials",
                f"refusing to send the company's password over plain http to "
                f"{format_origin(origin)}; use https, or allow it with "
                "`livedash company update NAME --allow-plain-http-auth`",
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
            raise StageError("bad_url", f"redirect to {redact(target)!r}", retryable=False)
        return without_userinfo(target)  # never sent, never stored

    def _auth(self, inputs: FetchInputs) -> dict[str, str]:
        if not inputs.username:
            return {}
        try:
            password = resolve_password(inputs.password_ref, self.secrets)
        except CredentialError as e:
            raise StageError("credentials", str(e), retryable=False) from None
        pair = f"{inputs.username}:{password or ''}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}

    def _addresses(self, url: str, guard: bool, deadline: float) -> list[str]:
        """The addresses to connect to, looked up within the deadline: vetted by the SSRF
        guard for a remote CSV's URLs, as resolved otherwise (or for hosts allowed by name)."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)

        def lookup() -> list[str]:
            vetted = check_host(host, port, self.settings.allow) if guard else None
            return vetted if vetted is not None else resolve(host, port)

        try:
            if _is_address(host):  # nothing to look up: no hand-off to a lookup thread
                return lookup()
            return LOOKUPS.run(lookup, deadline - time.monotonic())
        except BlockedAddress as e:
            raise StageError("blocked_address", str(e), retryable=False) from None
        except TimeoutError:
            raise StageError("timeout", f"looking up {host} took too long", True) from None
        except OSError as e:
            raise StageError("dns_error", str(e), retryable=True) from None

    @staticmethod
    def _check_status(response: Response, sent_auth: bool, has_auth: bool) -> None:
        code = response.status
        if 200 <= code < 300:
            return
        reason = f"HTTP {code} {response.reason}".strip()
        if code in (401, 403):
            hint = (
                "the company's credentials go only to its CSV source's origin and its "
                "--auth-scope; add this host's origin there if it should get them"
                if has_auth and not sent_auth
                else "check the company's --username and password reference "
                "(transcripts use the CSV credentials)"
            )
            raise StageError(f"http_{code}", f"{reason}: {hint}", retryable=False)
        if code in RETRYABLE_STATUS:
            raise StageError(
                f"http_{code}",
                reason,
                retryable=True,
                retry_after=retry_after_seconds(response.headers),
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
        text = decode_transcript(data, encoding)
        return FetchedTranscript(
            url=url,
            text=text,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            content_type=content_type,
            fetched_at=utc_now(),
        )


def decode_transcript(data: bytes, charset: str | None) -> str:
    """The text in its declared charset, else UTF-8; never with replacement characters: an
    undecodable transcript is a recorded, permanent `invalid_encoding` failure."""
    name = charset or "utf-8"
    try:
        return data.decode(name)
    except LookupError:
        name = f"utf-8 (declared charset {charset!r} is unknown)"
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            error = e
    except UnicodeDecodeError as e:
        error = e
    bad = data[error.start : error.start + 4].hex(" ")
    raise StageError(
        "invalid_encoding",
        f"transcript is not valid {name}: bytes {bad} at offset {error.start} "
        f"({error.reason}); declare its charset in Content-Type or re-export it as UTF-8",
        retryable=False,
        details={"offset": error.start, "charset": charset},
    )


def auth_origins(inputs: FetchInputs) -> frozenset[Origin]:
    """Where the credentials may go: the CSV source's origin and the operator's scope."""
    candidates = [origin_of(o) for o in inputs.auth_scope]
    if not is_local_source(inputs.csv_source):
        candidates.append(origin_of(inputs.csv_source))
    return frozenset(o for o in candidates if o is not None)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class HostSlots:
    """At most ``per_host`` holders per host name at once."""

    def __init__(self, per_host: int) -> None:
        self.per_host = max(1, per_host)
        self._busy: dict[str, int] = {}
        self._freed = threading.Condition()

    def acquire(self, host: str, timeout: float) -> bool:
        with self._freed:
            if not self._freed.wait_for(
                lambda: self._busy.get(host, 0) < self.per_host, timeout=timeout
            ):
                return False
            self._busy[host] = self._busy.get(host, 0) + 1
            return True

    def release(self, host: str) -> None:
        with self._freed:
            left = self._busy.get(host, 0) - 1
            if left > 0:
                self._busy[host] = left
            else:
                self._busy.pop(host, None)
            self._freed.notify_all()

    def busy(self, host: str) -> int:
        with self._freed:
            return self._busy.get(host, 0)
