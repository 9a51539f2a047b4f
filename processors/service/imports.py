"""Importing a company's CSV export now, and listing the import runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from processors.ingest.importer import Progress, file_reader, run_import
from processors.ingest.source import CsvSource
from processors.net.credentials import SecretResolver
from processors.service.backend import Backend
from processors.service.lookup import optional_company, require_company
from projections.models import ImportRunInfo
from projections.queries import list_import_runs


def import_csv(
    backend: Backend,
    company: str,
    file: Path | None,
    *,
    secrets: SecretResolver,
    max_bytes: int,
    force: bool = False,
    encoding: str = "utf-8",
    progress: Progress | None = None,
    on_start: Callable[[int], None] | None = None,
) -> ImportRunInfo:
    """One import run of ``file``, or of the company's own CSV source (``force`` reads it even
    when it reports no change). Whatever the outcome, the run is recorded and returned; an
    ``error`` outcome is the caller's to report."""
    backend.catch_up()
    info = require_company(backend.engine, company)
    company_agg = backend.app.get_company(info.company_id)
    source = CsvSource(secrets, max_bytes=max_bytes)
    read = (
        file_reader(file, max_bytes=max_bytes)
        if file
        else (lambda: source.read(company_agg, force=force))
    )
    try:
        run = run_import(
            backend.app,
            backend.runner,
            company_agg,
            read,
            backend.clock,
            progress=progress,
            on_start=on_start,
            encoding=encoding.strip().lower(),
        )
    finally:
        source.close()
    backend.catch_up()
    with backend.engine.connect() as conn:
        report = next(
            r
            for r in list_import_runs(conn, info.company_id, limit=5, rejections=True)
            if r.run_id == run.run_id
        )
    report.encoding = run.encoding
    return report


def import_runs(
    backend: Backend, company: str | None = None, limit: int = 20, rejections: bool = False
) -> list[ImportRunInfo]:
    """The most recent runs first, of one company or all."""
    backend.catch_up()
    info = optional_company(backend.engine, company)
    with backend.engine.connect() as conn:
        return list_import_runs(
            conn, info.company_id if info else None, limit=limit, rejections=rejections
        )
