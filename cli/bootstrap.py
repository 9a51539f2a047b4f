"""The composition root of the daemon: stage configs, the analyser, the processors, the daemon.

Everything the processors need arrives here as values: `Settings` (parsed once from the
environment by `cli.settings`) and a `SecretResolver` (`cli.secrets`). Nothing under
processors/ reads the environment; `livedash run` and `livedash demo` both start here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy.exc import SQLAlchemyError

from cli.errors import CliError, ExitCode
from cli.metrics import MetricsOptions, serve_metrics
from cli.output import err_console
from cli.runtime import Runtime, events_table, log_reader
from cli.settings import AISettings, Settings
from domain.stages import Stage
from processors.ai import offline
from processors.clock import utc_now
from processors.ingest.importer import CsvSchedule
from processors.ingest.source import CsvSource
from processors.net.credentials import SecretResolver
from processors.net.netguard import AllowList
from processors.runtime.batch_settings import BatchSettings
from processors.runtime.config import DaemonConfig, StageConfig
from processors.runtime.daemon import Daemon
from processors.runtime.metrics import DaemonMetrics
from processors.runtime.reporting import JsonLogReporter, Reporter, TerminalReporter
from processors.runtime.retention import RetentionSweep
from processors.runtime.summary import DaemonSummary
from processors.service.backend import Backend
from processors.stages.analysis import Analyser, AnalysisProcessor, QuestionExtractionProcessor
from processors.stages.base import StageProcessor
from processors.stages.creation import SessionCreationProcessor
from processors.stages.fetch import FetchSettings, TranscriptFetchProcessor
from projections.chain import ChainKeeper, extend
from projections.notify import PgListener
from projections.partitions import PartitionKeeper
from projections.shared_limits import SharedBuckets
from projections.workers import Presence
from store.run_lock import AnotherDaemon, single_daemon

if TYPE_CHECKING:
    from processors.ai.config import OpenAIAnalyserConfig
    from processors.ai.ratelimit import GrantSource

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

PROVIDERS = ("auto", "offline", "openai")


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


def _stage_timeout(configs: dict[Stage, StageConfig] | None, stage: Stage) -> float:
    return (configs or {}).get(stage, StageConfig()).timeout


def build_processors(
    settings: Settings,
    secrets: SecretResolver,
    configs: dict[Stage, StageConfig] | None = None,
    shared_limits: GrantSource | None = None,
) -> dict[Stage, StageProcessor]:
    """``shared_limits``: where the fleet's rate limits live (PostgreSQL), if shared."""
    # The HTTP client gives up a little before the daemon would, so the thread is free again.
    http_timeout = max(1.0, _stage_timeout(configs, Stage.TRANSCRIPT_FETCH) * 0.9)
    fetch = FetchSettings(
        timeout=http_timeout,
        connect_timeout=min(10.0, http_timeout),
        allow=AllowList.parse(settings.fetch_allow_hosts),
        per_host=settings.fetch_per_host,
    )
    analyser, default_model = choose_analyser(
        settings.ai, secrets, _stage_timeout(configs, Stage.AI_ANALYSIS), shared_limits
    )
    return {
        Stage.TRANSCRIPT_FETCH: TranscriptFetchProcessor(fetch, secrets),
        Stage.SESSION_CREATION: SessionCreationProcessor(),
        Stage.AI_ANALYSIS: AnalysisProcessor(analyser, default_model),
        Stage.QUESTION_EXTRACTION: QuestionExtractionProcessor(),
    }


