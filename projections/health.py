"""Health checks and the metrics page for orchestrators and Prometheus, with no web framework:
each answer is ``(status_code, body, content_type)``, so any server can mount them.

- ``/healthz``: the process is alive (200 and a small JSON object, always).
- ``/readyz``: 200 when the database answers, the projection schema is current and no
  projection lags the log by more than ``max_lag_events``; 503 otherwise, with the reasons.
- ``/metrics``: the Prometheus text format of ``registry``.

How `livedash serve` (or any ASGI/WSGI app) mounts them, e.g. with Starlette::

    health = HealthEndpoints(installation_registry(rt.runner), rt.runner)
    async def endpoint(request):  # routed for /metrics, /healthz and /readyz
        code, body, ctype = await run_in_threadpool(health.respond, request.url.path)
        return Response(body, status_code=code, media_type=ctype)

(`respond` blocks on the database: run it in a thread pool under an async server.)
An unknown path answers 404, so a catch-all route may hand everything to it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from projections.metrics_collector import StoreGauges
from projections.runner import ProjectionRunner
from projections.store import SchemaMissing, check_schema

DEFAULT_MAX_LAG_EVENTS = 10_000
"""Events a projection may lag the log before `/readyz` says not ready: a daemon catching up
after a burst is still ready; one whose projections are stuck is not."""

JSON = "application/json"
Answer = tuple[int, bytes, str]


@dataclass
class Readiness:
    ready: bool
    reasons: list[str] = field(default_factory=list)
    """Why not ready (empty when ready)."""
    lag_events: int | None = None
    """The largest lag of any projection, in events (None: not measured)."""
    max_lag_events: int = DEFAULT_MAX_LAG_EVENTS


def readiness(runner: ProjectionRunner, max_lag_events: int = DEFAULT_MAX_LAG_EVENTS) -> Readiness:
    """Database reachable, schema current, projections caught up: checked in that order, and
    the first that fails is the reason (the later ones cannot be asked)."""
    result = Readiness(ready=False, max_lag_events=max_lag_events)
    try:
        with runner.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as e:
        result.reasons.append(f"database unreachable: {_first_line(e)}")
        return result
    try:
        check_schema(runner.engine)
        lags = runner.lag()
    except SchemaMissing as e:
        result.reasons.append(f"schema not current: {e} (run `livedash init`)")
        return result
    except Exception as e:  # the event store's driver raises its own types
        result.reasons.append(f"database unreachable: {_first_line(e)}")
        return result
    result.lag_events = max((lag.events_behind for lag in lags), default=0)
    behind = [lag for lag in lags if lag.events_behind > max_lag_events]
    for lag in behind:
        result.reasons.append(
            f"projection {lag.name} lags the log by {lag.events_behind} events "
            f"(over {max_lag_events})"
        )
    result.ready = not behind
    return result


def installation_registry(runner: ProjectionRunner, max_age: float = 1.0) -> CollectorRegistry:
    """A registry of its own (not the process-wide default) with the installation's gauges."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreGauges(runner, max_age))
    return registry


class HealthEndpoints:
    """``respond(path)`` answers ``/metrics``, ``/healthz`` and ``/readyz`` (see the module).

    ``alive`` adds fields to `/healthz` (a daemon's worker id, whether its database is away)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        runner: ProjectionRunner,
        max_lag_events: int = DEFAULT_MAX_LAG_EVENTS,
        alive: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.registry = registry
        self.runner = runner
        self.max_lag_events = max_lag_events
        self.alive = alive
        self.started = time.monotonic()

    def respond(self, path: str) -> Answer:
        path = path.split("?", 1)[0].rstrip("/") or "/"
        if path == "/metrics":
            return 200, generate_latest(self.registry), CONTENT_TYPE_LATEST
        if path == "/healthz":
            body = {"status": "alive", "uptime_seconds": round(time.monotonic() - self.started)}
            if self.alive is not None:
                body.update(self.alive())
            return 200, _json(body), JSON
        if path == "/readyz":
            ready = readiness(self.runner, self.max_lag_events)
            return (200 if ready.ready else 503), _json(asdict(ready)), JSON
        return 404, _json({"error": f"no such page: {path}"}), JSON


def _json(body: dict[str, Any]) -> bytes:
    return (json.dumps(body, default=str) + "\n").encode()


def _first_line(error: BaseException) -> str:
    orig = getattr(error, "orig", None)
    lines = str(orig if orig is not None else error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
