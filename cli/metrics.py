"""`livedash run --metrics-port`: the daemon's metrics and health checks, put together.

Its own counters (`processors/runtime/metrics.py`), the installation's gauges read from the
projection store (`projections/metrics_collector.py`) and the health checks
(`projections/health.py`), served on a background thread (`processors/runtime/metrics_server`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cli.errors import CliError, ExitCode
from cli.runtime import Runtime
from processors.net.netguard import is_loopback
from processors.runtime.daemon import Daemon
from processors.runtime.metrics import DaemonMetrics
from processors.runtime.metrics_server import MetricsServer
from processors.runtime.reporting import Reporter
from projections.health import DEFAULT_MAX_LAG_EVENTS, HealthEndpoints
from projections.metrics_collector import StoreGauges


@dataclass(frozen=True)
class MetricsOptions:
    port: int
    """0: any free port (the `metrics_listening` log line says which)."""
    host: str = "127.0.0.1"
    max_lag_events: int = DEFAULT_MAX_LAG_EVENTS


def serve_metrics(
    rt: Runtime,
    daemon: Daemon,
    metrics: DaemonMetrics,
    options: MetricsOptions,
    reporter: Reporter,
) -> MetricsServer:
    """Starts serving `/metrics`, `/healthz` and `/readyz` for ``daemon``; the caller stops it."""
    metrics.include(StoreGauges(rt.runner))

    def alive() -> dict[str, Any]:
        return {"worker": metrics.worker, "database": "away" if daemon.offline else "ok"}

    endpoints = HealthEndpoints(metrics.registry, rt.runner, options.max_lag_events, alive)
    try:
        server = MetricsServer(endpoints, options.host, options.port).start()
    except OSError as e:
        raise CliError(
            f"cannot serve metrics on {options.host}:{options.port}: {e.strerror or e}",
            hint="choose another --metrics-port (0 picks a free one) or --metrics-host",
            code=ExitCode.USAGE,
        ) from None
    reporter.log("metrics_listening", url=server.url, port=server.port, worker=metrics.worker)
    if not is_loopback(options.host):
        reporter.log(
            "metrics_exposed",
            host=options.host,
            detail="the metrics and health pages have no authentication: anyone who can reach "
            "this address can read them (pipeline counts, model names, costs)",
        )
    return server