def choose_analyser(
    ai: AISettings,
    secrets: SecretResolver,
    stage_timeout: float,
    shared_limits: GrantSource | None = None,
) -> tuple[Analyser, str | None]:
    """`LIVEDASH_AI_PROVIDER` (auto, offline, openai) and `OPENAI_API_KEY` pick the analyser.

    ``auto`` uses OpenAI when a non-empty key is set; whenever the offline analyser is chosen
    (by ``auto`` without a key, or by ``offline``) the command says so once.
    """
    provider = ai.provider
    if provider not in PROVIDERS:
        raise CliError(
            f"LIVEDASH_AI_PROVIDER={provider!r} is not a provider",
            hint="use auto, offline or openai",
            code=ExitCode.USAGE,
        )
    api_key = (secrets("OPENAI_API_KEY") or "").strip()
    if provider == "offline" or (provider == "auto" and not api_key):
        why = (
            "LIVEDASH_AI_PROVIDER=offline"
            if provider == "offline"
            else "OPENAI_API_KEY is not set; set it or LIVEDASH_AI_PROVIDER=openai for OpenAI"
        )
        err_console.print(
            f"[dim]AI analysis: offline analyser, rules not an LLM ({why})[/dim]", soft_wrap=True
        )
        return offline.analyser, None
    # Imported here: the openai package costs ~0.3 s of start-up that no other command needs.
    from processors.ai.config import config_problem
    from processors.ai.openai_client import OpenAIAnalyser

    try:
        config = openai_config(
            ai,
            api_key,
            # Two requests (one repair) and a limiter wait must end before the stage timeout.
            timeout=max(1.0, min(120.0, stage_timeout * 0.4)),
            rate_limit_max_wait=max(1.0, stage_timeout * 0.2),
            shared_limits=shared_limits,
        )
    except ValueError as e:
        raise CliError(
            f"cannot configure the OpenAI analyser: {config_problem(e)}",
            hint="check OPENAI_API_KEY and the LIVEDASH_AI_* settings, "
            "or set LIVEDASH_AI_PROVIDER=offline",
            code=ExitCode.USAGE,
        ) from None
    return OpenAIAnalyser(config), config.default_model


def openai_config(
    ai: AISettings, api_key: str, shared_limits: GrantSource | None = None, **defaults: Any
) -> OpenAIAnalyserConfig:
    """The OpenAI analyser's config from the parsed settings; ``defaults`` (derived from the
    stage's timeout) apply where the settings say nothing: an explicit ``LIVEDASH_AI_TIMEOUT``
    wins. A setting that did not parse, a bad price file or an unusable value is a ValueError."""
    from processors.ai.config import OpenAIAnalyserConfig
    from processors.ai.pricing import PriceTable
    from processors.ai.ratelimit import RateLimiter

    if ai.problems:
        raise ValueError(ai.problems[0])
    values: dict[str, Any] = {"api_key": api_key, "base_url": ai.base_url}
    chosen = {
        "default_model": ai.model,
        "eur_rate": ai.usd_eur_rate,
        "timeout": ai.timeout,
        "max_prompt_tokens": ai.max_prompt_tokens,
        "max_output_tokens": ai.max_output_tokens,
    }
    values.update({k: v for k, v in chosen.items() if v is not None})
    values["prices"] = PriceTable.load(ai.prices_file)
    if ai.rate_limits is not None:
        per_model, default = ai.rate_limits
        values["limiter"] = RateLimiter(per_model, default, shared=shared_limits)
    return OpenAIAnalyserConfig(**{**defaults, **values})


def breaker_providers(ai: AISettings, processors: dict[Stage, StageProcessor]) -> dict[Stage, str]:
    """The LLM stages' breakers are keyed by the model server's host (its events name it);
    the offline analyser calls nothing and has none. QUESTION_EXTRACTION reads the analysis
    today (no call of its own): its breaker is there for when it calls the model."""
    analysis = processors.get(Stage.AI_ANALYSIS)
    if analysis is None or getattr(analysis, "analyser", None) is offline.analyser:
        return {}
    host = urlsplit(ai.base_url or "https://api.openai.com/v1").netloc or "openai"
    return {Stage.AI_ANALYSIS: host, Stage.QUESTION_EXTRACTION: host}


def make_reporter(stages: tuple[Stage, ...], verbose: bool) -> Reporter:
    if sys.stderr.isatty() and not verbose:
        return TerminalReporter(stages)
    return JsonLogReporter(verbose=verbose)


