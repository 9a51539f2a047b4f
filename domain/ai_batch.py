"""The AIBatch aggregate: one Batch API job (a JSONL file of paid requests sent at once).

Why an aggregate of its own: the batch's existence must be durable *before* anything leaves
the process, so that a crash at any point can be resumed without submitting twice. Its id is
``uuid5`` of a key the client chooses; the key also travels to the server as batch metadata
(``livedash_batch``), so a batch created whose id never reached the store is found again.

Life: ``Prepared`` (the requests, stored in the same transaction as each session's claim and
request intent) → ``FileUploaded`` → ``Submitted`` → ``StatusChanged``… → ``Finished``; or
``Abandoned`` when it was never submitted. The per-session outcome (usage, analysis, completion
or a retryable failure) is recorded on the sessions themselves, with the normal events.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate
from pydantic import BaseModel, ConfigDict

from domain.errors import DomainError

BATCH_NAMESPACE = UUID("6f1d3c1e-8b7a-4d59-9a51-2f0c64a0b7e3")
WORKER_PREFIX = "batch:"
"""A session claimed for a batch names it as its worker: ``batch:<AIBatch id>``."""
TERMINAL = frozenset({"completed", "expired", "failed", "cancelled"})
"""Batch API statuses after which nothing more comes."""


def batch_id_for(key: str) -> UUID:
    return uuid5(BATCH_NAMESPACE, key)


def worker_for(batch_id: UUID) -> str:
    return f"{WORKER_PREFIX}{batch_id}"


def batch_of_worker(worker: str | None) -> UUID | None:
    """The batch a session's claim belongs to, from its worker name; None for other workers."""
    if not worker or not worker.startswith(WORKER_PREFIX):
        return None
    try:
        return UUID(worker[len(WORKER_PREFIX) :])
    except ValueError:
        return None


class BatchError(DomainError):
    """A batch command that does not fit the batch's state."""


class BatchRequest(BaseModel):
    """One line of the batch: whose request it is, for which attempt."""

    model_config = ConfigDict(frozen=True)

    custom_id: str
    """Also the request intent's ``client_request_id``: links intent, line and usage."""
    session_id: UUID
    company_id: UUID
    attempt: int


