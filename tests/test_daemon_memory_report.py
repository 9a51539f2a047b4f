"""The daemon reports its own memory: an operator watching for growth, and the benchmark that
checks "peak RSS under 300 MB", both read it from the log lines."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import REPO, Livedash

PARENT_MB = 300


def test_stopped_line_reports_the_daemons_own_peak_not_its_parents(tmp_path: Path) -> None:
    # A large parent: the kernel's ru_maxrss of a forked-and-exec'd child starts from the
    # parent's peak, so a report built on it would say over 300 MB here.
    ballast = bytearray(PARENT_MB * 1024 * 1024)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEDASH_")}
    env["PYTHONPATH"] = str(REPO)
    livedash = Livedash(f"sqlite:///{tmp_path / 'livedash.db'}", tmp_path, env)
    livedash("init")
    ran = livedash("run", "--until-idle", "--csv-interval", "0", "--poll-interval", "0.1")
    lines = [json.loads(line) for line in ran.stderr.splitlines() if line.startswith("{")]
    stopped = [line for line in lines if line["event"] == "stopped"]
    assert len(stopped) == 1, ran.stderr
    report = stopped[0]
    assert 10 < report["peak_rss_mb"] < PARENT_MB / 2, report
    assert 0 < report["rss_mb"] <= report["peak_rss_mb"], report
    assert len(ballast) == PARENT_MB * 1024 * 1024  # held until the child has exited
