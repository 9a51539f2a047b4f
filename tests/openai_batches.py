"""The Files and Batches endpoints of the fake OpenAI server (`tests.openai_server.FakeOpenAI`).

    server.batches.polls_to_finish = 2        # terminal on the 2nd GET /v1/batches/{id}
    server.batches.failing = lambda cid: cid.endswith("3")   # those lines go to the error file
    server.batches.outcome = "expired"        # or "failed" (validation), "completed"
    server.batches.answer_before_expiry = 2   # an expired batch answers only its first lines

Like the real API: ``POST /v1/files`` (multipart, ``purpose=batch``), ``GET /v1/files/{id}``
and ``/content``, ``POST /v1/batches`` (with ``metadata``), ``GET /v1/batches`` (newest first,
``after``/``limit``), ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``. The input
file is validated when the batch is created (JSONL, unique ``custom_id``, ``POST`` to the
batch's endpoint); an invalid file makes a ``failed`` batch with ``errors``. Each line that is
answered goes through the server's chat logic (its script, its checks, its counters: a line
answered is one entry of ``requests``/``sent``, as a paid request is), into the output file
(2xx) or the error file (anything else, and the lines made to fail). ``creates`` counts batch
creations: a client that resumes must not add one.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.openai_server import FakeOpenAI

Answer = tuple[int, dict[str, Any] | bytes]


@dataclass
class _Batch:
    body: dict[str, Any]
    lines: list[dict[str, Any]]
    polls: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)


class FakeBatches:
    def __init__(self, owner: FakeOpenAI) -> None:
        self.owner = owner
        self.lock = threading.Lock()
        self.files: dict[str, tuple[str, str, bytes]] = {}
        """id -> (purpose, filename, content)."""
        self.batches: dict[str, _Batch] = {}
        self.order: list[str] = []
        self.creates = 0
        self.uploads = 0
        self.polls = 0
        self.calls = 0
        """Every request to the files and batches endpoints."""
        self._ids = itertools.count(1)
        self.polls_to_finish = 1
        """GETs of a batch after which it is terminal (1: the first poll finds it done)."""
        self.outcome = "completed"
        """completed | expired | failed (validation)."""
        self.answer_before_expiry = 0
        self.failing: Callable[[str], bool] = lambda _cid: False
        """Lines (by custom_id) that fail with a 500 in the error file."""

    # ----------------------------------------------------------- dispatch
    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], raw: bytes
    ) -> Answer:
        parts = [p for p in path.split("/") if p][1:]  # after "v1"
        with self.lock:
            self.calls += 1
        if method == "POST" and parts == ["files"]:
            return self._upload(headers, raw)
        if method == "GET" and len(parts) == 2 and parts[0] == "files":
            return self._file(parts[1])
        if method == "GET" and len(parts) == 3 and parts[0] == "files" and parts[2] == "content":
            with self.lock:
                found = self.files.get(parts[1])
            if found is None:
                return 404, _error(f"No such File object: {parts[1]}")
            return 200, found[2]
        if method == "POST" and parts == ["batches"]:
            return self._create(raw)
        if method == "GET" and parts == ["batches"]:
            return self._list(query)
        if method == "GET" and len(parts) == 2 and parts[0] == "batches":
            return self._poll(parts[1])
        if method == "POST" and len(parts) == 3 and parts[0] == "batches" and parts[2] == "cancel":
            return self._cancel(parts[1])
        return 404, _error(f"Unknown request URL: {method} {path}.")

    # -------------------------------------------------------------- files
    def _upload(self, headers: dict[str, str], raw: bytes) -> Answer:
        ctype = headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            return 400, _error("expected multipart/form-data")
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + raw
        )
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            fields[str(name)] = (
                part.get_filename(),
                payload if isinstance(payload, bytes) else b"",
            )
        purpose = fields.get("purpose", (None, b""))[1].decode()
        if "file" not in fields:
            return 400, _error("'file' is a required property")
        if purpose != "batch":
            return 400, _error(f"this fake only takes purpose=batch, not {purpose!r}")
        filename, content = fields["file"]
        with self.lock:
            file_id = f"file-{next(self._ids)}"
            self.files[file_id] = ("batch", filename or "upload.jsonl", content)
            self.uploads += 1
        return 200, self._file_object(file_id)

    def _file(self, file_id: str) -> Answer:
        with self.lock:
            if file_id not in self.files:
                return 404, _error(f"No such File object: {file_id}")
        return 200, self._file_object(file_id)

    def _file_object(self, file_id: str) -> dict[str, Any]:
        purpose, filename, content = self.files[file_id]
        return {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }

    def _store_file(self, name: str, lines: list[dict[str, Any]]) -> str | None:
        if not lines:
            return None
        content = "".join(json.dumps(line) + "\n" for line in lines).encode()
        with self.lock:
            file_id = f"file-{next(self._ids)}"
            self.files[file_id] = ("batch_output", name, content)
        return file_id

    # ------------------------------------------------------------ batches
    def _create(self, raw: bytes) -> Answer:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return 400, _error("We could not parse the JSON body of your request.")
        file_id = body.get("input_file_id")
        endpoint = body.get("endpoint")
        with self.lock:
            found = self.files.get(str(file_id))
        if found is None:
            return 400, _error(f"No such File object: {file_id}")
        if body.get("completion_window") != "24h":
            return 400, _error("completion_window must be 24h")
        lines, problems = _parse_input(found[2], str(endpoint))
        with self.lock:
            self.creates += 1
            batch_id = f"batch_{next(self._ids)}"
            now = int(time.time())
            self.batches[batch_id] = _Batch(
                {
                    "id": batch_id,
                    "object": "batch",
                    "endpoint": endpoint,
                    "errors": None,
                    "input_file_id": file_id,
                    "completion_window": "24h",
                    "status": "validating",
                    "output_file_id": None,
                    "error_file_id": None,
                    "created_at": now,
                    "expires_at": now + 86400,
                    "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                    "metadata": body.get("metadata") or None,
                },
                lines,
                problems=problems,
            )
            self.order.append(batch_id)
            return 200, dict(self.batches[batch_id].body)

    def _list(self, query: dict[str, str]) -> Answer:
        limit = int(query.get("limit") or 20)
        with self.lock:
            ids = list(reversed(self.order))
            if query.get("after") in ids:
                ids = ids[ids.index(query["after"]) + 1 :]
            page = [dict(self.batches[i].body) for i in ids[:limit]]
        return 200, {
            "object": "list",
            "data": page,
            "has_more": len(ids) > limit,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }

    def _cancel(self, batch_id: str) -> Answer:
        with self.lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return 404, _error(f"No such Batch object: {batch_id}")
            if batch.body["status"] in ("validating", "in_progress"):
                batch.body["status"] = "cancelling"
            return 200, dict(batch.body)

    def _poll(self, batch_id: str) -> Answer:
        with self.lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return 404, _error(f"No such Batch object: {batch_id}")
            self.polls += 1
            batch.polls += 1
            status = batch.body["status"]
            if status in ("completed", "expired", "failed", "cancelled"):
                return 200, dict(batch.body)
            if status == "validating":
                batch.body["status"] = "in_progress"
            if batch.polls < self.polls_to_finish and status != "cancelling":
                return 200, dict(batch.body)
            outcome = "cancelled" if status == "cancelling" else self.outcome
            if batch.problems:
                outcome = "failed"
        self._finish(batch, outcome)
        with self.lock:
            return 200, dict(batch.body)

    def _finish(self, batch: _Batch, outcome: str) -> None:
        now = int(time.time())
        if outcome == "failed":
            problems = batch.problems or [
                {"code": "invalid_request", "message": "validation failed", "line": 1}
            ]
            with self.lock:
                batch.body.update(
                    status="failed", failed_at=now, errors={"object": "list", "data": problems}
                )
            return
        answered = batch.lines
        if outcome in ("expired", "cancelled"):
            answered = batch.lines[: self.answer_before_expiry if outcome == "expired" else 0]
        output: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for line in answered:
            cid = str(line["custom_id"])
            if self.failing(cid):
                errors.append(_result_line(cid, 500, f"req_{cid}", _error("server error")))
                continue
            status, rid, payload = self.owner.answer_line(line.get("body") or {})
            (output if status == 200 else errors).append(_result_line(cid, status, rid, payload))
        for line in batch.lines[len(answered) :]:
            code = "batch_expired" if outcome == "expired" else "batch_cancelled"
            errors.append(
                {
                    "id": f"batch_req_{line['custom_id']}",
                    "custom_id": line["custom_id"],
                    "response": None,
                    "error": {"code": code, "message": f"This request was {outcome}."},
                }
            )
        output_id = self._store_file("batch_output.jsonl", output)
        error_id = self._store_file("batch_errors.jsonl", errors)
        with self.lock:
            batch.body.update(
                status=outcome,
                output_file_id=output_id,
                error_file_id=error_id,
                request_counts={
                    "total": len(batch.lines),
                    "completed": len(output),
                    "failed": len(errors),
                },
            )
            batch.body[f"{outcome}_at"] = now


def _parse_input(
    content: bytes, endpoint: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    lines: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, text in enumerate(content.decode("utf-8", "replace").splitlines(), 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except ValueError:
            problems.append({"code": "invalid_json_line", "message": "not JSON", "line": number})
            continue
        cid = line.get("custom_id") if isinstance(line, dict) else None
        if not isinstance(cid, str) or cid in seen:
            problems.append(
                {"code": "duplicate_custom_id", "message": f"custom_id {cid!r}", "line": number}
            )
            continue
        if line.get("method") != "POST" or line.get("url") != endpoint:
            problems.append(
                {"code": "mismatched_endpoint", "message": str(line.get("url")), "line": number}
            )
            continue
        seen.add(cid)
        lines.append(line)
    return lines, problems


def _result_line(cid: str, status: int, rid: str, payload: Any) -> dict[str, Any]:
    return {
        "id": f"batch_req_{cid}",
        "custom_id": cid,
        "error": None,
        "response": {"status_code": status, "request_id": rid, "body": payload},
    }


def _error(message: str, code: str | None = None) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }
