"""`livedash events`: query the event log, or follow it live."""

from __future__ import annotations

import csv
import json
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from types import FrameType
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.context import handle_errors, state
from cli.errors import CliError, ExitCode
from cli.output import console, fmt_time, styled_status
from cli.runtime import Runtime, events_table
from domain.event_facts import EVENT_TYPES, parse_type
from domain.stages import Stage
from processors.service.events import FIELDS, EventRecord, query_events
from processors.service.lookup import find_session, require_company
from projections.event_index import EVENT_INDEX
from projections.event_queries import EventQuery
from projections.notify import PgListener

BOUND_HINT = (
    "use an ISO 8601 time (2026-12-01T09:00, UTC unless it names a zone) or a log position (@1234)"
)
FOLLOW_PAGE = 1000


def _bound(option: str, value: str | None) -> tuple[datetime | None, int | None]:
    """A time or an ``@position``, as ``--since``/``--until`` take them."""
    if value is None:
        return None, None
    text = value.strip()
    if text.startswith("@"):
        try:
            position = int(text[1:])
        except ValueError:
            position = -1
        if position < 0:
            raise CliError(f"cannot read {option} {value!r}", hint=BOUND_HINT, code=ExitCode.USAGE)
        return None, position
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise CliError(
            f"cannot read {option} {value!r}", hint=BOUND_HINT, code=ExitCode.USAGE
        ) from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)), None


def _types(values: Sequence[str]) -> tuple[str, ...]:
    found = []
    for value in values:
        try:
            found.append(parse_type(value))
        except ValueError:
            raise CliError(
                f"unknown event type {value!r}",
                hint=f"one of: {', '.join(EVENT_TYPES)}",
                code=ExitCode.USAGE,
            ) from None
    return tuple(found)


def _stages(values: Sequence[str]) -> tuple[str, ...]:
    found = []
    for value in values:
        try:
            found.append(Stage.parse(value).value)
        except ValueError as e:
            raise CliError(str(e), hint="repeat --stage for several", code=ExitCode.USAGE) from None
    return tuple(found)


TypeOpt = Annotated[
    list[str] | None,
    typer.Option("--type", help="Event type, e.g. StageFailed (repeatable)", show_default=False),
]
StageOpt = Annotated[
    list[str] | None, typer.Option("--stage", help="Stage (repeatable)", show_default=False)
]


@handle_errors
def events(
    ctx: typer.Context,
    session: Annotated[
        str | None, typer.Option("--session", help="Internal or external session id")
    ] = None,
    company: Annotated[str | None, typer.Option("--company", help="Company name")] = None,
    stage: StageOpt = None,
    type_: TypeOpt = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Who reset or changed it")] = None,
    worker: Annotated[str | None, typer.Option("--worker", help="Worker that started it")] = None,
    error_type: Annotated[
        str | None, typer.Option("--error-type", help="e.g. lease_expired, http_404")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="From this time (ISO 8601, UTC unless zoned: 2026-12-01T09:00) "
            "or log position (@1234), inclusive",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Before this time or log position (@1300), exclusive"),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Most events shown")] = 100,
    oldest_first: Annotated[
        bool, typer.Option("--oldest-first", help="Oldest first (default: newest first)")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="JSON lines, one per event")] = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="CSV with a header row")] = False,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Then print new matching events until Ctrl-C"),
    ] = False,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", help="Seconds between polls with --follow")
    ] = 1.0,
) -> None:
    """Query the event log: every event that matches all filters, newest first.

    Times are UTC unless they name a zone; a log position is written @N (see the `position`
    field). `--follow` prints the last --limit matches oldest first, then each new one.
    """
    if json_out and csv_out:
        raise CliError("choose one of --json and --csv", code=ExitCode.USAGE)
    since_time, since_pos = _bound("--since", since)
    until_time, until_pos = _bound("--until", until)
    query = EventQuery(
        stages=_stages(stage or []),
        types=_types(type_ or []),
        actor=actor,
        worker=worker,
        error_type=error_type,
        since_time=since_time,
        until_time=until_time,
        since_position=since_pos,
        until_position=until_pos,
        limit=limit,
        oldest_first=oldest_first or follow,
    )
    with state(ctx).runtime() as rt:
        rt.runner.catch_up()
        if company:
            query = _with(query, company_id=require_company(rt.engine, company).company_id)
        if session:
            query = _with(query, session_id=find_session(rt.engine, session, company).session_id)
        printer = Printer("json" if json_out else "csv" if csv_out else "table")
        if not follow:
            printer.batch(query_events(rt.app, rt.engine, query))
            return
        start = rt.runner.position(EVENT_INDEX)
        newest = _with(query, oldest_first=False, until_position=None)
        first = query_events(rt.app, rt.engine, _with(newest, until_position=start + 1))
        printer.lines(list(reversed(first)))
        _follow(rt, query, start, printer, poll_interval)


