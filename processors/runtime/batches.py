"""AI_ANALYSIS through the OpenAI Batch API: claim, prepare, upload, create, poll, collect.

`BatchDriver` is one of the daemon's scheduled jobs in ``run --ai-mode batch`` (the daemon then
leaves AI_ANALYSIS to it), and `reprocess --batch` uses it to submit the sessions it reset.

Durability, in order:

1. one transaction stores the `AIBatch` (``Prepared``: every line's custom_id, session and
   attempt) with each session's claim (`StageStarted`, worker ``batch:<AIBatch id>``) and its
   request intent (`AIRequestSent`, custom_id = client_request_id, batch price). Nothing has
   left the process yet;
2. the JSONL file is uploaded (``FileUploaded``), the batch created with metadata
   ``livedash_batch=<key>`` (``Submitted``);
3. polls record status changes; a terminal status downloads the output and error files and
   turns each line into the session's normal events (`batch_results`), then ``Finished``.

A crash anywhere is resumed from the store: open batches are found from the status projection
(AI_ANALYSIS claims whose worker is ``batch:…``); a batch without a recorded ``Submitted`` is
first looked for on the server by its metadata, so it is never created twice.

Claims hold for the whole batch window (``lease_seconds``, default 25 h), so no heartbeat is
needed and no other daemon takes the sessions over (and pays again) while the batch runs;
a batch nobody collects gives its sessions back to normal retries when the lease ends.
Budgets: a company (or the installation) whose budget is reached gets no new batch, and a
batch takes only as many of a company's sessions as its remaining budget covers at the
estimated batch price (spend includes the intents of requests still open).
"""

from __future__ import annotations

import contextlib
import functools
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from hashlib import sha256
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError
from sqlalchemy import Engine, select

from domain.ai_batch import (
    TERMINAL,
    AIBatch,
    BatchError,
    BatchRequest,
    batch_id_for,
    batch_of_worker,
)
from domain.company import Company
from domain.errors import DomainError
from domain.session import Session
from domain.stages import Stage, Status
from processors.ai.batch_api import BatchAPI, BatchState
from processors.ai.batch_requests import (
    ENDPOINT,
    Line,
    build_line,
    file_content,
    intent,
    parse_results,
)
from processors.ai.config import OpenAIAnalyserConfig
from processors.clock import Clock
from processors.runtime.batch_results import Tally, apply_result
from processors.runtime.batch_settings import BatchSettings
from projections.budgets import spend_in_periods, spend_since
from projections.schema import session_stage_status as sss
from projections.work import WorkQueries, due_rows
from store.application import LiveDashApp

AI = Stage.AI_ANALYSIS
SAVE_CHUNK = 500
INSTALLATION = UUID(int=0)
"""The installation budget's entry in the room a batch may spend."""
Log = Callable[..., None]


@dataclass
class Open:
    batch: AIBatch
    content: bytes | None = None
    next_poll: float = 0.0
    fresh: bool = False
    """Prepared by this driver and never sent: no earlier try can have created it."""


def _seen(state: BatchState, now: datetime, batch: AIBatch) -> bool:
    return batch.status_seen(state.status, state.counts, now)


class CrashForTest(RuntimeError):
    """Raised by the ``crash_after_create`` hook: the process "dies" between creating a batch
    on the server and recording its id."""