class AIBatch(Aggregate):
    TOPIC = "livedash:AIBatch"

    class Event(Aggregate.Event):
        TOPIC = "livedash:AIBatch.Event"

    class Prepared(Event, Aggregate.Created):
        TOPIC = "livedash:AIBatch.Prepared"
        key: str
        model: str
        endpoint: str
        completion_window: str
        requests: list[BatchRequest]
        input_sha256: str
        input_bytes: int
        cost_eur_estimated: Decimal | None
        worker: str

    class SendStarted(Event):
        """One sender at a time: only the holder of an unexpired send lease uploads and
        creates, so two daemons resuming the same batch never both create it."""

        TOPIC = "livedash:AIBatch.SendStarted"
        sender: str
        until: datetime

        def apply(self, aggregate: AIBatch) -> None:
            aggregate.sender = self.sender
            aggregate.send_until = self.until

    class FileUploaded(Event):
        TOPIC = "livedash:AIBatch.FileUploaded"
        file_id: str
        sha256: str
        """Of the file as uploaded: ``Prepared``'s unless some sessions changed before it
        left (their lines were not sent), or the file was rebuilt after a crash."""

        def apply(self, aggregate: AIBatch) -> None:
            aggregate.file_id = self.file_id

    class Submitted(Event):
        TOPIC = "livedash:AIBatch.Submitted"
        batch_id: str
        status: str
        found_again: bool
        """True when the server had it already (created before a crash): not submitted twice."""

        def apply(self, aggregate: AIBatch) -> None:
            aggregate.provider_batch_id = self.batch_id
            aggregate.status = self.status

    class StatusChanged(Event):
        TOPIC = "livedash:AIBatch.StatusChanged"
        status: str
        counts: dict[str, int]

        def apply(self, aggregate: AIBatch) -> None:
            aggregate.status = self.status
            aggregate.counts = dict(self.counts)

    class Finished(Event):
        TOPIC = "livedash:AIBatch.Finished"
        status: str
        succeeded: int
        failed: int
        missing: int
        cost_eur: Decimal | None

        def apply(self, aggregate: AIBatch) -> None:
            aggregate.status = self.status
            aggregate.finished = True

    class Abandoned(Event):
        TOPIC = "livedash:AIBatch.Abandoned"
        reason: str

        def apply(self, aggregate: AIBatch) -> None:
            aggregate.status = "abandoned"
            aggregate.finished = True

    def __init__(
        self,
        key: str,
        model: str,
        endpoint: str,
        completion_window: str,
        requests: list[BatchRequest],
        input_sha256: str,
        input_bytes: int,
        cost_eur_estimated: Decimal | None,
        worker: str,
    ) -> None:
        self.key = key
        self.model = model
        self.endpoint = endpoint
        self.completion_window = completion_window
        self.requests = list(requests)
        self.input_sha256 = input_sha256
        self.input_bytes = input_bytes
        self.cost_eur_estimated = cost_eur_estimated
        self.worker = worker
        self.file_id: str | None = None
        self.provider_batch_id: str | None = None
        self.status = "prepared"
        self.counts: dict[str, int] = {}
        self.finished = False
        self.sender: str | None = None
        self.send_until: datetime | None = None

    @classmethod
    def prepare(
        cls,
        key: str,
        model: str,
        requests: list[BatchRequest],
        input_sha256: str,
        input_bytes: int,
        cost_eur_estimated: Decimal | None,
        worker: str,
        now: datetime,
        endpoint: str = "/v1/chat/completions",
        completion_window: str = "24h",
    ) -> AIBatch:
        if not requests:
            raise BatchError("a batch needs at least one request")
        return cls._create(
            cls.Prepared,
            id=batch_id_for(key),
            key=key,
            model=model,
            endpoint=endpoint,
            completion_window=completion_window,
            requests=requests,
            input_sha256=input_sha256,
            input_bytes=input_bytes,
            cost_eur_estimated=cost_eur_estimated,
            worker=worker,
            timestamp=now,
        )

    @property
    def by_custom_id(self) -> dict[str, BatchRequest]:
        return {r.custom_id: r for r in self.requests}

    def start_send(self, sender: str, until: datetime, now: datetime) -> None:
        """Takes the send lease; refused while another sender's lease runs."""
        self._require_open()
        if self.provider_batch_id is not None:
            raise BatchError("the batch is submitted already")
        if self.sender not in (None, sender) and self.send_until and self.send_until > now:
            raise BatchError(f"{self.sender} is sending it until {self.send_until:%H:%M:%S}")
        self.trigger_event(self.SendStarted, sender=sender, until=until, timestamp=now)

    def file_uploaded(self, file_id: str, sha256: str, now: datetime) -> None:
        self._require_open()
        if self.provider_batch_id is not None:
            raise BatchError("the batch is submitted already")
        self.trigger_event(self.FileUploaded, file_id=file_id, sha256=sha256, timestamp=now)

    def submitted(self, batch_id: str, status: str, found_again: bool, now: datetime) -> None:
        self._require_open()
        if self.provider_batch_id is not None:
            if self.provider_batch_id == batch_id:
                return
            raise BatchError(f"the batch is submitted already as {self.provider_batch_id}")
        self.trigger_event(
            self.Submitted, batch_id=batch_id, status=status, found_again=found_again, timestamp=now
        )

    def status_seen(self, status: str, counts: dict[str, int], now: datetime) -> bool:
        """Records a new status (or new counts); returns whether anything changed."""
        self._require_open()
        if status == self.status and counts == self.counts:
            return False
        self.trigger_event(self.StatusChanged, status=status, counts=counts, timestamp=now)
        return True

    def finish(
        self,
        status: str,
        succeeded: int,
        failed: int,
        missing: int,
        cost_eur: Decimal | None,
        now: datetime,
    ) -> None:
        self._require_open()
        self.trigger_event(
            self.Finished,
            status=status,
            succeeded=succeeded,
            failed=failed,
            missing=missing,
            cost_eur=cost_eur,
            timestamp=now,
        )

    def abandon(self, reason: str, now: datetime) -> None:
        self._require_open()
        if self.provider_batch_id is not None:
            raise BatchError("a submitted batch is finished by its results, not abandoned")
        self.trigger_event(self.Abandoned, reason=reason[:500], timestamp=now)

    def _require_open(self) -> None:
        if self.finished:
            raise BatchError(f"batch {self.key} is finished ({self.status})")

    def summary(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "key": self.key,
            "provider_batch_id": self.provider_batch_id,
            "status": self.status,
            "requests": len(self.requests),
            "model": self.model,
        }
