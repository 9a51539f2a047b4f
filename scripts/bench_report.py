"""Turns the benches' details into the flat keys of bench-results.json and a printed table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def _preferred(per_db: dict[str, Any]) -> Any:
    """The PostgreSQL figure when there is one (the production database), else the only one."""
    return per_db.get("postgres", next(iter(per_db.values())))


def _medians(per_db: dict[str, Any], pick: Callable[[Any], Any]) -> dict[str, float]:
    return {db: pick(v)["median"] for db, v in per_db.items()}


def summarise(results: dict[str, Any]) -> None:
    """Adds the keys other tools read (named in the benchmark issue) next to the details."""
    d = results["details"]
    if "transitions" in d:
        t = _preferred(d["transitions"])
        for design in ("state_table", "event_sourced"):
            results.setdefault(design, {})["transitions_per_s"] = t[design]["transitions_per_s"][
                "median"
            ]
        results["ratio_transitions_vs_state_table"] = t["ratio"]
    if "overview" in d:
        o = _preferred(d["overview"])
        for design in ("state_table", "event_sourced"):
            results.setdefault(design, {})["overview_ms"] = {
                size: s["median"] for size, s in o[design].items()
            }
        results["status_query_ms"] = {
            db: v["status_report"][max(v["status_report"], key=int)]["median"]
            for db, v in d["overview"].items()
        }
    if "import" in d:
        results["import_rows_per_s"] = _medians(d["import"], lambda v: v["rows_per_s"])
    if "catchup" in d:
        results["projection_catchup_events_per_s"] = _medians(
            d["catchup"], lambda v: v["events_per_s"]
        )
        results["log_decode_events_per_s"] = _medians(
            d["catchup"], lambda v: v["decode_events_per_s"]
        )
    if "history" in d:
        results["history_ms"] = next(iter(d["history"].values()))["history_ms"]
    if "pipeline" in d:
        results["pipeline_sessions_per_s"] = _medians(d["pipeline"], lambda v: v["sessions_per_s"])
    if "trickle" in d:
        results["handoff_ms"] = {
            db: v["handoff_ms"]["import_to_fetch"] for db, v in d["trickle"].items()
        }
    if "ai" in d:
        results["ai_sessions_per_s"] = next(iter(d["ai"].values()))["sessions_per_s"]["median"]
    if "rss" in d:
        results["peak_rss_mb"] = next(iter(d["rss"].values()))["peak_rss_mb"]["median"]


@dataclass
class Row:
    figure: str
    db: str
    median: float
    low: float | None = None
    high: float | None = None
    runs: int | None = None
    target: str = ""
    met: bool | None = None


def _row(
    figure: str, db: str, s: dict[str, float], target: str = "", met: bool | None = None
) -> Row:
    return Row(figure, db, s["median"], s["min"], s["max"], int(s["runs"]), target, met)


def rows(results: dict[str, Any]) -> list[Row]:
    d = results["details"]
    out: list[Row] = []
    for db, t in d.get("transitions", {}).items():
        out.append(_row("state table: transitions/s", db, t["state_table"]["transitions_per_s"]))
        es = t["event_sourced"]["transitions_per_s"]
        out.append(_row("event-sourced: transitions/s", db, es))
        out.append(
            Row("  ratio ES / state table", db, t["ratio"], target="≥ 2", met=t["ratio"] >= 2)
        )
        chained = t["event_sourced_chained"]["transitions_per_s"]
        out.append(_row("event-sourced, chained as in the daemon", db, chained))
        out.append(Row("  ratio chained / state table", db, t["ratio_chained"]))
    for db, o in d.get("overview", {}).items():
        for size in o["state_table"]:
            n = f"{int(size):,}"
            out.append(_row(f"state table: overview ms @ {n}", db, o["state_table"][size]))
            ours = o["event_sourced"][size]
            big = int(size) >= 1_000_000
            out.append(
                _row(
                    f"event-sourced: overview ms @ {n}",
                    db,
                    ours,
                    "< 10 ms" if big else "",
                    ours["median"] < 10 if big else None,
                )
            )
            out.append(_row(f"  status report ms @ {n}", db, o["status_report"][size]))
    for db, v in d.get("import", {}).items():
        out.append(_row("import rows/s", db, v["rows_per_s"]))
    for db, v in d.get("catchup", {}).items():
        pg = db == "postgres"
        rate = v["events_per_s"]
        out.append(
            _row(
                "projection catch-up events/s",
                db,
                rate,
                "≥ 20,000" if pg else "",
                rate["median"] >= 20_000 if pg else None,
            )
        )
        out.append(_row("log decode events/s", db, v["decode_events_per_s"]))
        out.append(
            Row("  catch-up / decode", db, v["ratio"], target="≥ 0.40", met=v["ratio"] >= 0.4)
        )
    for db, v in d.get("pipeline", {}).items():
        rate = v["sessions_per_s"]
        out.append(
            _row("CSV → SESSION_CREATION sessions/s", db, rate, "≥ 500", rate["median"] >= 500)
        )
        backlog = v["backlog_handoff_ms"]["fetch_to_creation"]
        for p in ("p50", "p99"):
            out.append(Row(f"  backlog hand-off fetch→creation {p} ms", db, backlog[p]))
    for db, v in d.get("trickle", {}).items():
        h = v["handoff_ms"]["import_to_fetch"]
        pg = db == "postgres"
        for p in ("p50", "p95", "p99"):
            target = "< 100 ms" if pg and p == "p50" else ""
            met = h[p] < 100 if target else None
            out.append(
                Row(f"hand-off import→fetch {p} ms (trickle)", db, h[p], target=target, met=met)
            )
        inner = v["handoff_ms"]["fetch_to_creation"]["p50"]
        out.append(Row("  trickle hand-off fetch→creation p50 ms", db, inner))
    for db, v in d.get("history", {}).items():
        for p in ("p50", "p99"):
            out.append(Row(f"history {p} ms", db, v["history_ms"][p]))
    for v in d.get("ai", {}).values():
        rate = v["sessions_per_s"]
        out.append(
            _row("AI sessions/s (32 threads, 300 ms)", "none", rate, "≥ 80", rate["median"] >= 80)
        )
        pct = v["limited"]["percent_of_limit"]
        out.append(_row("  AI % of a 600/min limit", "none", pct, "≥ 95", pct["median"] >= 95))
    for db, v in d.get("rss", {}).items():
        out.append(_row(f"daemon peak RSS MB ({v['sessions']:,} sessions)", db, v["peak_rss_mb"]))
        out.append(_row("  all four stages sessions/s", db, v["all_stages_sessions_per_s"]))
    return out


def _num(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.2f}"


def print_table(results: dict[str, Any]) -> None:
    m = results["machine"]
    print(
        f"\nmachine: {m['cpu']}, {m['cores']} cores, {m.get('ram_gb', '?')} GB RAM, "
        f"Python {m['python']}, PostgreSQL {m['postgres']}, SQLite {m['sqlite']}"
    )
    print(f"size {results['size']}, {results['runs']} runs per figure, {m['date']}\n")
    header = ("figure", "db", "median", "min", "max", "runs", "target", "")
    table = [header] + [
        (
            r.figure,
            r.db,
            _num(r.median),
            _num(r.low),
            _num(r.high),
            "" if r.runs is None else str(r.runs),
            r.target,
            {True: "ok", False: "MISSED", None: ""}[r.met],
        )
        for r in rows(results)
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    right = {2, 3, 4, 5}
    for line in table:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
