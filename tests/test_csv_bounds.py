"""Every CSV source is bounded: an endless HTTP body, /dev/zero and a FIFO that never stops
end with one error line and exit 4, and the parser reads record by record, so neither a
large file nor a line without end is ever held whole."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.errors import ExitCode
from domain.company import Company
from domain.csv_rows import (
    MAX_LINE_CHARS,
    CsvFormatError,
    CsvRowStream,
    RowRejection,
    SourceRow,
    choose_encoding,
)
from processors.ingest.source import CsvSource, SourceError, read_local
from tests.conftest import CliResult, Livedash
from tests.factories import Clock
from tests.servers import Route, RouteServer, huge
from tests.test_csv_rows import line

CAP = 64 * 1024


def _one_line_error(result: CliResult, *needles: str) -> None:
    assert result.code == ExitCode.SOURCE, (result.code, result.stdout, result.stderr)
    errors = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def _add(livedash: Livedash, url: str) -> None:
    livedash("init")
    livedash("company", "add", "Acme", "--csv-url", url)


# ------------------------------------------------------------------------------ sources


def test_an_endless_http_body_ends_at_the_cap(livedash: Livedash) -> None:
    # Without Content-Length, 1 TB of filler: the server stops when the client hangs up.
    with RouteServer({"/export.csv": huge(10**12, chunk_size=16 * 1024)}) as server:
        _add(livedash, server.url("/export.csv"))
        result = livedash(
            "import", "--company", "Acme", "--max-csv-bytes", str(CAP), check=False, timeout=60
        )
        _one_line_error(result, "import failed", f"larger than the limit of {CAP} bytes")
        assert server.count("/export.csv") == 1  # a size refusal is not retried
    runs = livedash("imports", "--json").stdout
    assert '"outcome": "error"' in runs


def test_a_declared_length_over_the_cap_is_refused_before_the_body() -> None:
    body = line(session_id="a").encode() * 10_000
    with RouteServer({"/x.csv": Route(body=body, content_type="text/csv")}) as server:
        source = CsvSource({}.get, max_bytes=CAP)
        try:
            company = Company.register("Acme", server.url("/x.csv"), Clock()())
            with pytest.raises(SourceError, match=f"larger than the limit of {CAP} bytes"):
                source.read(company)
            # Under the cap the same body is read whole, in a seekable spool.
            big = CsvSource({}.get, max_bytes=len(body))
            data = big.read(company)
            assert data.body is not None and data.size == len(body)
            assert b"".join(data.body.chunks()) == body
            data.close()
            big.close()
        finally:
            source.close()


def test_dev_zero_ends_at_the_cap(livedash: Livedash) -> None:
    _add(livedash, "/dev/zero")
    by_company = livedash(
        "import", "--company", "Acme", "--max-csv-bytes", str(CAP), check=False, timeout=60
    )
    _one_line_error(by_company, f"larger than the limit of {CAP} bytes")
    by_path = livedash(
        "import", "/dev/zero", "--company", "Acme", "--max-csv-bytes", str(CAP), check=False
    )
    _one_line_error(by_path, "/dev/zero", f"larger than the limit of {CAP} bytes")


class _EndlessWriter:
    """Writes CSV rows into a FIFO until the reader goes away (or a bound is reached)."""

    def __init__(self, fifo: Path, limit: int = 512 * 1024 * 1024) -> None:
        self.fifo = fifo
        self.limit = limit
        self.written = 0
        self.ended_by: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        chunk = "".join(line(session_id=f"f{i}") for i in range(100)).encode()
        fd = os.open(self.fifo, os.O_WRONLY)  # waits for the reader
        try:
            while self.written < self.limit:
                self.written += os.write(fd, chunk)
            self.ended_by = "limit"
        except BrokenPipeError:
            self.ended_by = "reader closed"
        finally:
            os.close(fd)

    def __enter__(self) -> _EndlessWriter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.thread.is_alive():  # the reader never came: let the writer's open return
            with contextlib.suppress(OSError):
                os.close(os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK))
        self.thread.join(10)


def test_a_fifo_that_never_ends_ends_at_the_cap(livedash: Livedash, tmp_path: Path) -> None:
    fifo = tmp_path / "export.fifo"
    os.mkfifo(fifo)
    _add(livedash, str(fifo))
    with _EndlessWriter(fifo) as writer:
        result = livedash(
            "import", str(fifo), "--company", "Acme", "--max-csv-bytes", str(CAP), check=False
        )
        writer.thread.join(10)
    _one_line_error(result, f"larger than the limit of {CAP} bytes")
    assert writer.ended_by == "reader closed"


def test_a_fifo_whose_writer_goes_quiet_ends_after_the_idle_timeout(tmp_path: Path) -> None:
    """A writer that holds the FIFO open without writing (or no writer at all) costs the idle
    timeout, not a process that waits forever."""
    fifo = tmp_path / "quiet.fifo"
    os.mkfifo(fifo)
    release = threading.Event()

    def hold_open() -> None:
        fd = os.open(fifo, os.O_WRONLY)  # waits for the reader
        try:
            release.wait(30)
        finally:
            os.close(fd)

    writer = threading.Thread(target=hold_open, daemon=True)
    writer.start()
    try:
        with pytest.raises(SourceError, match=r"no data for 0\.2 s"):
            read_local(fifo, max_bytes=CAP, idle_timeout=0.2)
    finally:
        release.set()
        if writer.is_alive():
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(10)


def test_a_file_over_the_cap_is_refused_by_its_size(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(b"x" * (CAP + 1))
    with pytest.raises(SourceError, match=f"larger than the limit of {CAP} bytes"):
        read_local(path, max_bytes=CAP)
    body, digest = read_local(path, max_bytes=CAP + 1)
    with body:
        assert body.size == CAP + 1 and len(digest) == 64


# ------------------------------------------------------------------------------ parsing


def _endless_lines() -> Iterator[str]:
    for i in itertools.count():
        yield line(session_id=f"row-{i}")


def test_rows_come_out_while_the_source_is_still_being_read() -> None:
    """An endless source gives its first rows at once: nothing waits for the end."""
    stream = CsvRowStream("UTC")
    first = list(itertools.islice(stream.parse_lines(_endless_lines()), 3))
    assert [(n, row.external_id) for n, row in first] == [(1, "row-0"), (2, "row-1"), (3, "row-2")]  # type: ignore[union-attr]


def test_parsing_a_large_export_holds_only_a_record_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "large.csv"
    rows = 40_000
    with path.open("w", newline="") as f:
        for chunk in range(0, rows, 1000):
            f.write("".join(line(session_id=f"r{i}") for i in range(chunk, chunk + 1000)))
    size = path.stat().st_size
    body, _ = read_local(path)
    tracemalloc.start()
    try:
        with body:
            text = body.text("utf-8")
            accepted = sum(isinstance(p, tuple) for p in CsvRowStream("UTC").parse_text(text))
            text.detach()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert accepted == rows
    # A 1 MB read buffer and the duplicate-id index (12 bytes a slot, ~1/6 of a row while it
    # grows); holding the text and every row, as the parser did, is more than ten times the file.
    assert peak < size / 2, (peak, size)


def test_a_line_without_end_is_rejected_unread_and_later_rows_still_parse() -> None:
    huge_line = "x," * (MAX_LINE_CHARS)  # 2 million characters, no line break
    text = line(session_id="before") + huge_line + "\n" + line(session_id="after")
    tracemalloc.start()
    try:
        out = list(CsvRowStream("UTC").parse_text(io.StringIO(text, newline="")))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(out[0], tuple) and isinstance(out[2], tuple)
    rejected = out[1]
    assert isinstance(rejected, RowRejection)
    assert rejected.row_number == 2
    assert rejected.reason == f"line is {len(huge_line) + 1} characters, limit {MAX_LINE_CHARS}"
    assert rejected.raw_line == huge_line[:2000]
    row: SourceRow = out[2][1]  # type: ignore[index]
    assert row.external_id == "after"
    # The test's own text is ~2 M characters; the parser never held the line whole twice over.
    assert peak < 3 * MAX_LINE_CHARS * 4, peak


# ----------------------------------------------------------------------------- encoding


def test_the_encoding_check_names_the_first_bad_byte_across_chunks() -> None:
    data = "één,twee\n".encode() + b"ok\nbad \xe9 here\n"
    # Split inside a two-byte character and before the bad byte: offsets stay absolute.
    chunks = [data[:1], data[1:5], data[5:]]
    with pytest.raises(CsvFormatError) as e:
        choose_encoding(chunks, "utf-8")
    offset = data.index(b"\xe9 here")
    assert f"not valid UTF-8: byte 0xe9 at offset {offset}, line 3" in str(e.value)
    assert "--encoding" in str(e.value)
    assert choose_encoding(chunks, "auto") == "cp1252"
    assert choose_encoding([data[:9]], "auto") == "utf-8"
    assert choose_encoding([b"abc\xc3"], "latin-1") == "iso8859-1"


def test_auto_names_both_failures_when_neither_encoding_fits() -> None:
    data = b"a\n\xff\x81\n"  # 0xff is not UTF-8, 0x81 is undefined in cp1252
    with pytest.raises(CsvFormatError) as e:
        choose_encoding([data], "auto")
    message = str(e.value)
    assert "not UTF-8: byte 0xff at offset 2, line 2" in message
    assert "not cp1252: byte 0x81 at offset 3, line 2" in message


def test_a_truncated_character_at_the_end_is_found() -> None:
    with pytest.raises(CsvFormatError, match="byte 0xc3 at offset 3, line 1"):
        choose_encoding([b"abc\xc3"], "utf-8")
