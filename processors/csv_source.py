"""Reading a company's CSV source: a local file or HTTP(S) with Basic auth, timeouts, retries
and a conditional GET, so an unchanged export costs one small request and writes no events."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from domain.company import Company
from domain.urls import format_origin, has_userinfo, origin_of, redact, refuse_userinfo
from processors.credentials import CredentialError, resolve_password
from processors.fetch import is_local_source, is_loopback, local_path

RETRYABLE = {408, 425, 429, 500, 502, 503, 504}


class SourceError(Exception):
    def __init__(
        self, message: str, http_status: int | None = None, source: str | None = None
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.source = source
        """What was being read, when it is not the company's own CSV source."""


@dataclass(frozen=True)
class SourceData:
    data: bytes | None
    """None when the source said (or its content showed) that nothing changed."""
    source: str
    sha256: str | None
    http_status: int | None = None
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.data is None


class CsvSource:
    def __init__(
        self,
        env: Mapping[str, str],
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        attempts: int = 3,
        backoff: float = 1.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.env = env
        self.attempts = attempts
        self.backoff = backoff
        self.client = client or httpx.Client(
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            follow_redirects=True,
            max_redirects=5,
            headers={"User-Agent": "LiveDash-Pipeline/0.1 (csv import)"},
        )

    def close(self) -> None:
        self.client.close()

    def read(self, company: Company, force: bool = False) -> SourceData:
        if is_local_source(company.csv_url):
            return self._read_file(company, force)
        return self._get(company, force)

    def _read_file(self, company: Company, force: bool) -> SourceData:
        path = local_path(company.csv_url)
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise SourceError(f"cannot read {path}: {e.strerror}") from None
        digest = hashlib.sha256(data).hexdigest()
        if not force and digest == company.content_sha256:
            return SourceData(None, str(path), digest)
        return SourceData(data, str(path), digest)

    @staticmethod
    def _check_url(company: Company) -> None:
        """A password in the URL (registered before it was refused) is never used or shown;
        credentials never travel over plain http to another machine unless allowed."""
        url = company.csv_url
        if has_userinfo(url):
            try:
                refuse_userinfo(url, "CSV source")
            except ValueError as e:
                raise SourceError(
                    f"{e} (`livedash company update {company.name} --csv-url ...`)",
                    source=redact(url),
                ) from None
        origin = origin_of(url)
        if (
            company.username
            and origin is not None
            and origin[0] == "http"
            and not is_loopback(origin[1])
            and not company.allow_plain_http_auth
        ):
            raise SourceError(
                f"refusing to send the password of {company.username!r} over plain http to "
                f"{format_origin(origin)}; use https, or allow it with "
                f"`livedash company update {company.name} --allow-plain-http-auth`"
            )

    def _get(self, company: Company, force: bool) -> SourceData:
        self._check_url(company)
        headers: dict[str, str] = {}
        if not force:
            if company.etag:
                headers["If-None-Match"] = company.etag
            if company.last_modified:
                headers["If-Modified-Since"] = company.last_modified
        auth = None
        if company.username:
            try:
                password = resolve_password(company.password_ref, self.env)
            except CredentialError as e:
                raise SourceError(str(e)) from None
            auth = httpx.BasicAuth(company.username, password or "")
        last_error = "no attempt made"
        for attempt in range(1, self.attempts + 1):
            try:
                response = self.client.get(company.csv_url, headers=headers, auth=auth)
            except httpx.HTTPError as e:
                last_error = redact(f"{type(e).__name__}: {e}")
                status = None
            else:
                status = response.status_code
                if status == 304:
                    return SourceData(
                        None,
                        company.csv_url,
                        company.content_sha256,
                        304,
                        company.etag,
                        company.last_modified,
                    )
                if 200 <= status < 300:
                    data = response.content
                    digest = hashlib.sha256(data).hexdigest()
                    unchanged = not force and digest == company.content_sha256
                    return SourceData(
                        None if unchanged else data,
                        company.csv_url,
                        digest,
                        status,
                        response.headers.get("etag"),
                        response.headers.get("last-modified"),
                    )
                last_error = f"HTTP {status} {response.reason_phrase}".strip()
                if status in (401, 403):
                    raise SourceError(
                        f"{last_error}: check the company's --username and password reference",
                        status,
                    )
                if status not in RETRYABLE:
                    raise SourceError(last_error, status)
            if attempt < self.attempts:
                time.sleep(self.backoff * 2 ** (attempt - 1))
        raise SourceError(
            f"{redact(company.csv_url)}: {last_error} (after {self.attempts} attempts)", status
        )
