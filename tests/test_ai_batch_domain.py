"""The AIBatch aggregate's rules, and the optimistic-concurrency guard two daemons rely on: of
two senders that loaded the same batch, only one can store its send lease."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from eventsourcing.persistence import IntegrityError

from domain.ai_batch import AIBatch, BatchError, BatchRequest, batch_id_for, batch_of_worker
from tests.harness import runtime
from tests.openai_server import FakeOpenAI

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


def batch() -> AIBatch:
    key = uuid.uuid4().hex
    request = BatchRequest(
        custom_id="ld-1", session_id=uuid.uuid4(), company_id=uuid.uuid4(), attempt=1
    )
    return AIBatch.prepare(
        key,
        "gpt-4o-mini",
        [request],
        "ab" * 32,
        120,
        Decimal("0.0003"),
        f"batch:{batch_id_for(key)}",
        NOW,
    )


def test_the_send_lease_and_the_life_of_a_batch() -> None:
    b = batch()
    assert batch_of_worker(b.worker) == b.id and batch_of_worker("host:1:abc") is None
    b.start_send("a", NOW + timedelta(minutes=10), NOW)
    with pytest.raises(BatchError, match="a is sending it"):
        b.start_send("b", NOW + timedelta(minutes=10), NOW + timedelta(minutes=1))
    b.start_send("b", NOW + timedelta(minutes=30), NOW + timedelta(minutes=11))  # lease ran out
    b.file_uploaded("file-1", "cd" * 32, NOW)
    b.submitted("batch_1", "validating", False, NOW)
    b.submitted("batch_1", "validating", True, NOW)  # the same id again: nothing new
    with pytest.raises(BatchError, match="submitted already"):
        b.submitted("batch_2", "validating", False, NOW)
    with pytest.raises(BatchError, match="not abandoned"):
        b.abandon("why", NOW)
    assert b.status_seen("in_progress", {"total": 1}, NOW)
    assert not b.status_seen("in_progress", {"total": 1}, NOW)
    b.finish("completed", 1, 0, 0, Decimal("0.0001"), NOW)
    with pytest.raises(BatchError, match="finished"):
        b.status_seen("completed", {}, NOW)


def test_two_senders_of_one_batch_cannot_both_store_their_lease(tmp_path: Path) -> None:
    with runtime(f"sqlite:///{tmp_path / 'b.db'}") as rt:
        b = batch()
        rt.app.save(b)
        first, second = rt.app.find_batch(b.id), rt.app.find_batch(b.id)
        assert first is not None and second is not None
        first.start_send("a", NOW + timedelta(minutes=10), NOW)
        second.start_send("b", NOW + timedelta(minutes=10), NOW)
        rt.app.save(first)
        with pytest.raises(IntegrityError):
            rt.app.save(second)
        stored = rt.app.find_batch(b.id)
        assert stored is not None and stored.sender == "a"
        assert stored.requests == b.requests and stored.cost_eur_estimated == Decimal("0.0003")


def test_the_fake_servers_batches_cancel_and_list_like_the_api() -> None:
    with FakeOpenAI(api_key="k") as server:
        client = openai.OpenAI(api_key="k", base_url=server.base_url, max_retries=0)
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "User: hoi?"}]}
        line = {"custom_id": "c1", "method": "POST", "url": "/v1/chat/completions", "body": body}
        file = client.files.create(file=("in.jsonl", json.dumps(line).encode()), purpose="batch")
        made = [
            client.batches.create(
                input_file_id=file.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                metadata={"livedash_batch": f"k{i}"},
            )
            for i in range(3)
        ]
        assert client.batches.cancel(made[0].id).status == "cancelling"
        done = client.batches.retrieve(made[0].id)
        assert (done.status, done.output_file_id) == ("cancelled", None)
        assert done.request_counts is not None and done.request_counts.failed == 1
        page = client.batches.list(limit=2)
        assert [b.id for b in page.data] == [made[2].id, made[1].id] and page.has_more
        rest = client.batches.list(limit=2, after=made[1].id)
        assert [b.id for b in rest.data] == [made[0].id]
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(api_key="bad", base_url=server.base_url, max_retries=0).batches.list()
        assert server.batches.creates == 3 and server.paid == 0
