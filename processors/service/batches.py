"""`livedash batches`: the Batch API jobs, open ones from the status projection, all of them
from the log."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel
from sqlalchemy import select

from domain.ai_batch import AIBatch, batch_of_worker
from domain.stages import Stage, Status
from processors.service.backend import Backend
from projections.schema import session_stage_status as sss

PAGE = 1000


class BatchRow(BaseModel):
    id: UUID
    key: str
    provider_batch_id: str | None
    status: str
    finished: bool
    model: str
    requests: int
    cost_eur_estimated: Decimal | None
    prepared_at: datetime
    updated_at: datetime
    counts: dict[str, int]


def list_batches(backend: Backend, everything: bool = False) -> list[BatchRow]:
    """Open batches (their sessions are claimed for them); with ``everything``, every batch
    ever prepared, read from the log by topic (a scan of the log: slower on a big one)."""
    backend.catch_up()
    ids: list[UUID] = []
    if everything:
        recorder = backend.app.recorder
        start = 0
        while True:
            page = recorder.select_notifications(
                start=start, limit=PAGE, topics=[AIBatch.Prepared.TOPIC], inclusive_of_start=False
            )
            ids.extend(UUID(str(n.originator_id)) for n in page)
            if len(page) < PAGE:
                break
            start = page[-1].id
    else:
        with backend.engine.connect() as conn:
            workers = conn.execute(
                select(sss.c.worker)
                .where(
                    sss.c.stage == Stage.AI_ANALYSIS.value,
                    sss.c.status == Status.IN_PROGRESS.value,
                    sss.c.worker.like("batch:%"),
                )
                .distinct()
            ).scalars()
            ids = [bid for w in workers if (bid := batch_of_worker(w)) is not None]
    rows = []
    for bid in dict.fromkeys(ids):
        batch = backend.app.find_batch(bid)
        if batch is None:
            continue
        rows.append(
            BatchRow(
                id=batch.id,
                key=batch.key,
                provider_batch_id=batch.provider_batch_id,
                status=batch.status,
                finished=batch.finished,
                model=batch.model,
                requests=len(batch.requests),
                cost_eur_estimated=batch.cost_eur_estimated,
                prepared_at=batch.created_on,
                updated_at=batch.modified_on,
                counts=batch.counts,
            )
        )
    return sorted(rows, key=lambda r: r.prepared_at)
