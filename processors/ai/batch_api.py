"""The Batch API calls we make, through the `openai` client: upload, create, find, poll, read.

`find` is what makes a resumed batch safe: a batch is created with ``metadata={"livedash_batch":
key}``, so one whose id never reached the store (a crash between create and record) is found
among the server's recent batches instead of being created a second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import openai

METADATA_KEY = "livedash_batch"
FIND_PAGES = 5
"""Pages of 100 recent batches searched for one created before a crash."""


@dataclass(frozen=True)
class BatchState:
    id: str
    status: str
    output_file_id: str | None
    error_file_id: str | None
    counts: dict[str, int]
    errors: str | None

    @classmethod
    def of(cls, batch: Any) -> BatchState:
        counts = getattr(batch, "request_counts", None)
        errors = getattr(getattr(batch, "errors", None), "data", None) or []
        return cls(
            id=batch.id,
            status=batch.status,
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
            counts={
                "total": int(getattr(counts, "total", 0) or 0),
                "completed": int(getattr(counts, "completed", 0) or 0),
                "failed": int(getattr(counts, "failed", 0) or 0),
            },
            errors="; ".join(
                f"line {getattr(e, 'line', '?')}: {getattr(e, 'code', '')} "
                f"{getattr(e, 'message', '')}"
                for e in errors[:5]
            )
            or None,
        )


class BatchAPI:
    def __init__(self, client: openai.OpenAI, owns_client: bool = True) -> None:
        self.client = client
        self.owns_client = owns_client
        """False: the client is the analyser's, which closes it."""

    def upload(self, content: bytes, name: str) -> str:
        return self.client.files.create(file=(name, content), purpose="batch").id

    def create(self, file_id: str, key: str, endpoint: str, window: str) -> BatchState:
        batch = self.client.batches.create(
            input_file_id=file_id,
            endpoint=endpoint,  # type: ignore[arg-type]
            completion_window=window,  # type: ignore[arg-type]
            metadata={METADATA_KEY: key},
        )
        return BatchState.of(batch)

    def find(self, key: str) -> BatchState | None:
        """The server's batch made for ``key``, if one was created (newest first)."""
        after: str | None = None
        for _ in range(FIND_PAGES):
            page = self.client.batches.list(limit=100, after=after or openai.omit)
            for batch in page.data:
                if (batch.metadata or {}).get(METADATA_KEY) == key:
                    return BatchState.of(batch)
            if not page.has_more or not page.data:
                return None
            after = page.data[-1].id
        return None

    def poll(self, batch_id: str) -> BatchState:
        return BatchState.of(self.client.batches.retrieve(batch_id))

    def content(self, file_id: str | None) -> str:
        if not file_id:
            return ""
        return self.client.files.content(file_id).text

    def close(self) -> None:
        if self.owns_client:
            self.client.close()
