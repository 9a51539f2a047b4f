"""A fake OpenAI-compatible chat-completions server on 127.0.0.1 for tests and the benchmark.

    with FakeOpenAI([rate_limited("2"), ok()], latency=0.05) as server:
        client = openai.OpenAI(api_key="test", base_url=server.base_url, max_retries=0)
        ...
        assert server.paid == 1 and server.total == 2

It answers ``POST /v1/chat/completions`` (and ``/chat/completions``) like the real API: the
completion JSON with ``usage`` (cached and reasoning token details), an ``x-request-id`` header,
dated model names, and OpenAI-shaped error bodies. What each request gets is scripted: a list of
`Reply` values consumed one per request (then ``default``), or a function of the request. A
valid answer is derived from the transcript in the prompt, so it changes with the input.

It checks what the real API checks and our code relies on: a ``json_schema`` response format must
be strict (every object closed, every property required, only the keywords strict mode accepts),
JSON mode needs the word "json" in the messages, and servers built with
``supports_json_schema=False`` reject ``json_schema`` as many compatible servers do.

Counting: ``total`` requests, ``paid`` = 2xx completions actually delivered (a client that hung
up during a slow answer is counted in ``abandoned`` instead). Thread-safe; one thread per
connection, so concurrent requests with a fixed latency run in parallel.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import select
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.openai_batches import FakeBatches
from tests.servers import BoundedHTTPServer, ServedInThread

SNAPSHOTS: dict[str, str] = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
}
"""Requested name → the dated snapshot the server says it used (others are echoed)."""

STRICT_KEYWORDS = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "description",
    "anyOf",
    "$defs",
    "$ref",
    "title",
    "pattern",
    "format",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
}


@dataclass(frozen=True)
class Reply:
    """What the server does with one request."""

    kind: str = "ok"
    """ok | content | invalid_json | schema_invalid | refusal | no_usage | length |
    rate_limited | server_error | context_length | bad_request | reject_schema | unauthorized |
    not_found | quota | not_json"""
    latency: float | None = None
    """Seconds before the answer; None: the server's default latency."""
    model: str | None = None
    """The model name in the answer; None: the dated snapshot of the requested model."""
    content: str | None = None
    """The message content for kind ``content`` (exactly this text)."""
    refusal: str = "I'm sorry, I can't help with that request."
    status: int | None = None
    message: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_after: str | None = None
    prompt_tokens: int | None = None
    """None: estimated from the request (characters / 4)."""
    completion_tokens: int | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    request_id: str | None = None


def ok(**changes: Any) -> Reply:
    return Reply("ok", **changes)


def content(text: str, **changes: Any) -> Reply:
    return Reply("content", content=text, **changes)


def invalid_json(**changes: Any) -> Reply:
    return Reply("invalid_json", **changes)


def schema_invalid(**changes: Any) -> Reply:
    return Reply("schema_invalid", **changes)


def refusal(text: str = "I'm sorry, I can't help with that request.", **changes: Any) -> Reply:
    return Reply("refusal", refusal=text, **changes)


def rate_limited(retry_after: str | None = "1", **changes: Any) -> Reply:
    return Reply("rate_limited", retry_after=retry_after, **changes)


def server_error(status: int = 500, **changes: Any) -> Reply:
    return Reply("server_error", status=status, **changes)


def context_length(**changes: Any) -> Reply:
    return Reply("context_length", **changes)


def reject_schema(**changes: Any) -> Reply:
    return Reply("reject_schema", **changes)


@dataclass(frozen=True)
class ChatRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def response_format(self) -> str | None:
        rf = self.body.get("response_format")
        return rf.get("type") if isinstance(rf, dict) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.body.get("messages")
        return messages if isinstance(messages, list) else []

    def text(self, role: str | None = None) -> str:
        return "\n".join(
            str(m.get("content") or "")
            for m in self.messages
            if isinstance(m, dict) and (role is None or m.get("role") == role)
        )


@dataclass(frozen=True)
class Sent:
    status: int
    request_id: str
    paid: bool
    model: str | None = None
    content: str | None = None
    usage: dict[str, Any] | None = None


Script = Sequence[Reply] | Callable[[ChatRequest], Reply] | None


