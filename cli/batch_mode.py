"""The Batch API mode's composition: `run --ai-mode batch` and `reprocess --batch` build their
`BatchDriver` here from the same settings the OpenAI analyser uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cli.errors import CliError, ExitCode
from cli.settings import Settings
from processors.clock import utc_now
from processors.net.credentials import SecretResolver
from processors.runtime.batch_settings import BatchSettings
from processors.runtime.retry import RetryPolicy
from store.application import LiveDashApp

if TYPE_CHECKING:
    from processors.runtime.batches import BatchDriver

AI_MODES = ("standard", "batch")


def check_mode(mode: str) -> str:
    if mode not in AI_MODES:
        raise CliError(f"bad --ai-mode {mode!r}", hint="standard or batch", code=ExitCode.USAGE)
    return mode


def batch_driver(
    settings: Settings,
    secrets: SecretResolver,
    app: LiveDashApp,
    engine: Any,
    batch: BatchSettings,
    log: Callable[..., None],
) -> BatchDriver:
    """The driver, with its own `openai` client; the Batch API needs OpenAI (or a compatible
    server with files and batches): the offline analyser has no batch mode."""
    import openai

    from cli.bootstrap import openai_config
    from processors.ai.batch_api import BatchAPI
    from processors.ai.config import config_problem
    from processors.runtime.batches import BatchDriver

    api_key = (secrets("OPENAI_API_KEY") or "").strip()
    if settings.ai.provider == "offline" or not api_key:
        raise CliError(
            "the Batch API mode needs the OpenAI analyser",
            hint="set OPENAI_API_KEY (and OPENAI_BASE_URL for a compatible server), "
            "or run without --ai-mode batch / --batch",
            code=ExitCode.USAGE,
        )
    try:
        config = openai_config(settings.ai, api_key, timeout=60.0)
    except ValueError as e:
        raise CliError(
            f"cannot configure the OpenAI analyser: {config_problem(e)}",
            hint="check OPENAI_API_KEY and the LIVEDASH_AI_* settings",
            code=ExitCode.USAGE,
        ) from None
    client = openai.OpenAI(
        api_key=api_key, base_url=config.base_url, max_retries=2, timeout=config.timeout
    )
    return BatchDriver(app, engine, BatchAPI(client), config, batch, utc_now, log)


def batch_collector(
    processor: object,
    app: LiveDashApp,
    engine: Any,
    settings: Settings,
    policy: RetryPolicy,
    poll_interval: float,
    log: Callable[..., None],
) -> BatchDriver | None:
    """A standard-mode daemon with the OpenAI analyser collects the batches others submitted
    (``reprocess --batch``) on the analyser's own client; it submits none. None with the
    offline analyser (it has no Batch API)."""
    analyser = getattr(processor, "analyser", None)
    client = getattr(analyser, "client", None)
    config = getattr(analyser, "config", None)
    if client is None or config is None:
        return None
    from processors.ai.batch_api import BatchAPI
    from processors.runtime.batches import BatchDriver

    batch = BatchSettings(
        poll_interval=poll_interval, installation_budget=settings.ai_budget, policy=policy
    )
    return BatchDriver(
        app, engine, BatchAPI(client, owns_client=False), config, batch, utc_now, log, submit=False
    )
