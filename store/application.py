"""The event-sourced application: the one module of the domain that talks to the event store."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    Mapper,
    Recording,
    StoredEvent,
    Transcoding,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import Environment, EnvType
from psycopg import sql
from pydantic import BaseModel

from domain.ai_batch import AIBatch, BatchRequest
from domain.analysis import Category, Sentiment, SessionAnalysis
from domain.breaker import BreakerState
from domain.company import Company, CompanyStatus, CredentialRef, ImportRun, company_id_for
from domain.csv_rows import RowRejection, SourceRow
from domain.errors import CompanyError
from domain.payloads import AIRequestIntent, AIUsage, FetchedTranscript, SessionFields
from domain.pipeline import PIPELINE_ID, Pipeline, StagePause
from domain.session import Session
from domain.stages import Stage, Status
from domain.transcript import Message
from store.data_keys import DataKeys
from store.sealing import SealingMapper, decode_all

A = TypeVar("A", bound=Aggregate)
R = TypeVar("R")


@dataclass(frozen=True)
class BatchResult:
    saved: list[Aggregate]
    lost: list[Aggregate]
    """Aggregates another writer changed first: their events were not stored."""
    events: int
    recordings: list[Recording[UUID]] = field(default_factory=list)
    """The stored events with their notification ids, in log order."""

    @property
    def saved_ids(self) -> set[UUID]:
        return {a.id for a in self.saved}


class EnumByValue(Transcoding):
    def __init__(self, enum_type: type[Enum], name: str) -> None:
        self.type = enum_type
        self.name = name

    def encode(self, obj: Enum) -> str:
        return str(obj.value)

    def decode(self, data: str) -> Enum:
        value: Enum = self.type(data)
        return value


class PydanticModel(Transcoding):
    """Stores a pydantic value as its JSON form, so the event stays readable in the database."""

    def __init__(self, model: type[BaseModel], name: str) -> None:
        self.type = model
        self.name = name
        self.model = model

    def encode(self, obj: BaseModel) -> dict[str, Any]:
        return obj.model_dump(mode="json")

    def decode(self, data: dict[str, Any]) -> BaseModel:
        return self.model.model_validate(data)


ENUM_TRANSCODINGS: tuple[tuple[type[Enum], str], ...] = (
    (Stage, "stage"),
    (Status, "status"),
    (CompanyStatus, "company_status"),
    (Sentiment, "sentiment"),
    (Category, "category"),
)
MODEL_TRANSCODINGS: tuple[tuple[type[BaseModel], str], ...] = (
    (SourceRow, "source_row"),
    (RowRejection, "row_rejection"),
    (ImportRun, "import_run"),
    (CredentialRef, "credential_ref"),
    (FetchedTranscript, "fetched_transcript"),
    (SessionFields, "session_fields"),
    (AIUsage, "ai_usage"),
    (AIRequestIntent, "ai_request_intent"),
    (SessionAnalysis, "session_analysis"),
    (Message, "message"),
    (StagePause, "stage_pause"),
    (BreakerState, "breaker_state"),
    (BatchRequest, "ai_batch_request"),
)


class LiveDashApp(Application[UUID]):
    name = "LiveDash"
    snapshotting_intervals = {Company: 50, Pipeline: 50}

    def __init__(self, env: EnvType | None = None, data_keys: DataKeys | None = None) -> None:
        """``data_keys``: seal personal values with per-session keys (None: stored plain)."""
        self.data_keys = data_keys
        super().__init__(env)

    def construct_mapper(self) -> Mapper[UUID]:
        if self.data_keys is None:
            return super().construct_mapper()
        return SealingMapper(self.construct_transcoder(), self.data_keys)

    def _record(self, processing_event: ProcessingEvent[UUID]) -> list[Recording[UUID]]:
        """Every write path comes here: the batch's data keys are fetched (or created,
        durably, before the events) with one query instead of one per event."""
        mapper = self.mapper
        if not isinstance(mapper, SealingMapper):
            return super()._record(processing_event)
        with mapper.writing(processing_event.events):
            return super()._record(processing_event)

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """Only what the caller passes: settings are read once, in the CLI, never here."""
        values = dict(type(self).env)
        values["IS_SNAPSHOTTING_ENABLED"] = "y"
        values.update(env or {})
        return Environment(name, values)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        for enum_type, enum_name in ENUM_TRANSCODINGS:
            transcoder.register(EnumByValue(enum_type, enum_name))
        for model, model_name in MODEL_TRANSCODINGS:
            transcoder.register(PydanticModel(model, model_name))

    # ---------------------------------------------------------------- saving
    def save_batch(self, aggregates: Sequence[Aggregate]) -> BatchResult:
        """One transaction for many aggregates, because per-transaction cost dominates.

        When any aggregate lost a race (another writer appended to it first), the batch is
        retried one aggregate at a time, so the winners still land and the losers are named.
        Any other failure (the database is away) stores nothing and leaves the events pending
        on their aggregates, so a later save stores them.
        """
        pending = [(a, list(a.collect_events())) for a in aggregates]
        pending = [(a, events) for a, events in pending if events]
        if not pending:
            return BatchResult([], [], 0)
        count = sum(len(events) for _, events in pending)
        try:
            recordings = self._store(pending)
        except IntegrityError:
            pass
        except BaseException:
            _restore(pending)  # nothing was stored: the caller may save them again later
            raise
        else:
            return BatchResult([a for a, _ in pending], [], count, recordings)
        saved: list[Aggregate] = []
        lost: list[Aggregate] = []
        count = 0
        recordings = []
        for i, (aggregate, events) in enumerate(pending):
            try:
                recordings.extend(self._store([(aggregate, events)]))
            except IntegrityError:
                lost.append(aggregate)
            except BaseException:
                _restore(pending[i:])
                raise
            else:
                saved.append(aggregate)
                count += len(events)
        return BatchResult(saved, lost, count, recordings)

    def _store(self, pending: Sequence[tuple[Aggregate, list[Any]]]) -> list[Recording[UUID]]:
        """`Application.save` for events already collected. `save` checks every object it is
        given against a runtime-checkable Protocol, which costs ~10 µs an event: a tenth of
        the daemon's whole write path."""
        processing: ProcessingEvent[UUID] = ProcessingEvent()
        for aggregate, events in pending:
            processing.events.extend(events)
            processing.aggregates[aggregate.id] = aggregate
        recordings = self._record(processing)
        self._take_snapshots(processing)
        self._notify(recordings)
        return recordings

    # ------------------------------------------------------------- companies
    def register_company(self, company: Company) -> Company:
        try:
            self.repository.get(company.id)
        except AggregateNotFoundError:
            pass
        else:
            raise CompanyError(f"a company named {company.name!r} already exists")
        try:
            self.save(company)
        except IntegrityError:
            raise CompanyError(f"a company named {company.name!r} already exists") from None
        return company

    def get_company(self, name_or_id: str | UUID) -> Company:
        company_id = name_or_id if isinstance(name_or_id, UUID) else _company_key(name_or_id)
        try:
            company: Aggregate = self.repository.get(company_id)
        except AggregateNotFoundError:
            raise CompanyError(f"unknown company {name_or_id!s}") from None
        assert isinstance(company, Company)
        return company

    def change_company_status(
        self, name: str, status: CompanyStatus, reason: str, actor: str, now: datetime
    ) -> Company:
        company = self.get_company(name)
        if company.change_status(status, reason, actor, now):
            self.save(company)
        return company

    def record_import(self, company: Company, run: ImportRun) -> None:
        company.record_import(run)
        self.save(company)

    # -------------------------------------------------------------- pipeline
    def pipeline(self, now: datetime) -> Pipeline:
        """The installation's stage switches (a fresh, unsaved one before the first)."""
        try:
            found: Aggregate = self.repository.get(PIPELINE_ID)
        except AggregateNotFoundError:
            return Pipeline.start(now)
        assert isinstance(found, Pipeline)
        return found

    def change_pipeline(
        self, change: Callable[[Pipeline], R], now: datetime, tries: int = 10
    ) -> tuple[Pipeline, R]:
        """Applies ``change`` to the latest pipeline and saves it when it returns something
        true; a concurrent change by another writer is read and ``change`` decides again."""
        for _ in range(tries - 1):
            pipeline = self.pipeline(now)
            result = change(pipeline)
            if not result:
                return pipeline, result
            try:
                self.save(pipeline)
            except IntegrityError:
                continue
            return pipeline, result
        pipeline = self.pipeline(now)
        result = change(pipeline)
        if result:
            self.save(pipeline)
        return pipeline, result

    # -------------------------------------------------------------- sessions
    def reading(self, ids: Iterable[UUID]) -> AbstractContextManager[None]:
        """Decoding inside reads the data keys of ``ids`` once (nothing to read unsealed)."""
        if isinstance(self.mapper, SealingMapper):
            return self.mapper.reading(ids)
        return nullcontext()

    def get_session(self, session_id: UUID) -> Session:
        with self.reading([session_id]):
            session: Aggregate = self.repository.get(session_id)
        assert isinstance(session, Session)
        return session

    def find_session(self, session_id: UUID) -> Session | None:
        try:
            return self.get_session(session_id)
        except AggregateNotFoundError:
            return None

    def get_sessions(self, session_ids: Iterable[UUID]) -> list[Session]:
        """Many sessions with one query per 500 instead of one per session; unknown ids skipped."""
        ids = list(dict.fromkeys(session_ids))
        found: dict[UUID, Session] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            by_id: dict[UUID, Any] = {}
            event: Any
            for event in decode_all(self.mapper, self._select_events_of(chunk)):
                by_id[event.originator_id] = event.mutate(by_id.get(event.originator_id))
            for sid, aggregate in by_id.items():
                if isinstance(aggregate, Session):
                    found[sid] = aggregate
        return [found[sid] for sid in ids if sid in found]

    def stored_events_of(self, ids: Sequence[UUID]) -> list[StoredEvent]:
        """The stored (undecoded) events of up to 500 aggregates."""
        return self._select_events_of(ids) if ids else []

    def _select_events_of(self, ids: Sequence[UUID]) -> list[StoredEvent]:
        """All stored events of the given aggregates, in order, read straight from the
        recorder's table (the library only offers one aggregate per query)."""
        recorder: Any = self.recorder
        table = recorder.events_table_name
        if isinstance(recorder, PostgresApplicationRecorder):
            query = sql.SQL(
                "SELECT originator_id, originator_version, topic, state FROM {}.{} "
                "WHERE originator_id IN ({}) ORDER BY originator_id, originator_version"
            ).format(
                sql.Identifier(recorder.datastore.schema),
                sql.Identifier(table),
                sql.SQL(", ").join([sql.Placeholder()] * len(ids)),
            )
            with recorder.datastore.transaction(commit=False) as curs:
                curs.execute(query, list(ids))
                return [
                    StoredEvent(
                        r["originator_id"], r["originator_version"], r["topic"], bytes(r["state"])
                    )
                    for r in curs.fetchall()
                ]
        marks = ",".join("?" * len(ids))
        with recorder.datastore.transaction(commit=False) as curs:
            curs.execute(
                f"SELECT originator_id, originator_version, topic, state FROM {table} "
                f"WHERE originator_id IN ({marks}) ORDER BY originator_id, originator_version",
                [i.hex for i in ids],
            )
            return [StoredEvent(UUID(r[0]), r[1], r[2], r[3]) for r in curs.fetchall()]

    # ------------------------------------------------------------- AI batches
    def find_batch(self, batch_id: UUID) -> AIBatch | None:
        try:
            found: Aggregate = self.repository.get(batch_id)
        except AggregateNotFoundError:
            return None
        assert isinstance(found, AIBatch)
        return found

    def session_events(self, session_id: UUID) -> list[DomainEventProtocol[UUID]]:
        with self.reading([session_id]):
            return list(self.events.get(session_id))


def _restore(pending: Sequence[tuple[Aggregate, list[Any]]]) -> None:
    """Puts collected events back in front of what each aggregate has pending since."""
    for aggregate, events in pending:
        aggregate.pending_events[:0] = events


def _company_key(name_or_id: str) -> UUID:
    try:
        return UUID(name_or_id)
    except ValueError:
        return company_id_for(name_or_id)
