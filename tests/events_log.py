"""A small log with every kind of event `livedash events` filters on, and the reference: what
each event's record must say, worked out from the events themselves (not from the index)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from cli.runtime import Runtime
from domain.company import Company, CompanyStatus
from domain.history import describe
from domain.session import Session
from domain.stages import Stage
from tests.factories import Clock, row

COMPANIES = ("Jumbo", "Albert")
WORKERS = ("w-0", "w-1")
ERRORS = ("http_404", "timeout")
ACTORS = ("alice", "bob")


def build_log(rt: Runtime, sessions_per_company: int = 6) -> None:
    clock = Clock()

    def tick() -> datetime:
        return clock.advance(60)  # every event a minute after the last

    for name in COMPANIES:
        rt.app.register_company(Company.register(name, f"https://csv.example/{name}.csv", tick()))
    rt.app.change_company_status("Jumbo", CompanyStatus.SUSPENDED, "audit", "alice", tick())
    for name in COMPANIES:
        company = rt.app.get_company(name)
        batch = [_session(company.id, name, i, tick) for i in range(sessions_per_company)]
        rt.app.save_batch(batch)


def _session(company: UUID, name: str, i: int, tick: Callable[[], datetime]) -> Session:
    s = Session.import_row(company, row(external_id=f"{name}-{i}"), "t.csv", tick())
    fetch, now = Stage.TRANSCRIPT_FETCH, tick()
    a = s.start_stage(fetch, WORKERS[i % 2], now + timedelta(hours=1), now)
    if i % 3 == 0:
        s.fail_stage(fetch, a, ERRORS[0], "not there", False, None, tick())
        s.reset_stage(fetch, "try again", ACTORS[i % 2], tick())
    elif i % 3 == 1:
        now = tick()
        s.fail_stage(fetch, a, ERRORS[1], "slow", True, now, now)
        now = tick()
        a = s.start_stage(fetch, WORKERS[(i + 1) % 2], now + timedelta(hours=1), now)
        s.complete_stage(fetch, a, tick(), {"size": i})
        s.change_row(row(external_id=f"{name}-{i}", tokens=7), "t2.csv", tick())
    else:
        s.complete_stage(fetch, a, tick(), {"size": i})
        now = tick()
        a = s.start_stage(Stage.SESSION_CREATION, WORKERS[0], now + timedelta(hours=1), now)
        s.release_stage(Stage.SESSION_CREATION, a, "shutting down", tick())
    return s


@dataclass(frozen=True)
class Expected:
    position: int
    time: datetime
    type: str
    session_id: UUID | None
    external_id: str | None
    company: str
    stage: str | None
    status_before: str | None
    status_after: str | None
    attempt: int | None
    worker: str | None
    actor: str | None
    reason: str | None
    error_type: str | None

    def fields(self) -> dict[str, Any]:
        """As `--json` prints them (every field but the free-text summary)."""
        return {
            "position": self.position,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "type": self.type,
            "session_id": str(self.session_id) if self.session_id else None,
            "external_id": self.external_id,
            "company": self.company,
            "stage": self.stage,
            "status_before": self.status_before,
            "status_after": self.status_after,
            "attempt": self.attempt,
            "worker": self.worker,
            "actor": self.actor,
            "reason": self.reason,
            "error_type": self.error_type,
        }


def expected_records(rt: Runtime) -> list[Expected]:
    """Every event of the log as its record must read, in log order."""
    notes = rt.app.recorder.select_notifications(start=1, limit=100_000)
    events: list[tuple[int, Any]] = [(n.id, rt.app.mapper.to_domain_event(n)) for n in notes]
    names = {e.originator_id: e.name for _, e in events if isinstance(e, Company.Registered)}
    by_session: dict[UUID, list[Any]] = {}
    for _, e in events:
        if isinstance(e, Session.Event):
            by_session.setdefault(e.originator_id, []).append(e)
    history = {(sid, h.version): h for sid, evs in by_session.items() for h in describe(evs)}
    first = {sid: evs[0] for sid, evs in by_session.items()}
    started: dict[tuple[UUID, str], tuple[int, str]] = {}
    found = []
    for position, e in events:
        kind = type(e).__name__
        if not isinstance(e, Session.Event):
            found.append(
                Expected(
                    position, e.timestamp, kind, None, None, names[e.originator_id], None, None,
                    None, None, None, getattr(e, "actor", None), getattr(e, "reason", None), None,
                )
            )  # fmt: skip
            continue
        h = history[(e.originator_id, e.originator_version)]
        worker = None
        if h.stage is not None and h.attempt is not None:
            key = (e.originator_id, h.stage)
            if h.worker is not None:
                started[key] = (h.attempt, h.worker)
            known = started.get(key)
            worker = known[1] if known and known[0] == h.attempt else None
        imported: Any = first[e.originator_id]
        stage, before, after = h.stage, h.status_before, h.status_after
        if kind == "SourceRowChanged":  # `history` names no stage; the index files it under
            stage, before, after = "CSV_IMPORT", "COMPLETED", "COMPLETED"  # the import's
        found.append(
            Expected(
                position, e.timestamp, kind, e.originator_id, imported.external_id,
                names[imported.company_id], stage, before, after, h.attempt,
                worker, h.actor, h.reason, h.error_type,
            )
        )  # fmt: skip
    return found
