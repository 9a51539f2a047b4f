"""`livedash run`: the options of the daemon; `cli.bootstrap` builds and runs it."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Annotated

import typer

from cli.batch_mode import check_mode
from cli.bootstrap import make_reporter, one_daemon_on_sqlite, run_daemon, stage_configs
from cli.context import catch_up, handle_errors, state
from cli.errors import CliError, ExitCode
from cli.metrics import MetricsOptions
from cli.output import console
from domain.breaker import BreakerRules
from domain.stages import WORKER_STAGES, Stage
from processors.runtime.batch_settings import BatchSettings
from processors.runtime.config import DaemonConfig
from projections.health import DEFAULT_MAX_LAG_EVENTS

FAIRNESS = ("company", "fifo")


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def _pairs(value: str | None, what: str) -> dict[Stage, float]:
    result: dict[Stage, float] = {}
    for item in (value or "").split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise CliError(f"bad {what} {item!r}", hint="use STAGE=N, e.g. TRANSCRIPT_FETCH=8")
        name, _, number = item.partition("=")
        try:
            result[Stage.parse(name)] = float(number)
        except ValueError as e:
            raise CliError(f"bad {what} {item!r}: {e}", code=ExitCode.USAGE) from None
    return result


@handle_errors
def run(
    ctx: typer.Context,
    stages: Annotated[
        str | None,
        typer.Option("--stages", help="Comma-separated stages to work on (default: all)"),
    ] = None,
    until_idle: Annotated[
        bool,
        typer.Option("--until-idle", help="Exit when nothing is due, running or retrying soon"),
    ] = False,
    concurrency: Annotated[
        str | None,
        typer.Option("--concurrency", help="Per stage, e.g. TRANSCRIPT_FETCH=32,AI_ANALYSIS=8"),
    ] = None,
    lease: Annotated[
        str | None, typer.Option("--lease", help="Lease seconds per stage, e.g. AI_ANALYSIS=300")
    ] = None,
    idle_horizon: Annotated[
        float,
        typer.Option(
            "--idle-horizon",
            help="With --until-idle: wait for retries due within this many seconds",
        ),
    ] = 60.0,
    csv_interval: Annotated[
        float,
        typer.Option(
            "--csv-interval",
            help="Seconds between imports of each ACTIVE company's CSV source (0: never)",
        ),
    ] = 900.0,
    max_csv_bytes: Annotated[
        int | None,
        typer.Option(
            "--max-csv-bytes",
            min=1,
            help="Refuse a CSV source larger than this (default 1 GiB, or LIVEDASH_MAX_CSV_BYTES)",
        ),
    ] = None,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", help="Seconds between polls")
    ] = 1.0,
    grace: Annotated[
        float, typer.Option("--grace", help="Seconds in-flight work may finish after SIGTERM")
    ] = 30.0,
    worker_id: Annotated[
        str | None, typer.Option("--worker-id", help="Name recorded on claims")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Log every stage event as JSON lines")
    ] = False,
    fetch_per_host: Annotated[
        int | None,
        typer.Option(
            "--fetch-per-host",
            min=1,
            help="Transcript fetches from one host at once (default 4, LIVEDASH_FETCH_PER_HOST)",
        ),
    ] = None,
    heartbeat: Annotated[
        float,
        typer.Option(
            "--heartbeat",
            min=0.1,
            help="Seconds between the daemon's heartbeats in the fleet register (PostgreSQL: "
            "and partition renewals)",
        ),
    ] = 2.0,
    claim_timeout: Annotated[
        float,
        typer.Option(
            "--claim-timeout",
            min=0.2,
            help="PostgreSQL: seconds without a heartbeat after which a daemon's partitions "
            "may be taken over",
        ),
    ] = 5.0,
    no_circuit_breaker: Annotated[
        bool,
        typer.Option(
            "--no-circuit-breaker",
            help="Keep calling the model server however many calls fail (default: after "
            "--breaker-ratio of the last --breaker-window attempts failed with 5xx, timeouts or "
            "connection errors, the stage waits a cool-down, then sends one probe)",
        ),
    ] = False,
    breaker_window: Annotated[
        int, typer.Option("--breaker-window", min=1, help="Attempts the failure ratio is over")
    ] = 20,
    breaker_ratio: Annotated[
        float,
        typer.Option("--breaker-ratio", min=0.01, max=1.0, help="Failed share that opens it"),
    ] = 0.5,
    breaker_cool_down: Annotated[
        float,
        typer.Option("--breaker-cool-down", min=0.1, help="Seconds of the first opening (doubles)"),
    ] = 30.0,
    breaker_max_cool_down: Annotated[
        float, typer.Option("--breaker-max-cool-down", min=0.1, help="Longest cool-down")
    ] = 600.0,
    fairness: Annotated[
        str,
        typer.Option(
            "--fairness",
            help="company: the companies take turns for free slots, so one company's backlog "
            "does not hold up another's fresh sessions; fifo: oldest first whatever the company",
        ),
    ] = "company",
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            help="Serve /metrics (Prometheus), /healthz and /readyz on this port (0: any free "
            "one; the log line metrics_listening says which)",
        ),
    ] = None,
    metrics_host: Annotated[
        str,
        typer.Option("--metrics-host", help="Address the metrics server binds"),
    ] = "127.0.0.1",
    ready_max_lag: Annotated[
        int,
        typer.Option(
            "--ready-max-lag",
            min=0,
            help="/readyz says not ready while a projection lags the log by more events",
        ),
    ] = DEFAULT_MAX_LAG_EVENTS,
    ai_mode: Annotated[
        str,
        typer.Option(
            "--ai-mode",
            help="standard: one chat request per session as it becomes due; batch: AI_ANALYSIS "
            "goes out as OpenAI Batch API jobs (half the price, results within the 24 h window; "
            "see docs/operations.md); this daemon also collects batches a previous run or "
            "`reprocess --batch` left open",
        ),
    ] = "standard",
    ai_batch_size: Annotated[
        int, typer.Option("--ai-batch-size", min=1, max=50_000, help="Requests per batch at most")
    ] = 1000,
    ai_batch_poll: Annotated[
        float,
        typer.Option(
            "--ai-batch-poll",
            min=0.05,
            help="Seconds between polls of an open batch (also in standard mode, which collects "
            "the batches `reprocess --batch` submitted)",
        ),
    ] = 60.0,
    ai_batch_gather: Annotated[
        float,
        typer.Option(
            "--ai-batch-gather",
            min=0.0,
            help="Seconds due AI work may wait for more to fill a batch (a full one goes at once)",
        ),
    ] = 60.0,
    ai_batch_max_open: Annotated[
        int, typer.Option("--ai-batch-max-open", min=1, help="Batches in flight at once")
    ] = 4,
) -> None:
    """Run the stage processors: claim due work, process it, record it; until stopped."""
    st = state(ctx)
    if fetch_per_host is not None:
        st.settings = st.settings.model_copy(update={"fetch_per_host": fetch_per_host})
    if max_csv_bytes:
        st.settings = st.settings.model_copy(update={"max_csv_bytes": max_csv_bytes})
    chosen = (
        tuple(Stage.parse(s) for s in stages.split(",") if s.strip()) if stages else WORKER_STAGES
    )
    if Stage.CSV_IMPORT in chosen:
        chosen = tuple(s for s in chosen if s is not Stage.CSV_IMPORT)
    configs = stage_configs(
        st.settings.lease_seconds, _pairs(lease, "lease"), _pairs(concurrency, "concurrency")
    )
    if fairness not in FAIRNESS:
        raise CliError(f"bad --fairness {fairness!r}", hint="company or fifo", code=ExitCode.USAGE)
    worker = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    config = DaemonConfig(
        worker_id=worker,
        stages=chosen,
        stage_configs=configs,
        until_idle=until_idle,
        idle_horizon=idle_horizon,
        poll_interval=poll_interval,
        grace_seconds=grace,
        level_interval=max(poll_interval, 2.0),
        fleet_heartbeat=heartbeat,
        company_fairness=fairness == "company",
        installation_budget=st.settings.ai_budget,
        circuit_breaker=None
        if no_circuit_breaker
        else BreakerRules(
            window=breaker_window,
            ratio=breaker_ratio,
            cool_down=breaker_cool_down,
            max_cool_down=max(breaker_cool_down, breaker_max_cool_down),
            # A probe outlasting its stage's timeout and lease has lost its daemon.
            probe_timeout=configs[Stage.AI_ANALYSIS].timeout
            + configs[Stage.AI_ANALYSIS].lease_seconds,
        ),
    )
    if claim_timeout <= heartbeat:
        raise CliError(
            f"--claim-timeout ({claim_timeout}s) must be longer than --heartbeat ({heartbeat}s)",
            hint="a few seconds past one heartbeat, e.g. --heartbeat 2 --claim-timeout 5",
            code=ExitCode.USAGE,
        )
    batch = None
    if check_mode(ai_mode) == "batch":
        batch = BatchSettings(
            size=ai_batch_size,
            poll_interval=ai_batch_poll,
            gather=ai_batch_gather,
            max_open=ai_batch_max_open,
            installation_budget=st.settings.ai_budget,
        )
    with st.runtime() as rt, one_daemon_on_sqlite(rt):
        catch_up(rt)
        summary = run_daemon(
            st.settings,
            st.secrets,
            rt,
            config,
            csv_interval if csv_interval > 0 else None,
            make_reporter(chosen, verbose),
            claim_timeout,
            None
            if metrics_port is None
            else MetricsOptions(metrics_port, metrics_host, ready_max_lag),
            batch,
            ai_batch_poll,
        )
    if summary.next_retry_at is not None and until_idle:
        console.print(
            f"retries still scheduled; the next at {summary.next_retry_at:%Y-%m-%d %H:%M:%S} UTC"
        )
