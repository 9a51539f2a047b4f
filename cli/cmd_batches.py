"""`livedash batches`: the OpenAI Batch API jobs of `run --ai-mode batch` and `reprocess
--batch`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cli.context import backend, handle_errors, state
from cli.output import console, fmt_time, print_json
from processors.service.batches import list_batches


def register(app: typer.Typer) -> None:
    app.command("batches")(batches)


@handle_errors
def batches(
    ctx: typer.Context,
    everything: Annotated[
        bool, typer.Option("--all", help="Finished batches too (reads the log by topic)")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """The Batch API jobs: open ones (their sessions wait for them), or --all."""
    with state(ctx).runtime() as rt:
        rows = list_batches(backend(rt), everything)
    if json_out:
        print_json([r.model_dump(mode="json") for r in rows])
        return
    table = Table(title="AI batches" if everything else "Open AI batches")
    for col in ("key", "provider id", "status", "model", "requests", "done/failed", "est. EUR",
                "prepared", "updated"):  # fmt: skip
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.key[:12], escape(r.provider_batch_id or "-"), r.status, escape(r.model),
            str(r.requests), f"{r.counts.get('completed', 0)}/{r.counts.get('failed', 0)}",
            "unknown" if r.cost_eur_estimated is None else f"{r.cost_eur_estimated:.6f}",
            fmt_time(r.prepared_at), fmt_time(r.updated_at),
        )  # fmt: skip
    console.print(table)
    if not rows:
        console.print("no batches" if everything else "no open batches (--all shows finished ones)")
