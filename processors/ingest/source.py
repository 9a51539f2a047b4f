"""Reading a company's CSV source: a local file or HTTP(S) with Basic auth, timeouts, retries
and a conditional GET, so an unchanged export costs one small request and writes no events.

Every source is read as a stream and bounded: at most ``max_bytes`` (the content, after any
transfer decoding) and, for streams, at most ``max_seconds``. What was read is a seekable
`CsvBody` (the local file itself, or a temporary copy of a stream that spills to disk), never
one big bytes object, so `/dev/zero`, a FIFO or an endless HTTP body ends in a one-line error
instead of in all the machine's memory.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import os
import select
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self
from urllib.parse import urljoin, urlsplit

from domain.company import Company
from domain.urls import (
    format_origin,
    has_userinfo,
    origin_of,
    redact,
    refuse_userinfo,
    without_userinfo,
)
from processors.net.credentials import CredentialError, SecretResolver, resolve_password
from processors.net.http_get import BodyDecodingError, BodyTooLarge, HttpGetClient, Response
from processors.net.netguard import is_loopback
from processors.net.retry_after import RETRYABLE_STATUS, retry_after_seconds
from processors.stages.fetch import is_local_source, local_path

DEFAULT_MAX_CSV_BYTES = 1 << 30
"""1 GiB: far above any real export (a million rows is ~250 MB), far below a machine's memory."""
DEFAULT_MAX_SECONDS = 1800.0
"""How long reading one streamed source (HTTP, pipe) may take in all, whatever it sends."""
CHUNK = 1 << 20
SPOOL_IN_MEMORY = 8 << 20
"""A streamed source up to this size stays in memory; a larger one goes to a temporary file."""