def _with(query: EventQuery, **changes: Any) -> EventQuery:
    return replace(query, **changes)


def _follow(rt: Runtime, query: EventQuery, after: int, printer: Printer, poll: float) -> None:
    stop, wake = threading.Event(), threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()
        wake.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)
    listener = None
    if rt.config.kind == "postgres":
        listener = PgListener(rt.config, events_table(rt.config), wake.set).start()
    page = _with(query, oldest_first=True, limit=FOLLOW_PAGE)
    try:
        while not stop.is_set():
            wake.clear()
            rt.runner.catch_up()
            head = rt.runner.position(EVENT_INDEX)
            found = query_events(rt.app, rt.engine, _with(page, after=after))
            printer.lines(found)
            if len(found) == FOLLOW_PAGE:  # more may match before the head: read on
                after = found[-1].position
                continue
            # Everything up to the head was indexed before the query ran, so it was seen.
            after = max(after, head, found[-1].position if found else 0)
            wake.wait(poll)
    finally:
        if listener is not None:
            listener.stop()


class Printer:
    """The three formats; a follower prints line by line (a table has no end to wait for)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._csv = csv.writer(sys.stdout)
        self._header = False

    def batch(self, records: list[EventRecord]) -> None:
        if self.kind == "table":
            _table(records)
        else:
            self.lines(records)

    def lines(self, records: list[EventRecord]) -> None:
        for r in records:
            if self.kind == "json":
                sys.stdout.write(json.dumps(r.flat(), ensure_ascii=False) + "\n")
            elif self.kind == "csv":
                if not self._header:
                    self._csv.writerow(FIELDS)
                    self._header = True
                self._csv.writerow(["" if v is None else v for v in r.flat().values()])
            else:
                console.print(_line(r), soft_wrap=True)
        if self.kind == "csv" and not self._header:
            self._csv.writerow(FIELDS)
            self._header = True
        sys.stdout.flush()


def _change(r: EventRecord) -> str:
    if r.status_after is None:
        return ""
    if r.status_before == r.status_after:
        return styled_status(r.status_after)
    return f"{r.status_before or '-'} → {styled_status(r.status_after)}"


def _detail(r: EventRecord) -> str:
    detail = r.summary or r.reason or ""
    if r.reason and r.reason not in detail:
        detail = f"{r.reason}: {detail}" if detail else r.reason
    if r.actor:
        detail += f" (by {r.actor})"
    return detail


def _line(r: EventRecord) -> str:
    who = r.external_id or (str(r.session_id) if r.session_id else "")
    parts = [
        f"@{r.position}",
        fmt_time(r.time),
        r.type,
        escape(r.company or ""),
        escape(who),
        r.stage or "",
        _change(r),
        f"#{r.attempt}" if r.attempt else "",
        escape(r.worker or ""),
        escape(_detail(r)),
    ]
    return "  ".join(p for p in parts if p)


def _table(records: list[EventRecord]) -> None:
    table = Table(title=f"Events ({len(records)})")
    cols = ("position", "time (UTC)", "type", "company", "session", "stage", "status")
    for col in (*cols, "attempt", "worker", "detail"):
        table.add_column(col, no_wrap=col in ("position", "time (UTC)", "type"))
    for r in records:
        table.add_row(
            str(r.position),
            fmt_time(r.time),
            r.type,
            escape(r.company or ""),
            escape(r.external_id or (str(r.session_id) if r.session_id else "")),
            r.stage or "",
            _change(r),
            str(r.attempt or ""),
            escape(r.worker or ""),
            escape(_detail(r)),
        )
    console.print(table)
