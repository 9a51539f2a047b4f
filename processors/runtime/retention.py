"""Retention: a daemon's scheduled job that erases the personal data of sessions that started
longer ago than their company keeps transcripts (`company update --retain-transcripts 90d`).

The erasure is the same as `livedash erase`, recorded with actor ``retention``; a session
stored before encryption was turned on cannot be erased and is skipped (named once in the
log), and several daemons sweeping at once only waste a little work: an erased session is
not chosen again, and the erasure of a session is recorded once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

from sqlalchemy import select

from processors.clock import Clock
from processors.service.backend import Backend
from processors.service.erase import erase_sessions, started_before
from processors.service.errors import ServiceError
from projections.schema import companies

ACTOR = "retention"


class RetentionSweep:
    def __init__(
        self,
        backend: Backend,
        log: Callable[..., None],
        interval: float = 60.0,
        batch: int = 500,
        clock: Clock | None = None,
    ) -> None:
        self.backend = backend
        self.log = log
        self.interval = interval
        self.batch = batch
        self.clock = clock or backend.clock
        self._next = 0.0
        self._refused: set[UUID] = set()
        """Sessions stored before encryption: not tried again by this daemon."""

    def __call__(self) -> None:
        now_mono = time.monotonic()
        if now_mono < self._next or self.backend.app.data_keys is None:
            return
        self._next = now_mono + self.interval
        self.sweep()

    def sweep(self) -> int:
        """Erases one batch per company that has a retention; returns how many."""
        erased = 0
        now = self.clock()
        with self.backend.engine.connect() as conn:
            ids = list(conn.execute(select(companies.c.company_id)).scalars())
        for company_id in ids:
            days = self.backend.app.get_company(company_id).retain_transcripts_days
            if days is None:
                continue
            due = [
                sid
                for sid in started_before(
                    self.backend, company_id, now - timedelta(days=days), self.batch
                )
                if sid not in self._refused
            ]
            if not due:
                continue
            try:
                result = erase_sessions(
                    self.backend,
                    due,
                    ACTOR,
                    f"retention: personal data kept {days} days",
                    catch_up=False,
                    now=now,
                )
            except ServiceError as e:  # busy sessions: the next sweep records what is left
                self.log("retention_incomplete", company_id=str(company_id), error=e.message)
                continue
            erased += len(result.erased)
            for r in result.refused:
                self._refused.add(r.session_id)
            if result.erased or result.refused:
                self.log(
                    "retention_erased",
                    company_id=str(company_id),
                    erased=len(result.erased),
                    refused=len(result.refused),
                )
        return erased
