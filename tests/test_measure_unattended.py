"""scripts/measure_unattended.py at a tiny size, so the issue-13 figures can always be
produced: every figure is printed, and the ones that say whether the daemon is safe hold."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.conftest import REPO, fresh_pg_database

TINY = (
    "--databases", "postgres",
    "--lease-sessions", "6", "--lease", "2", "--lease-latency", "0.1",
    "--lease-concurrency", "4",
    "--sessions", "12", "--kill-lease", "2", "--kill-latency", "0.1",
    "--outage", "1", "--skip-long", "--max-run", "60",
)  # fmt: skip


def test_tiny_measurement_prints_every_figure() -> None:
    with fresh_pg_database() as server:  # skips (or fails in CI) like the others without PG
        proc = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "measure_unattended.py"), *TINY,
             "--postgres-url", server],
            cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures: dict[str, dict[str, Any]] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            item = json.loads(line)
            figures[item["figure"]] = item
    leases = figures["s1_short_lease_long_queue"]
    kills = figures["s2_sigkill_three_times"]
    outage = figures["s2b_database_outage"]
    assert leases["sessions"] == 6 and leases["dead_without_request"] == 0
    assert leases["requests_total"] >= 6
    assert len(kills["kills"]) == 3 and kills["every_unrecorded_answer_reported_lost"]
    assert kills["answered_by_server"] >= kills["recorded"] >= 12
    assert outage["daemon_running_at_end_of_outage"] is True
    assert outage["paid"] == outage["recorded"] >= 12
    assert "== summary ==" in proc.stdout
