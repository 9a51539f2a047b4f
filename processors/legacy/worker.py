"""One batch of legacy units loaded, built and stored: in the driver or in a worker process."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from domain.session import Session
from domain.stages import STAGE_ORDER
from processors.legacy.build import build_session
from processors.legacy.prepare import prepare
from processors.legacy.records import LegacyCompany, UnitKey
from processors.legacy.source import LegacySource
from processors.legacy.tally import Tally
from projections.store import make_engine
from store.application import LiveDashApp
from store.data_keys import DataKeys
from store.database_url import DatabaseConfig


@dataclass(frozen=True)
class Target:
    """Where a batch goes, in a form a worker process can be given."""

    dsn: str
    database_url: str | None
    timezone: str
    now: datetime
    dry_run: bool
    companies: dict[str, tuple[LegacyCompany, UUID, str]]
    """legacy company id -> (the legacy company, our company id, our name)."""
    master_key: bytes | None = None
    """Seal personal data as the driver's store does (a worker opens its own store)."""


class BatchWorker:
    """Loads, builds and stores the units of one batch of keys (in this or a worker process)."""

    def __init__(self, target: Target, source: LegacySource, app: LiveDashApp | None) -> None:
        self.target = target
        self.source = source
        self.app = app
        self.legacy = {cid: c for cid, (c, _, _) in target.companies.items()}

    def run(self, keys: Sequence[UnitKey]) -> Tally:
        t = self.target
        tally = Tally()
        units = self.source.load(keys, self.legacy)
        built: list[Session] = []
        for key, unit in zip(keys, units, strict=True):
            _, company_id, name = t.companies[key[2]]
            try:
                p = prepare(unit, t.timezone)
                session = build_session(p, company_id, t.timezone, t.now)
            except Exception as e:  # never abort the run for one bad unit
                tally.not_migrated_unit(key, name, f"{type(e).__name__}: {e}")
                continue
            tally.add_problems(p, name)
            built.append(session)
        if t.dry_run or not built:
            for session in built:
                tally.add_session(session)
            return tally
        assert self.app is not None
        result = self.app.save_batch(built)
        tally.events += result.events
        saved = result.saved_ids
        for session in built:
            if session.id in saved:
                tally.add_session(session)
        for lost in self.app.get_sessions([s.id for s in result.lost]):
            tally.already_migrated += 1
            tally.add_states({s.value: lost.stages[s].status.value for s in STAGE_ORDER})
        return tally


_WORKER: BatchWorker | None = None


def init_worker(target: Target) -> None:
    """In a spawned worker process: its own legacy connection and its own event store."""
    global _WORKER
    app = None
    if not target.dry_run and target.database_url:
        config = DatabaseConfig.from_url(target.database_url)
        keys = None
        if target.master_key is not None:
            keys = DataKeys(make_engine(config.sqlalchemy_url(), pool_size=2), target.master_key)
        app = LiveDashApp(env=config.eventsourcing_env(create_tables=False), data_keys=keys)
    _WORKER = BatchWorker(target, LegacySource(target.dsn), app)


def run_in_worker(keys: list[UnitKey]) -> Tally:
    assert _WORKER is not None
    return _WORKER.run(keys)
