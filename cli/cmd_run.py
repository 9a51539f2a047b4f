"""`livedash run` (the daemon) and `livedash demo`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from cli.context import State, catch_up, handle_errors, state
from cli.errors import CliError, ExitCode
from cli.output import console, err_console
from cli.runtime import Runtime, events_table
from domain.stages import WORKER_STAGES, Stage
from processors.clock import utc_now
from processors.ingest.importer import CsvSchedule
from processors.ingest.source import CsvSource
from processors.net.netguard import AllowList
from processors.runtime.config import DaemonConfig, StageConfig
from processors.runtime.daemon import Daemon
from processors.runtime.reporting import JsonLogReporter, Reporter, TerminalReporter
from processors.runtime.summary import DaemonSummary
from processors.stages.analysis import (
    Analyser,
    AnalysisProcessor,
    QuestionExtractionProcessor,
    offline,
)
from processors.stages.base import StageProcessor
from processors.stages.creation import SessionCreationProcessor
from processors.stages.fetch import FetchSettings, TranscriptFetchProcessor
from projections.notify import PgListener
from projections.partitions import PartitionKeeper
from projections.workers import Presence
from store.run_lock import AnotherDaemon, single_daemon

DEFAULTS: dict[Stage, tuple[int, float, int]] = {
    # concurrency, timeout (seconds; a heartbeat keeps the lease alive however long), queue depth.
    # Parsing takes about a millisecond: a deep queue lets every fetched transcript chain
    # straight into SESSION_CREATION in the same transaction (measured: 61 instead of 161
    # loop turns for 5,000 sessions, ~40% more sessions/s on PostgreSQL).
    Stage.TRANSCRIPT_FETCH: (16, 30.0, 64),
    Stage.SESSION_CREATION: (8, 60.0, 128),
    # A slow model (90 s an answer) must complete, not loop: two requests and a rate-limit wait.
    Stage.AI_ANALYSIS: (8, 300.0, 32),
    Stage.QUESTION_EXTRACTION: (8, 30.0, 32),
}


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


def stage_configs(
    lease_default: float, leases: dict[Stage, float], concurrency: dict[Stage, float]
) -> dict[Stage, StageConfig]:
    configs = {}
    for stage, (conc, timeout, depth) in DEFAULTS.items():
        lease = leases.get(stage, lease_default)
        if lease < 2:
            raise CliError(f"lease for {stage.value} is too short ({lease}s)", code=ExitCode.USAGE)
        configs[stage] = StageConfig(
            concurrency=max(1, int(concurrency.get(stage, conc))),
            timeout=timeout,
            lease_seconds=lease,
            queue_depth=depth,
        )
    return configs


def build_processors(
    st: State, configs: dict[Stage, StageConfig] | None = None
) -> dict[Stage, StageProcessor]:
    # The HTTP client gives up a little before the daemon would, so the thread is free again.
    stage_timeout = (configs or {}).get(Stage.TRANSCRIPT_FETCH, StageConfig()).timeout
    http_timeout = max(1.0, stage_timeout * 0.9)
    fetch = FetchSettings(
        timeout=http_timeout,
        connect_timeout=min(10.0, http_timeout),
        allow=AllowList.parse(st.settings.fetch_allow_hosts),
        per_host=st.settings.fetch_per_host,
    )
    analyser, default_model = build_analyser(st, configs)
    return {
        Stage.TRANSCRIPT_FETCH: TranscriptFetchProcessor(fetch, st.env),
        Stage.SESSION_CREATION: SessionCreationProcessor(),
        Stage.AI_ANALYSIS: AnalysisProcessor(analyser, default_model),
        Stage.QUESTION_EXTRACTION: QuestionExtractionProcessor(),
    }


PROVIDERS = ("auto", "offline", "openai")


def build_analyser(
    st: State, configs: dict[Stage, StageConfig] | None = None
) -> tuple[Analyser, str | None]:
    """`LIVEDASH_AI_PROVIDER` (auto, offline, openai) and `OPENAI_API_KEY` pick the analyser.

    ``auto`` uses OpenAI when a non-empty key is set; whenever the offline analyser is chosen
    (by ``auto`` without a key, or by ``offline``) the command says so once.
    """
    provider = (st.env.get("LIVEDASH_AI_PROVIDER") or "auto").strip().lower() or "auto"
    if provider not in PROVIDERS:
        raise CliError(
            f"LIVEDASH_AI_PROVIDER={provider!r} is not a provider",
            hint="use auto, offline or openai",
            code=ExitCode.USAGE,
        )
    has_key = bool((st.env.get("OPENAI_API_KEY") or "").strip())
    if provider == "offline" or (provider == "auto" and not has_key):
        why = (
            "LIVEDASH_AI_PROVIDER=offline"
            if provider == "offline"
            else "OPENAI_API_KEY is not set; set it or LIVEDASH_AI_PROVIDER=openai for OpenAI"
        )
        err_console.print(
            f"[dim]AI analysis: offline analyser, rules not an LLM ({why})[/dim]", soft_wrap=True
        )
        return offline, None
    # Imported here: the openai package costs ~0.3 s of start-up that no other command needs.
    from processors.ai.openai_client import OpenAIAnalyser, OpenAIAnalyserConfig

    stage_timeout = (configs or {}).get(Stage.AI_ANALYSIS, StageConfig()).timeout
    try:
        config = OpenAIAnalyserConfig.from_env(
            st.env,
            # Two requests (one repair) and a limiter wait must end before the stage timeout.
            timeout=max(1.0, min(120.0, stage_timeout * 0.4)),
            rate_limit_max_wait=max(1.0, stage_timeout * 0.2),
        )
    except ValueError as e:
        raise CliError(
            f"cannot configure the OpenAI analyser: {e}",
            hint="check OPENAI_API_KEY and the LIVEDASH_AI_* settings, "
            "or set LIVEDASH_AI_PROVIDER=offline",
            code=ExitCode.USAGE,
        ) from None
    return OpenAIAnalyser(config), config.default_model


def run_daemon(
    st: State,
    rt: Runtime,
    config: DaemonConfig,
    csv_interval: float | None,
    reporter: Reporter,
    claim_timeout: float = 5.0,
) -> DaemonSummary:
    processors = build_processors(st, config.stage_configs)
    source = CsvSource(st.env, max_bytes=st.settings.max_csv_bytes)
    scheduled = []
    if csv_interval and csv_interval > 0:
        scheduled.append(
            CsvSchedule(rt.app, rt.runner, source, utc_now, csv_interval, reporter.log)
        )
    # The daemon paces the register's heartbeat itself (DaemonConfig.fleet_heartbeat).
    presence = Presence(rt.engine, config.worker_id, socket.gethostname(), os.getpid(), utc_now, 0)
    keeper = None
    if rt.config.kind == "postgres":
        keeper = PartitionKeeper(rt.engine, config.worker_id, claim_timeout)
    daemon = Daemon(
        rt.app, rt.runner, processors, config, utc_now, reporter, scheduled, presence, keeper
    )
    listener = None
    if rt.config.kind == "postgres":
        listener = PgListener(rt.config, events_table(rt.config), daemon.wake.set).start()
    previous = _install_signals(daemon)
    try:
        return daemon.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if listener:
            listener.stop()
        source.close()
        for p in processors.values():
            close = getattr(p, "close", None)
            if close:
                close()


@contextlib.contextmanager
def one_daemon_on_sqlite(rt: Runtime) -> Iterator[None]:
    """SQLite has one writer and no way to share work: a second daemon is refused."""
    if rt.config.kind != "sqlite":
        yield
        return
    try:
        with single_daemon(Path(rt.config.path)):
            yield
    except AnotherDaemon as e:
        raise CliError(
            str(e),
            hint="stop the other daemon, or use PostgreSQL to run several "
            "(LIVEDASH_DATABASE_URL=postgresql://user@host/db)",
            code=ExitCode.FAILED,
        ) from None


def _install_signals(daemon: Daemon) -> dict[int, signal._HANDLER]:
    def handler(signum: int, _frame: FrameType | None) -> None:
        if daemon.stopping:
            os._exit(128 + signum)  # second signal: leave now; leases expire, work is retried
        daemon.request_stop()

    previous: dict[int, signal._HANDLER] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.getsignal(signum)
        signal.signal(signum, handler)
    return previous


def make_reporter(stages: tuple[Stage, ...], verbose: bool) -> Reporter:
    if sys.stderr.isatty() and not verbose:
        return TerminalReporter(stages)
    return JsonLogReporter(verbose=verbose)


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
    )
    if claim_timeout <= heartbeat:
        raise CliError(
            f"--claim-timeout ({claim_timeout}s) must be longer than --heartbeat ({heartbeat}s)",
            hint="a few seconds past one heartbeat, e.g. --heartbeat 2 --claim-timeout 5",
            code=ExitCode.USAGE,
        )
    with st.runtime() as rt, one_daemon_on_sqlite(rt):
        catch_up(rt)
        summary = run_daemon(
            st,
            rt,
            config,
            csv_interval if csv_interval > 0 else None,
            make_reporter(chosen, verbose),
            claim_timeout,
        )
    if summary.next_retry_at is not None and until_idle:
        console.print(
            f"retries still scheduled; the next at {summary.next_retry_at:%Y-%m-%d %H:%M:%S} UTC"
        )