class FakeOpenAI(ServedInThread):
    def __init__(
        self,
        script: Script = None,
        *,
        default: Reply | None = None,
        latency: float = 0.0,
        supports_json_schema: bool = True,
        api_key: str | None = None,
        snapshots: Mapping[str, str] | None = None,
    ) -> None:
        self.default = default or ok()
        self.latency = latency
        self.supports_json_schema = supports_json_schema
        self.api_key = api_key
        self.snapshots = dict(SNAPSHOTS if snapshots is None else snapshots)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: deque[Reply] = deque()
        self._function: Callable[[ChatRequest], Reply] | None = None
        self.script(script)
        self._ids = itertools.count(1)
        self.requests: list[ChatRequest] = []
        self.sent: list[Sent] = []
        self.abandoned = 0
        self.active = 0
        self.max_active = 0
        self.batches = FakeBatches(self)
        """The Files and Batches endpoints (tests/openai_batches.py)."""
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        self._serve(httpd)

    # --------------------------------------------------------------- public
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def script(self, script: Script) -> None:
        """Replaces what the next requests get (a list is consumed, then ``default``)."""
        with self._lock:
            self._queue.clear()
            self._function = None
            if callable(script):
                self._function = script
            elif script:
                self._queue.extend(script)

    def add(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    @property
    def total(self) -> int:
        with self._lock:
            return len(self.requests)

    @property
    def paid(self) -> int:
        with self._lock:
            return sum(1 for s in self.sent if s.paid)

    def paid_responses(self) -> list[Sent]:
        with self._lock:
            return [s for s in self.sent if s.paid]

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Waits until no request is being handled (a slow answer may outlive its client)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self.active:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def answer_line(self, body: dict[str, Any]) -> tuple[int, str, Any]:
        """One line of a batch, answered as a chat request (scripted, checked and counted
        like one): (status, request id, body)."""
        request = ChatRequest("/v1/chat/completions", {}, body)
        reply = self._arrived(request)
        sent: Sent | None = None
        try:
            status, headers, payload = self._answer(request, reply, batch=True)
            sent = _record(status, headers, payload)
            return status, headers.get("x-request-id", ""), payload
        finally:
            self._finished(sent, False)

    # ------------------------------------------------------------- handling
    def _arrived(self, request: ChatRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            if self._function is not None:
                return self._function(request)
            return self._queue.popleft() if self._queue else self.default

    def authorised(self, headers: Mapping[str, str]) -> bool:
        return self.api_key is None or headers.get("authorization") == f"Bearer {self.api_key}"

    def _finished(self, sent: Sent | None, abandoned: bool) -> None:
        with self._lock:
            if sent is not None:
                self.sent.append(sent)
            if abandoned:
                self.abandoned += 1
            self.active -= 1
            self._idle.notify_all()

    def _answer(
        self, request: ChatRequest, reply: Reply, batch: bool = False
    ) -> tuple[int, dict[str, str], Any]:
        """(status, headers, JSON body) for one request; no waiting, no I/O. A batch line was
        authorised with its batch."""
        rid = reply.request_id or f"req_{uuid.uuid4().hex}"
        headers = {"x-request-id": rid, **reply.headers}
        if not batch and not self.authorised(request.headers):
            return 401, headers, _error("Incorrect API key provided.", "invalid_api_key")
        problem = _request_problem(request, self.supports_json_schema)
        if reply.kind == "reject_schema" and request.response_format == "json_schema":
            problem = _SCHEMA_UNSUPPORTED
        if problem is not None:
            return 400, headers, _error(problem, None, param="response_format")
        kind = reply.kind
        if kind == "rate_limited":
            if reply.retry_after is not None:
                headers["retry-after"] = reply.retry_after
            return (
                429,
                headers,
                _error(
                    reply.message or "Rate limit reached for requests",
                    "rate_limit_exceeded",
                    "requests",
                ),
            )
        if kind == "quota":
            return 429, headers, _error("You exceeded your current quota.", "insufficient_quota")
        if kind == "server_error":
            if reply.retry_after is not None:
                headers["retry-after"] = reply.retry_after
            message = reply.message or "The server had an error while processing your request."
            return reply.status or 500, headers, _error(message, None, "server_error")
        if kind == "context_length":
            return (
                400,
                headers,
                _error(
                    "This model's maximum context length is 128000 tokens. However, your "
                    "messages resulted in 131000 tokens. Please reduce the length of the messages.",
                    "context_length_exceeded",
                    param="messages",
                ),
            )
        if kind == "bad_request":
            return 400, headers, _error(reply.message or "Invalid request.", None)
        if kind == "unauthorized":
            return 401, headers, _error("Incorrect API key provided: sk-te***.", "invalid_api_key")
        if kind == "not_found":
            return (
                404,
                headers,
                _error(f"The model `{request.model}` does not exist.", "model_not_found"),
            )
        if kind == "not_json":
            return 200, headers, "<html>proxy error</html>"
        return 200, headers, self._completion(request, reply)

    def _completion(self, request: ChatRequest, reply: Reply) -> dict[str, Any]:
        text: str | None
        refused: str | None = None
        finish = "stop"
        if reply.kind == "content":
            text = reply.content
        elif reply.kind == "invalid_json":
            text = '{"language": "en", "sentiment": "NEUTRAL", "escalated": fal'
        elif reply.kind == "schema_invalid":
            bad = derive_analysis(request)
            bad.update(language="English", sentiment="HAPPY", summary="short")
            text = json.dumps(bad)
        elif reply.kind == "refusal":
            text, refused = None, reply.refusal
        elif reply.kind == "length":
            text, finish = json.dumps(derive_analysis(request))[:40], "length"
        else:
            text = json.dumps(derive_analysis(request))
        prompt = (
            reply.prompt_tokens
            if reply.prompt_tokens is not None
            else max(1, math.ceil(len(json.dumps(request.messages)) / 4))
        )
        completion = (
            reply.completion_tokens
            if reply.completion_tokens is not None
            else max(1, math.ceil(len(text or refused or "") / 4)) + reply.reasoning_tokens
        )
        body: dict[str, Any] = {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model or self.snapshots.get(request.model, request.model),
            "system_fingerprint": "fp_fake",
            "service_tier": "default",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": text,
                        "refusal": refused,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
        }
        if reply.kind != "no_usage":
            body["usage"] = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": reply.reasoning_tokens,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            }
        return body


_SCHEMA_UNSUPPORTED = (
    "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model."
)


def _error(message: str, code: str | None, kind: str = "invalid_request_error", **more: Any) -> Any:
    return {"error": {"message": message, "type": kind, "param": more.get("param"), "code": code}}


def _request_problem(request: ChatRequest, json_schema_ok: bool) -> str | None:
    """What the real API would reject in our kind of request (a 400 message), or None."""
    if not request.model:
        return "you must provide a model parameter"
    if not request.messages:
        return "'messages' must be a non-empty array"
    rf = request.body.get("response_format")
    if not isinstance(rf, dict):
        return None
    if rf.get("type") == "json_object" and "json" not in request.text().lower():
        return (
            "'messages' must contain the word 'json' in some form, to use 'response_format' "
            "of type 'json_object'."
        )
    if rf.get("type") == "json_schema":
        if not json_schema_ok:
            return _SCHEMA_UNSUPPORTED
        spec = rf.get("json_schema") or {}
        if not isinstance(spec, dict) or not re.fullmatch(
            r"[A-Za-z0-9_-]{1,64}", spec.get("name", "")
        ):
            return "Invalid 'response_format.json_schema.name'."
        problem = _strict_problem(spec.get("schema"), ()) if spec.get("strict") else None
        if problem:
            return f"Invalid schema for response_format '{spec['name']}': {problem}"
    return None


def _strict_problem(schema: Any, where: tuple[str, ...]) -> str | None:
    """Strict structured outputs: closed objects, all properties required, known keywords."""
    if not isinstance(schema, dict):
        return f"In context={where}, schema must be an object."
    for key in schema:
        if key not in STRICT_KEYWORDS:
            return f"In context={where}, '{key}' is not permitted."
    if schema.get("type") == "object":
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            return (
                f"In context={where}, 'additionalProperties' is required to be supplied "
                "and to be false."
            )
        if sorted(schema.get("required", [])) != sorted(props):
            return (
                f"In context={where}, 'required' is required to be supplied and to be an "
                "array including every key in properties."
            )
        for name, sub in props.items():
            problem = _strict_problem(sub, (*where, "properties", name))
            if problem:
                return problem
    if "items" in schema:
        return _strict_problem(schema["items"], (*where, "items"))
    return None


_USER_LINE = re.compile(r"^(?:\[[^\]]*\]\s*)?user:\s?(?P<text>.*)$", re.IGNORECASE)
_DUTCH = {"ik", "de", "het", "een", "niet", "mijn", "wat", "hoe", "moet", "ziek", "hoi"}


def derive_analysis(request: ChatRequest) -> dict[str, Any]:
    """A schema-valid analysis computed from the transcript in the request's user message."""
    transcript = ""
    for m in request.messages:
        if isinstance(m, dict) and m.get("role") == "user":
            transcript = str(m.get("content") or "")
            break
    said = [
        match["text"].strip()
        for line in transcript.splitlines()
        if (match := _USER_LINE.match(line.strip()))
    ]
    words = {w.strip(".,!?").lower() for text in said for w in text.split()}
    questions = [q[:200] for q in said if q.endswith("?")][:5]
    lowered = " ".join(said).lower()
    category = "UNRECOGNIZED_OTHER"
    for keyword, value in (
        ("ziek", "SICK_LEAVE_RECOVERY"),
        ("sick", "SICK_LEAVE_RECOVERY"),
        ("salary", "SALARY_COMPENSATION"),
        ("salaris", "SALARY_COMPENSATION"),
        ("vakantie", "LEAVE_VACATION"),
        ("holiday", "LEAVE_VACATION"),
        ("password", "ACCESS_LOGIN"),
    ):
        if keyword in lowered:
            category = value
            break
    return {
        "language": "nl" if len(words & _DUTCH) >= 2 else "en",
        "sentiment": "NEGATIVE" if "angry" in lowered or "boos" in lowered else "NEUTRAL",
        "escalated": "manager" in lowered,
        "forwarded_hr": " hr" in f" {lowered}",
        "category": category,
        "questions": questions,
        "summary": f"The user sent {len(said)} messages; topic {category.lower()}.",
    }


class _HTTPServer(BoundedHTTPServer):
    request_queue_size = 128
    owner: FakeOpenAI

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that give up (timeouts) are part of the tests."""


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    timeout = 5  # idle keep-alive connections end on their own
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls on keep-alive connections

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._files_and_batches("GET", b"")

    def _files_and_batches(self, method: str, raw: bytes) -> None:
        owner = self.server.owner
        path, _, query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        if not owner.authorised(headers):
            self._write(401, {}, _error("Incorrect API key provided.", "invalid_api_key"))
            return
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        status, payload = owner.batches.handle(method, path, params, headers, raw)
        self._write(status, {}, payload)

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?")[0]
        if path.startswith(("/v1/files", "/v1/batches")):
            self._files_and_batches("POST", raw)
            return
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self._write(404, {}, _error(f"Unknown request URL: POST {path}.", "unknown_url"))
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._write(400, {}, _error("We could not parse the JSON body of your request.", None))
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = ChatRequest(path, headers, body if isinstance(body, dict) else {})
        reply = owner._arrived(request)
        sent: Sent | None = None
        abandoned = False
        try:
            latency = owner.latency if reply.latency is None else reply.latency
            if latency > 0 and owner.stopping.wait(latency):
                abandoned = True
                return
            status, headers_out, payload = owner._answer(request, reply)
            if _client_gone(self.connection):
                abandoned = True
                return
            self._write(status, headers_out, payload)
            sent = _record(status, headers_out, payload)
        except (ConnectionError, TimeoutError, OSError):
            abandoned = True
        finally:
            owner._finished(sent, abandoned)

    def _write(self, status: int, headers: Mapping[str, str], payload: Any) -> None:
        """Status line, headers and body in one write: one segment, no Nagle stall."""
        if isinstance(payload, bytes):
            data, ctype = payload, "application/octet-stream"
        elif isinstance(payload, str):
            data, ctype = payload.encode(), "text/html"
        else:
            data, ctype = json.dumps(payload).encode(), "application/json"
        reason = self.responses.get(status, ("",))[0]
        lines = [
            f"{self.protocol_version} {status} {reason}",
            "Server: fake-openai",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {ctype}",
            f"Content-Length: {len(data)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)
        self.wfile.flush()


def _record(status: int, headers: Mapping[str, str], payload: Any) -> Sent:
    rid = headers.get("x-request-id", "")
    if status == 200 and isinstance(payload, dict):
        message = payload["choices"][0]["message"]
        return Sent(
            status,
            rid,
            paid=True,
            model=payload.get("model"),
            content=message.get("content") or message.get("refusal"),
            usage=payload.get("usage"),
        )
    return Sent(status, rid, paid=False)


def _client_gone(sock: socket.socket) -> bool:
    """True when the client closed its end (it gave up waiting for a slow answer)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def replies(*items: Reply | Iterable[Reply]) -> list[Reply]:
    """Flattens ``replies(ok(), [rate_limited()] * 3)`` into one script."""
    out: list[Reply] = []
    for item in items:
        if isinstance(item, Reply):
            out.append(item)
        else:
            out.extend(item)
    return out


def with_latency(reply: Reply, latency: float) -> Reply:
    return replace(reply, latency=latency)


__all__ = [
    "SNAPSHOTS",
    "ChatRequest",
    "FakeOpenAI",
    "Reply",
    "Sent",
    "content",
    "context_length",
    "derive_analysis",
    "invalid_json",
    "ok",
    "rate_limited",
    "refusal",
    "reject_schema",
    "replies",
    "schema_invalid",
    "server_error",
    "with_latency",
]
