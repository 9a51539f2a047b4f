"""`livedash serve`: the status web page (cli/web), on 127.0.0.1:8080 by default."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from cli.cmd_status_at import log_source
from cli.context import backend, catch_up, handle_errors, state
from cli.output import console, err_console
from cli.web.app import build_app
from processors.net.netguard import is_loopback

TOKEN_ENV = "LIVEDASH_ADMIN_TOKEN"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


@handle_errors
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on")] = 8080,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="As the global option (this one wins)"),
    ] = None,
) -> None:
    """Serve the status page: overview, sessions, one session's history, failures, companies
    and costs. Read-only unless LIVEDASH_ADMIN_TOKEN is set; then a signed-in operator may
    retry, suspend and resume, and see transcripts."""
    st = state(ctx)
    if database_url:
        st = type(st)(st.settings.model_copy(update={"database_url": database_url}), st.secrets)
    token = st.secrets(TOKEN_ENV) or None
    if token is None and not is_loopback(host):
        err_console.print(
            f"[yellow]warning:[/] serving on {host}, which is not a loopback address, without "
            f"{TOKEN_ENV}: anyone who reaches it reads the pipeline's state (read-only)",
            soft_wrap=True,
        )
    with st.runtime() as rt:
        catch_up(rt)
        web = build_app(backend(rt), token, st.settings.ai_budget, log_source(rt))
        mode = "operators may sign in to act" if token else f"read-only (set {TOKEN_ENV} to act)"
        console.print(f"serving {rt.config.describe()} on http://{host}:{port}/ — {mode}")
        uvicorn.run(web, host=host, port=port, log_level="warning", server_header=False)