class BatchDriver:
    def __init__(
        self,
        app: LiveDashApp,
        engine: Engine,
        api: BatchAPI,
        cfg: OpenAIAnalyserConfig,
        settings: BatchSettings,
        clock: Clock,
        log: Log,
        crash_after_create: bool = False,
        sender: str | None = None,
        submit: bool = True,
    ) -> None:
        """``submit`` False: a collector only (a standard-mode daemon), which takes up and
        finishes the batches others submitted (``reprocess --batch``) and submits none."""
        self.app = app
        self.sender = sender or f"batch-driver-{uuid.uuid4().hex[:12]}"
        """This driver's name on the send leases it takes."""
        self.engine = engine
        self.work = WorkQueries(engine)
        self.api = api
        self.cfg = cfg
        self.settings = settings
        self.clock = clock
        self.log = log
        self.crash_after_create = crash_after_create
        self.open: dict[UUID, Open] = {}
        self.partitions: Callable[[], Collection[int] | None] = lambda: None
        """The partitions whose sessions this driver claims (a fleet on PostgreSQL: its
        daemon's, so two daemons do not race for the same sessions); None: all."""
        self.submits = submit
        self._next_resume = 0.0
        self._due_since: float | None = None
        """When due work was first seen and left to gather into a fuller batch."""
        self.submitted: list[AIBatch] = []
        """Every batch this driver created or took over (for reports and tests)."""

    # ------------------------------------------------------------ the job
    @property
    def busy(self) -> bool:
        """The daemon's ``--until-idle`` waits while batches run (its own, or any open one the
        projection shows), and while AI work is due that a budget lets go out (it became due
        during the daemon's last turn)."""
        if not self.open:
            self.resume()  # the projection may only now show batches submitted meanwhile
        if self.open:
            return True
        return self.submits and bool(self._due(self.clock(), 1))

    def _due(self, now: datetime, limit: int) -> list[UUID]:
        """Due AI work of active companies that no pause holds and whose budget has room."""
        pipeline = self.app.pipeline(now)
        if pipeline.paused(AI) is not None:
            return []
        companies = self._companies()
        room = self._budget_room(companies, now)
        if room.get(INSTALLATION, Decimal(1)) <= 0:
            return []
        usable = [
            cid
            for cid in companies
            if room.get(cid, Decimal(1)) > 0 and pipeline.paused(AI, cid) is None
        ]
        busy = {r.session_id for o in self.open.values() for r in o.batch.requests}
        with self.engine.connect() as conn:
            due = due_rows(
                conn, AI, now, usable, limit + len(busy), self.partitions(), per_company=True
            )
        return [sid for sid, _ in due if sid not in busy][:limit]

    def __call__(self) -> None:
        if time.monotonic() >= self._next_resume:
            self.resume()
        self.poll_due()
        if self.submits:
            self.submit_due()

    def close(self) -> None:
        self.api.close()

    # ------------------------------------------------------------- resume
    def resume(self) -> None:
        """Takes up the open batches this driver does not hold (found from their claims): a
        previous run's, `reprocess --batch`'s, a crashed daemon's. Asked again every poll
        interval (one indexed query), so batches submitted meanwhile are collected too."""
        self._next_resume = time.monotonic() + self.settings.poll_interval
        with self.engine.connect() as conn:
            workers = conn.execute(
                select(sss.c.worker)
                .where(
                    sss.c.stage == AI.value,
                    sss.c.status == Status.IN_PROGRESS.value,
                    sss.c.worker.like("batch:%"),
                )
                .distinct()
            ).scalars()
            ids = {bid for w in workers if (bid := batch_of_worker(w)) is not None}
        for bid in ids - set(self.open):
            batch = self.app.find_batch(bid)
            if batch is None or batch.finished:
                continue
            self.open[bid] = Open(batch)
            self.log(
                "batch_resumed",
                batch=batch.key,
                status=batch.status,
                provider_batch_id=batch.provider_batch_id,
            )
            if batch.provider_batch_id is None:
                self._send(self.open[bid])

    # ------------------------------------------------------------- submit
    def submit_due(self) -> None:
        """Claims due AI work into new batches while there is room for them."""
        while len(self.open) < self.settings.max_open:
            if not self._submit_next():
                return

    def _submit_next(self) -> bool:
        now = self.clock()
        picked = self._due(now, self.settings.size)
        if not picked:
            self._due_since = None
            return False
        waited = time.monotonic() - (self._due_since or time.monotonic())
        if self._due_since is None:
            self._due_since = time.monotonic()
        if len(picked) < self.settings.size and waited < self.settings.gather:
            return False  # more may become due: one bigger batch, not many small ones
        self._due_since = None
        companies = self._companies()
        room = self._budget_room(companies, now)
        batch = self.prepare(self.app.get_sessions(picked), companies, room, now)
        return batch is not None

    def submit_sessions(self, session_ids: Sequence[UUID]) -> list[AIBatch]:
        """`reprocess --batch`: these sessions (due now) go out as batches at once."""
        now = self.clock()
        companies = self._companies()
        room = self._budget_room(companies, now)
        made: list[AIBatch] = []
        remaining = list(session_ids)
        while remaining:
            chunk, rest = remaining[: self.settings.size], remaining[self.settings.size :]
            sessions = self.app.get_sessions(chunk)
            batch = self.prepare(sessions, companies, room, now)
            if batch is None:
                remaining = rest  # nothing of this chunk can go now (budgets): left PENDING
                continue
            made.append(batch)
            taken = {r.session_id for r in batch.requests}
            waiting = [  # another model's sessions: the next batch
                s.id
                for s in sessions
                if s.id not in taken and s.is_due(AI, now) and not s.skip_reason(AI)
            ]
            remaining = waiting + rest
        return made

    def prepare(
        self,
        sessions: list[Session],
        companies: dict[UUID, Company],
        room: dict[UUID, Decimal],
        now: datetime,
    ) -> AIBatch | None:
        """Claims, intents and the `AIBatch` in one transaction, then sends it."""
        key = uuid.uuid4().hex
        worker = f"batch:{batch_id_for(key)}"
        lease = now + timedelta(seconds=self.settings.lease_seconds)
        model: str | None = None
        lines: list[Line] = []
        requests: list[BatchRequest] = []
        touched: list[Session] = []
        estimate = Decimal(0)
        for session in sessions:
            company = companies.get(session.company_id)
            if company is None or not session.is_due(AI, now):
                continue
            reason = session.skip_reason(AI)
            if reason:
                if session.stages[AI].status is Status.PENDING:
                    session.skip_stage(AI, reason, now)
                    touched.append(session)
                continue
            wanted = company.ai_model or self.cfg.default_model
            if model is not None and wanted != model:
                continue  # one model per batch: the next batch takes it
            custom_id = f"ld-{uuid.uuid4().hex}"
            line = build_line(self.cfg, wanted, list(session.messages), custom_id)
            wish = intent(self.cfg, line, wanted, now)
            cost = wish.cost_eur_estimated or Decimal(0)
            left = room.get(session.company_id)
            everyone = room.get(INSTALLATION)
            if (left is not None and cost > left) or (everyone is not None and cost > everyone):
                continue  # a budget does not cover it
            try:
                attempt = session.start_stage(AI, worker, lease, now)
            except DomainError:
                continue
            session.record_ai_request(AI, attempt, wish)
            model = wanted
            if left is not None:
                room[session.company_id] = left - cost
            if everyone is not None:
                room[INSTALLATION] = everyone - cost
            estimate += cost
            lines.append(line)
            requests.append(
                BatchRequest(
                    custom_id=custom_id,
                    session_id=session.id,
                    company_id=session.company_id,
                    attempt=attempt,
                )
            )
            touched.append(session)
        if not requests or model is None:
            if touched:
                self.app.save_batch(touched)
            return None
        content, sha = file_content(lines)
        batch = AIBatch.prepare(
            key,
            model,
            requests,
            sha,
            len(content),
            estimate,
            worker,
            now,
            ENDPOINT,
            self.settings.window,
        )
        batch.start_send(self.sender, now + timedelta(seconds=self.settings.send_lease), now)
        result = self.app.save_batch([batch, *touched])
        if result.lost:  # another writer changed some first: their lines are not sent
            saved = result.saved_ids
            kept = [
                (r, line) for r, line in zip(requests, lines, strict=True) if r.session_id in saved
            ]
            if batch.id not in saved or not kept:
                claimed = [s for s in touched if s.id in saved]
                self._abandon(batch, claimed, requests, "its sessions changed meanwhile")
                return None
            content = file_content([line for _, line in kept])[0]
        self.log(
            "batch_prepared",
            batch=key,
            requests=len(requests),
            model=model,
            cost_eur_estimated=str(estimate),
        )
        entry = Open(batch, content, fresh=True)
        self.open[batch.id] = entry
        self.submitted.append(batch)
        self._send(entry)
        return batch

    def _abandon(
        self, batch: AIBatch, sessions: list[Session], requests: list[BatchRequest], why: str
    ) -> None:
        now = self.clock()
        attempts = {r.session_id: r.attempt for r in requests}
        for session in sessions:
            attempt = attempts.get(session.id)
            if attempt is not None:
                with contextlib.suppress(DomainError):
                    session.release_stage(AI, attempt, f"batch not sent: {why}", now)
        stored = self.app.find_batch(batch.id) is not None
        if stored and not batch.finished:
            batch.abandon(why, now)
        self.app.save_batch([batch, *sessions] if stored else sessions)
        self.open.pop(batch.id, None)

    def _send(self, entry: Open) -> None:
        """Upload and create, or find the batch a crashed run created: never create twice.

        Only the holder of the batch's send lease sends (the batch's first send holds it from
        its ``Prepared`` transaction); anyone else takes it up once the lease has run out,
        and first looks for the batch on the server by its metadata."""
        first, entry.fresh = entry.fresh, False
        now = self.clock()
        entry.next_poll = time.monotonic() + self.settings.poll_interval
        if not first:
            fresh = self.app.find_batch(entry.batch.id)
            if fresh is None or fresh.finished:
                self.open.pop(entry.batch.id, None)
                return
            entry.batch = fresh
            if fresh.provider_batch_id is not None:
                return  # another daemon submitted it: polled from now on
            try:
                fresh.start_send(
                    self.sender, now + timedelta(seconds=self.settings.send_lease), now
                )
                self.app.save(fresh)
            except (BatchError, IntegrityError) as e:
                self.log("batch_send_waits", batch=fresh.key, reason=str(e)[:200])
                return
        batch = entry.batch
        try:
            found = None if first else self.api.find(batch.key)
            if found is not None:
                self._submitted(entry, found, found_again=True)
                return
            if batch.file_id is None:
                content = entry.content or self._rebuild(batch)
                if content is None:
                    self._abandon(batch, [], [], "its sessions moved on before it was sent")
                    return
                file_id = self.api.upload(content, f"livedash-{batch.key}.jsonl")
                batch.file_uploaded(file_id, sha256(content).hexdigest(), self.clock())
                self.app.save(batch)
            assert batch.file_id is not None
            created = self.api.create(
                batch.file_id, batch.key, batch.endpoint, batch.completion_window
            )
            if self.crash_after_create:
                raise CrashForTest(f"crash after creating {created.id}")
            self._submitted(entry, created, found_again=False)
        except CrashForTest:
            raise
        except Exception as e:  # the server, the network, a race: tried again at the next poll
            self.log("batch_send_failed", batch=batch.key, error=f"{type(e).__name__}: {e}"[:300])

    def _submitted(self, entry: Open, state: BatchState, found_again: bool) -> None:
        batch = entry.batch
        self._store(entry, lambda b: b.submitted(state.id, state.status, found_again, self.clock()))
        self.log(
            "batch_submitted",
            batch=batch.key,
            provider_batch_id=state.id,
            requests=len(batch.requests),
            found_again=found_again,
        )

    def _store(self, entry: Open, change: Callable[[AIBatch], object]) -> bool:
        """Applies ``change`` to the batch and stores it; when another daemon changed the batch
        first, applies it to the latest state (where it may no longer apply). Returns what
        ``change`` said (as a bool), False when it did not apply."""
        for _ in range(3):
            try:
                said = change(entry.batch)
            except BatchError:
                return False
            try:
                self.app.save(entry.batch)
                return bool(said)
            except IntegrityError:
                fresh = self.app.find_batch(entry.batch.id)
                if fresh is None:
                    return False
                entry.batch = fresh
        return False

    def _rebuild(self, batch: AIBatch) -> bytes | None:
        """The file of a batch prepared before a crash, from its sessions (same custom ids);
        requests whose claim moved on are left out."""
        sessions = {s.id: s for s in self.app.get_sessions([r.session_id for r in batch.requests])}
        lines = []
        for r in batch.requests:
            s = sessions.get(r.session_id)
            state = s.stages[AI] if s else None
            if s is None or state is None or state.status is not Status.IN_PROGRESS:
                continue
            if state.attempt != r.attempt:
                continue
            lines.append(build_line(self.cfg, batch.model, list(s.messages), r.custom_id))
        return file_content(lines)[0] if lines else None

    # --------------------------------------------------------------- poll
    def poll_due(self, force: bool = False) -> None:
        now_mono = time.monotonic()
        for bid, entry in list(self.open.items()):
            if not force and entry.next_poll > now_mono:
                continue
            entry.next_poll = now_mono + self.settings.poll_interval
            if entry.batch.provider_batch_id is None:
                self._send(entry)
                continue
            try:
                state = self.api.poll(entry.batch.provider_batch_id)
            except Exception as e:
                self.log("batch_poll_failed", batch=entry.batch.key, error=str(e)[:300])
                continue
            if self._store(entry, functools.partial(_seen, state, self.clock())):
                self.log("batch_status", batch=entry.batch.key, status=state.status, **state.counts)
            if entry.batch.finished:
                self.open.pop(bid, None)  # another daemon collected it
            elif state.status in TERMINAL:
                try:
                    texts = (
                        self.api.content(state.output_file_id),
                        self.api.content(state.error_file_id),
                    )
                except Exception as e:  # read again at the next poll
                    self.log("batch_download_failed", batch=entry.batch.key, error=str(e)[:300])
                    continue
                self.collect(entry, state, *texts)
                self.open.pop(bid, None)

    def collect(self, entry: Open, state: BatchState, output: str, errors: str) -> Tally:
        """Each line to its session's events, in chunks; then ``Finished``. Sessions another
        writer changed meanwhile get their line applied to their latest state."""
        batch = entry.batch
        results = parse_results(output, errors)
        now = self.clock()
        tally = Tally()
        requests = batch.requests
        for start in range(0, len(requests), SAVE_CHUNK):
            chunk = requests[start : start + SAVE_CHUNK]
            for _ in range(3):
                sessions = {s.id: s for s in self.app.get_sessions([r.session_id for r in chunk])}
                each: dict[UUID, Tally] = {}
                for r in chunk:
                    session = sessions.get(r.session_id)
                    if session is not None:
                        result = results.get(r.custom_id)
                        mine = each.setdefault(r.session_id, Tally())
                        policy = self.settings.policy
                        apply_result(session, r, result, batch, self.cfg, policy, now, mine)
                lost = {a.id for a in self.app.save_batch(list(sessions.values())).lost}
                for sid, counted in each.items():
                    if sid not in lost:
                        tally.merge(counted)
                chunk = [r for r in chunk if r.session_id in lost]
                if not chunk:
                    break
        self._store(
            entry,
            lambda b: b.finish(
                state.status, tally.succeeded, tally.failed, tally.missing, tally.cost_eur, now
            ),
        )
        self.log(
            "batch_finished",
            batch=batch.key,
            provider_batch_id=batch.provider_batch_id,
            status=state.status,
            succeeded=tally.succeeded,
            failed=tally.failed,
            missing=tally.missing,
            stale=tally.stale,
            cost_eur=None if tally.cost_eur is None else str(tally.cost_eur),
            errors=state.errors,
        )
        return tally

    # ------------------------------------------------------- companies
    def _companies(self) -> dict[UUID, Company]:
        statuses = self.work.company_statuses()
        found = {cid: self.app.get_company(cid) for cid in statuses}
        return {cid: c for cid, c in found.items() if c.is_active}

    def _budget_room(self, companies: dict[UUID, Company], now: datetime) -> dict[UUID, Any]:
        """EUR each budgeted company may still spend (the installation's budget caps all);
        companies without a budget are absent (no limit)."""
        budgeted = {cid: c for cid, c in companies.items() if c.ai_budget is not None}
        installation = self.settings.installation_budget
        if not budgeted and installation is None:
            return {}
        room: dict[UUID, Decimal] = {}
        with self.engine.connect() as conn:
            starts = {
                cid: c.ai_budget.window(now, c.timezone)[0]
                for cid, c in budgeted.items()
                if c.ai_budget is not None
            }
            spent = spend_in_periods(conn, starts)
            for cid, c in budgeted.items():
                assert c.ai_budget is not None
                room[cid] = c.ai_budget.amount_eur - spent[cid]
            if installation is not None:
                start, _ = installation.window(now)
                total = sum(spend_since(conn, start).values(), Decimal(0))
                room[INSTALLATION] = installation.amount_eur - total
        return room