class SourceError(Exception):
    def __init__(
        self, message: str, http_status: int | None = None, source: str | None = None
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.source = source
        """What was being read, when it is not the company's own CSV source."""


def too_large(what: str, max_bytes: int) -> SourceError:
    return SourceError(
        f"{what} is larger than the limit of {max_bytes} bytes "
        "(raise it with --max-csv-bytes or LIVEDASH_MAX_CSV_BYTES)",
        source=what,
    )


class CsvBody:
    """The bytes of one export, read to the end: ``size`` bytes in a seekable file."""

    def __init__(self, file: IO[bytes], size: int) -> None:
        self.file = file
        self.size = size

    def chunks(self) -> Iterator[bytes]:
        self.file.seek(0)
        while chunk := self.file.read(CHUNK):
            yield chunk

    def text(self, encoding: str) -> io.TextIOWrapper:
        """The content as text, line breaks untranslated (the parser keeps raw lines)."""
        self.file.seek(0)
        raw = io.BufferedReader(_Unclosed(self.file), CHUNK)
        return io.TextIOWrapper(raw, encoding=encoding, errors="strict", newline="")

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Unclosed(io.RawIOBase):
    """Lends a file to a TextIOWrapper without letting the wrapper close it."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@dataclass(frozen=True)
class SourceData:
    body: CsvBody | None
    """None when the source said (or its content showed) that nothing changed."""
    source: str
    sha256: str | None
    http_status: int | None = None
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.body is None

    @property
    def size(self) -> int:
        return self.body.size if self.body else 0

    def close(self) -> None:
        if self.body is not None:
            self.body.close()


class _Spool:
    """Copies a stream into a temporary file, counting and hashing, refusing past the cap."""

    def __init__(self, what: str, max_bytes: int, max_seconds: float) -> None:
        self.what = what
        self.max_bytes = max_bytes
        self.deadline = time.monotonic() + max_seconds
        self.max_seconds = max_seconds
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise too_large(self.what, self.max_bytes)
        if time.monotonic() > self.deadline:
            raise SourceError(
                f"{self.what}: still sending after {self.max_seconds:g} s ({self.size} bytes)",
                source=self.what,
            )
        self.sha.update(chunk)
        self.file.write(chunk)

    def body(self) -> CsvBody:
        return CsvBody(self.file, self.size)

    def close(self) -> None:
        self.file.close()


def read_local(
    path: Path,
    max_bytes: int = DEFAULT_MAX_CSV_BYTES,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    idle_timeout: float = 60.0,
) -> tuple[CsvBody, str]:
    """A local source and its SHA-256. A regular file is read in place (checked against the
    cap by its size, then hashed as a stream); anything else (a FIFO, a device) is copied
    within the cap and the deadlines. Opening never blocks, even on a FIFO without a writer."""
    what = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise SourceError(f"cannot read {path}: {e.strerror}", source=what) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise SourceError(f"cannot read {path}: it is a directory", source=what)
        if stat.S_ISREG(mode):
            os.set_blocking(fd, True)
            file = os.fdopen(fd, "rb")
            fd = -1
            return _regular(file, what, max_bytes)
        spool = _Spool(what, max_bytes, max_seconds)
        try:
            _copy_stream(fd, spool, what, idle_timeout)
        except BaseException:
            spool.close()
            raise
        return spool.body(), spool.sha.hexdigest()
    finally:
        if fd >= 0:
            os.close(fd)


def _regular(file: IO[bytes], what: str, max_bytes: int) -> tuple[CsvBody, str]:
    try:
        if os.fstat(file.fileno()).st_size > max_bytes:
            raise too_large(what, max_bytes)
        sha = hashlib.sha256()
        size = 0
        while chunk := file.read(CHUNK):
            size += len(chunk)
            if size > max_bytes:  # it grew while we read
                raise too_large(what, max_bytes)
            sha.update(chunk)
    except OSError as e:
        file.close()
        raise SourceError(f"cannot read {what}: {e.strerror}", source=what) from None
    except BaseException:
        file.close()
        raise
    return CsvBody(file, size), sha.hexdigest()


def _copy_stream(fd: int, spool: _Spool, what: str, idle_timeout: float) -> None:
    """A pipe or device until its end, the cap or a deadline: a writer that stops writing
    without closing costs ``idle_timeout``, one that never stops costs the cap."""
    while True:
        left = spool.deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, min(idle_timeout, left)))
        if not ready:
            if left <= idle_timeout:
                raise SourceError(
                    f"{what}: still open after {spool.max_seconds:g} s ({spool.size} bytes)",
                    source=what,
                )
            raise SourceError(f"{what}: no data for {idle_timeout:g} s", source=what)
        try:
            chunk = os.read(fd, CHUNK)
        except BlockingIOError:
            continue
        except OSError as e:
            raise SourceError(f"cannot read {what}: {e.strerror}", source=what) from None
        if not chunk:
            return
        spool.write(chunk)


MAX_REDIRECTS = 5
MAX_RETRY_WAIT = 30.0
"""The longest a server's Retry-After makes one import wait before its next attempt."""
RETRIED = (OSError, http.client.HTTPException, BodyDecodingError)
"""What a failed attempt raises that may pass: no answer, a broken answer, a mangled body."""


class CsvSource:
    def __init__(
        self,
        secrets: SecretResolver,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        attempts: int = 3,
        backoff: float = 1.0,
        client: HttpGetClient | None = None,
        max_bytes: int = DEFAULT_MAX_CSV_BYTES,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        max_retry_wait: float = MAX_RETRY_WAIT,
    ) -> None:
        self.secrets = secrets
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.max_retry_wait = max_retry_wait
        # The transcript fetcher's pooled client: a third of httpx's CPU per request
        # (scripts/bench_http.py, docs/performance.md).
        self.client = client or HttpGetClient(
            connect_timeout=connect_timeout,
            read_timeout=timeout,
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
            body, digest = read_local(Path(path), self.max_bytes, self.max_seconds, self.timeout)
        except SourceError as e:
            raise SourceError(str(e)) from None  # the company's own source: no `source`
        if not force and digest == company.content_sha256:
            body.close()
            return SourceData(None, str(path), digest)
        return SourceData(body, str(path), digest)

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
        auth: dict[str, str] = {}
        if company.username:
            try:
                password = resolve_password(company.password_ref, self.secrets)
            except CredentialError as e:
                raise SourceError(str(e)) from None
            pair = f"{company.username}:{password or ''}".encode()
            auth = {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        last_error = "no attempt made"
        status: int | None = None
        for attempt in range(1, self.attempts + 1):
            wait = self.backoff * 2 ** (attempt - 1)
            try:
                result = self._attempt(company, headers, auth, force)
            except RETRIED as e:
                last_error = redact(f"{type(e).__name__}: {e}")
                status = None
            else:
                if isinstance(result, SourceData):
                    return result
                status, last_error, asked = result
                if status in (401, 403):
                    raise SourceError(
                        f"{last_error}: check the company's --username and password reference",
                        status,
                    )
                if status not in RETRYABLE_STATUS:
                    raise SourceError(last_error, status)
                if asked is not None:
                    wait = max(wait, min(asked, self.max_retry_wait))
            if attempt < self.attempts:
                time.sleep(wait)
        raise SourceError(
            f"{redact(company.csv_url)}: {last_error} (after {self.attempts} attempts)", status
        )

    def _attempt(
        self, company: Company, headers: dict[str, str], auth: dict[str, str], force: bool
    ) -> SourceData | tuple[int, str, float | None]:
        """One GET, following up to MAX_REDIRECTS redirects: the data, or the status, reason
        and asked-for wait of a failure to judge. The credentials go only to the source's own
        origin (or its https upgrade), never along a redirect to another."""
        url = company.csv_url
        deadline = time.monotonic() + self.max_seconds
        for _hop in range(MAX_REDIRECTS + 1):
            sent = {**headers, **auth} if _same_site(company.csv_url, url) else headers
            try:
                with self.client.get(url, sent, deadline=deadline) as response:
                    location = response.headers.get("location")
                    if response.is_redirect and location:
                        url = _redirect_target(url, location)
                        continue
                    return self._receive(company, response, force)
            except BodyTooLarge:
                raise too_large(company.csv_url, self.max_bytes) from None
            except (ValueError, http.client.InvalidURL) as e:
                raise SourceError(f"invalid URL {redact(url)!r}: {redact(str(e))}") from None
            except TimeoutError:
                if time.monotonic() < deadline:
                    raise
                raise SourceError(
                    f"{company.csv_url}: still sending after {self.max_seconds:g} s",
                    source=company.csv_url,
                ) from None
        raise SourceError(
            f"{redact(company.csv_url)}: more than {MAX_REDIRECTS} redirects (last to "
            f"{redact(url)})"
        )

    def _receive(
        self, company: Company, response: Response, force: bool
    ) -> SourceData | tuple[int, str, float | None]:
        url = company.csv_url
        status = response.status
        if status == 304:
            return SourceData(
                None, url, company.content_sha256, 304, company.etag, company.last_modified
            )
        if not 200 <= status < 300:
            reason = f"HTTP {status} {response.reason}".strip()
            return status, reason, retry_after_seconds(response.headers)
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            raise too_large(url, self.max_bytes)
        spool = _Spool(url, self.max_bytes, self.max_seconds)
        try:
            for chunk in response.iter_decoded(self.max_bytes):
                spool.write(chunk)
        except BaseException:
            spool.close()
            raise
        digest = spool.sha.hexdigest()
        if not force and digest == company.content_sha256:
            spool.close()
            body = None
        else:
            body = spool.body()
        return SourceData(
            body,
            url,
            digest,
            status,
            response.headers.get("etag"),
            response.headers.get("last-modified"),
        )


def _redirect_target(url: str, location: str) -> str:
    target = urljoin(url, location)
    if urlsplit(target).scheme.lower() not in ("http", "https"):
        raise SourceError(f"{redact(url)}: redirect to {redact(target)!r} refused")
    return without_userinfo(target)  # never sent, never stored


def _same_site(source: str, url: str) -> bool:
    """The source's own origin, or its upgrade from http to https on the default ports."""
    home, there = origin_of(source), origin_of(url)
    if home is None or there is None:
        return False
    return there == home or (home == ("http", there[1], 80) and there == ("https", home[1], 443))
