"""What the daemon tells a person (a live table on a terminal) or a log collector (JSON lines)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

from domain.session import Session
from domain.stages import Stage
from processors.runtime.summary import DaemonSummary


def memory_mb() -> dict[str, float]:
    """Current and peak resident memory of this process, from the kernel (Linux), in MB.

    ``ru_maxrss`` is not used: after fork and exec it keeps the parent's peak, so a small
    daemon started by a large parent would report the parent's memory."""
    fields = {"VmRSS:": "rss_mb", "VmHWM:": "peak_rss_mb"}
    found: dict[str, float] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                parts = line.split()
                if parts and parts[0] in fields:
                    found[fields[parts[0]]] = round(int(parts[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        return {}
    return found


def progress(
    in_flight: dict[str, int], queued: Mapping[Stage, int], summary: DaemonSummary
) -> dict[str, Any]:
    """What a turn ended with: the reporters' `tick` and the metrics read it."""
    return {
        "in_flight": in_flight,
        "queued": {s.value: n for s, n in queued.items()},
        "completed": dict(summary.completed),
        "failed": dict(summary.failed),
        "skipped": dict(summary.skipped),
    }


class Reporter(Protocol):
    def event(
        self, kind: str, session: Session, stage: Stage, attempt: int | None, detail: str = ""
    ) -> None: ...

    def tick(self, snapshot: dict[str, Any]) -> None: ...

    def finish(self, summary: DaemonSummary) -> None: ...

    def log(self, kind: str, **fields: Any) -> None: ...


class JsonLogReporter:
    """One JSON object per line: failures and state changes always, completions when verbose."""

    def __init__(self, stream: TextIO | None = None, verbose: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.verbose = verbose
        self._last_tick = 0.0

    def log(self, kind: str, **fields: Any) -> None:
        record = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "event": kind,
            **fields,
        }
        self.stream.write(json.dumps(record, default=str) + "\n")
        self.stream.flush()

    def event(
        self, kind: str, session: Session, stage: Stage, attempt: int | None, detail: str = ""
    ) -> None:
        if kind in ("started", "completed", "skipped") and not self.verbose:
            return
        self.log(
            kind,
            session=str(session.id),
            external_id=session.external_id,
            stage=stage.value,
            attempt=attempt,
            detail=detail or None,
        )

    def tick(self, snapshot: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self._last_tick >= 10:
            self._last_tick = now
            self.log("progress", **snapshot, **memory_mb())

    def finish(self, summary: DaemonSummary) -> None:
        self.log(
            "stopped",
            reason=summary.stopped_by,
            completed=summary.completed,
            failed=summary.failed,
            skipped=summary.skipped,
            lost_races=summary.lost_races,
            next_retry_at=summary.next_retry_at,
            **memory_mb(),
        )


class TerminalReporter:
    """A live per-stage table while the daemon runs; failures are printed as they happen."""

    def __init__(self, stages: tuple[Stage, ...]) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=True)
        self.stages = stages
        self.live = Live(console=self.console, refresh_per_second=4, transient=True)
        self.live.start()
        self._snapshot: dict[str, Any] = {}

    def log(self, kind: str, **fields: Any) -> None:
        detail = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        self.console.print(f"[dim]{kind}[/] {detail}")

    def event(
        self, kind: str, session: Session, stage: Stage, attempt: int | None, detail: str = ""
    ) -> None:
        if kind in ("failed", "stale"):
            color = "red" if kind == "failed" else "yellow"
            where = f"{stage.value} {session.external_id} attempt {attempt}"
            self.console.print(f"[{color}]{kind}[/] {where}: {detail}")

    def tick(self, snapshot: dict[str, Any]) -> None:
        from rich.table import Table

        self._snapshot = snapshot
        table = Table(title="livedash run", expand=False)
        for col in ("stage", "running", "queued", "completed", "skipped", "failed"):
            table.add_column(col, justify="right" if col != "stage" else "left")
        for stage in self.stages:
            s = stage.value
            table.add_row(
                s,
                str(snapshot["in_flight"].get(s, 0)),
                str(snapshot["queued"].get(s, 0)),
                f"[green]{snapshot['completed'].get(s, 0)}[/]",
                str(snapshot["skipped"].get(s, 0)),
                f"[red]{snapshot['failed'].get(s, 0)}[/]",
            )
        self.live.update(table)

    def finish(self, summary: DaemonSummary) -> None:
        self.live.stop()
        total = sum(summary.completed.values())
        failed = sum(summary.failed.values())
        skipped = sum(summary.skipped.values())
        self.console.print(
            f"stopped ({summary.stopped_by}): {total} stages completed, {skipped} skipped, "
            f"{failed} failed"
            + (
                f"; next retry at {summary.next_retry_at:%Y-%m-%d %H:%M:%S}"
                if summary.next_retry_at
                else ""
            )
        )
