"""The benchmark suite at a tiny size, so `make bench` never rots. Numbers are not judged
here (timings on a shared machine are noise); only that every figure is produced."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import REPO, fresh_pg_database

REQUIRED = {
    "state_table.transitions_per_s": None,
    "event_sourced.transitions_per_s": None,
    "ratio_transitions_vs_state_table": None,
    "state_table.overview_ms": "by_size",
    "event_sourced.overview_ms": "by_size",
    "projection_catchup_events_per_s": "by_db",
    "log_decode_events_per_s": "by_db",
    "pipeline_sessions_per_s": "by_db",
    "handoff_ms.sqlite": ("p50", "p95", "p99"),
    "handoff_ms.postgres": ("p50", "p95", "p99"),
    "import_rows_per_s": "by_db",
    "history_ms": ("p50", "p99"),
    "ai_sessions_per_s": None,
    "peak_rss_mb": None,
}


def _get(results: dict[str, Any], dotted: str) -> Any:
    value: Any = results
    for part in dotted.split("."):
        assert isinstance(value, dict) and part in value, f"missing {dotted}"
        value = value[part]
    return value


def run_script(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs a bench script against the tests' PostgreSQL server. The scripts create and drop
    their own databases there; opening a fresh one first skips (or, in CI, fails) the test
    like the others when the server is not there."""
    with fresh_pg_database() as server:
        return subprocess.run(
            [sys.executable, str(REPO / "scripts" / script), *args, "--postgres-url", server],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


def _positive(name: str, value: Any) -> None:
    assert isinstance(value, int | float) and not isinstance(value, bool), (name, value)
    assert value > 0, (name, value)


def test_tiny_suite_writes_every_required_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench-results.json"
    proc = run_script(
        "bench.py",
        "--size", "tiny", "--runs", "1", "--databases", "sqlite,postgres",
        "--sqlite-dir", str(tmp_path), "--output", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text(encoding="utf-8"))
    for key, shape in REQUIRED.items():
        value = _get(results, key)
        if shape is None:
            _positive(key, value)
        elif shape == "by_db":
            for db in ("sqlite", "postgres"):
                _positive(f"{key}.{db}", value.get(db))
        elif shape == "by_size":
            assert value, key
            for size, ms in value.items():
                assert int(size) > 0
                _positive(f"{key}.{size}", ms)
        else:
            for part in shape:
                _positive(f"{key}.{part}", value.get(part))
    assert "figure" in proc.stdout and results["machine"]["cores"]


def test_fleet_bench_runs_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "bench-results.json"
    proc = run_script(
        "bench_daemons.py", "--scenario", "all", "--runs", "1", "--daemons", "1,2",
        "--sessions", "30", "--io-sessions", "16", "--takeover-sessions", "240",
        "--ai-latency", "1", "--heartbeat", "0.5", "--claim-timeout", "2",
        "--takeover-lease", "4", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    fleet = json.loads(out.read_text(encoding="utf-8"))["daemon_fleet"]
    for scenario in ("io", "cpu"):
        for n in ("1", "2"):
            figures = fleet[scenario]["by_daemons"][n]
            _positive(f"{scenario}.{n}", figures["steady_per_s"]["median"])
            assert figures["sessions_missing"]["median"] == 0, (scenario, n)
            assert figures["lost_race_pct"]["median"] >= 0
        assert "2" in fleet["io"]["ratio_to_n_times_one"]
    takeover = fleet["takeover"]
    assert takeover["sessions_missing"]["median"] == 0
    assert takeover["completed_twice"]["median"] == 0
    assert takeover["reruns_not_explained_by_the_kill"]["median"] == 0
    _positive("takeover.reowned_s", takeover["reowned_s"]["median"])