def run_daemon(
    settings: Settings,
    secrets: SecretResolver,
    rt: Runtime,
    config: DaemonConfig,
    csv_interval: float | None,
    reporter: Reporter,
    claim_timeout: float = 5.0,
    metrics: MetricsOptions | None = None,
    batch: BatchSettings | None = None,
    collect_poll: float = 60.0,
) -> DaemonSummary:
    """Builds the processors and the daemon on ``rt`` and runs it until it stops: in the
    fleet's register always, with partitions on PostgreSQL; serving its metrics and health
    checks when ``metrics`` says where. With ``batch``, AI_ANALYSIS goes through the Batch
    API (`processors.runtime.batches`) instead of one request per session; without it, a daemon
    with the OpenAI analyser still collects open batches (polled every ``collect_poll`` s)."""
    # On PostgreSQL the rate limits are the fleet's: every daemon draws on the same rows.
    shared = SharedBuckets(rt.engine) if rt.config.kind == "postgres" else None
    processors = build_processors(settings, secrets, config.stage_configs, shared)
    if config.circuit_breaker is not None and not config.providers:
        config.providers = breaker_providers(settings.ai, processors)
    source = CsvSource(secrets, max_bytes=settings.max_csv_bytes)
    scheduled: list[Callable[[], None]] = []
    if csv_interval and csv_interval > 0:
        scheduled.append(
            CsvSchedule(rt.app, rt.runner, source, utc_now, csv_interval, reporter.log)
        )
    scheduled.append(ChainKeeper(log_reader(rt)))
    if rt.app.data_keys is not None:
        scheduled.append(RetentionSweep(Backend(rt.app, rt.engine, rt.runner), reporter.log))
    driver = None
    if Stage.AI_ANALYSIS in config.stages:
        from cli.batch_mode import batch_collector, batch_driver

        policy = config.for_stage(Stage.AI_ANALYSIS).policy
        if batch is not None:
            batch = replace(batch, policy=policy)
            driver = batch_driver(settings, secrets, rt.app, rt.engine, batch, reporter.log)
            config.stages = tuple(s for s in config.stages if s is not Stage.AI_ANALYSIS)
        else:
            ai = processors.get(Stage.AI_ANALYSIS)
            driver = batch_collector(
                ai, rt.app, rt.engine, settings, policy, collect_poll, reporter.log
            )
        if driver is not None:
            scheduled.append(driver)
    # The daemon paces the register's heartbeat itself (DaemonConfig.fleet_heartbeat).
    presence = Presence(rt.engine, config.worker_id, socket.gethostname(), os.getpid(), utc_now, 0)
    keeper = None
    if rt.config.kind == "postgres":
        keeper = PartitionKeeper(rt.engine, config.worker_id, claim_timeout)
    observer = DaemonMetrics(config.worker_id) if metrics else None
    daemon = Daemon(
        rt.app,
        rt.runner,
        processors,
        config,
        utc_now,
        reporter,
        scheduled,
        presence,
        keeper,
        observer,
    )
    if driver is not None:
        driver.partitions = lambda: daemon.fleet.working
    listener = None
    if rt.config.kind == "postgres":
        listener = PgListener(rt.config, events_table(rt.config), daemon.wake.set).start()
    server = None
    previous = _install_signals(daemon)
    try:
        if observer and metrics:
            server = serve_metrics(rt, daemon, observer, metrics, reporter)
        summary = daemon.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if listener:
            listener.stop()
        if server:
            server.stop()
        source.close()
        if driver is not None:
            driver.close()
        for p in processors.values():
            close = getattr(p, "close", None)
            if close:
                close()
    _link_the_rest(rt, reporter)
    return summary


def _link_the_rest(rt: Runtime, reporter: Reporter) -> None:
    """A daemon that stops links what it wrote since its keeper's last turn, so a finished
    run leaves the whole log under the chain; a database that is away leaves it to the next."""
    try:
        extend(log_reader(rt))
    except SQLAlchemyError as e:
        reporter.log("audit_chain_not_extended", error=str(e).splitlines()[0])


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
