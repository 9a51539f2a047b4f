"""The report of `livedash migrate-legacy`: the `--json` document and the lines printed from it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel, Field

from domain.stages import STATUSES
from processors.legacy.build import INTERRUPTED

if TYPE_CHECKING:
    from processors.legacy.tally import Tally

MAX_PROBLEM_EXAMPLES = 100


class CompanyResult(BaseModel):
    name: str
    legacy_id: str
    company_id: UUID
    status: str
    action: str
    """"migrated" or "already present"."""


class ProblemExample(BaseModel):
    external_id: str
    company: str
    legacy_session_id: str | None
    legacy_import_id: str | None
    problems: list[str]


class SessionCounts(BaseModel):
    total: int = 0
    migrated: int = 0
    already_migrated: int = 0
    problems: int = 0
    """Sessions migrated with at least one problem recorded."""
    not_migrated: int = 0
    """Units that could not become a session at all (reported in ``problem_examples``)."""
    events: int = 0


class MigrationReport(BaseModel):
    source: str
    variant: str
    dry_run: bool
    timezone: str
    companies: dict[str, Any] = Field(default_factory=dict)
    sessions: SessionCounts = Field(default_factory=SessionCounts)
    stages: dict[str, dict[str, int]] = Field(default_factory=dict)
    final_status: list[str] = Field(default_factory=list)
    problem_kinds: dict[str, int] = Field(default_factory=dict)
    problem_examples: list[ProblemExample] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    workers: int = 1
    seconds: float = 0.0
    """Reading, building and storing the sessions."""
    projection_seconds: float = 0.0
    """Bringing the projections (the tables reports read) up to date afterwards."""


def final_status_line(stage: str, counts: dict[str, int]) -> str:
    """The original script's line, with failures (and anything in progress) added."""
    line = (
        f"{stage}: {counts.get('COMPLETED', 0)} completed, {counts.get('PENDING', 0)} pending, "
        f"{counts.get('SKIPPED', 0)} skipped, {counts.get('FAILED', 0)} failed"
    )
    if counts.get("IN_PROGRESS"):
        line += f", {counts['IN_PROGRESS']} in progress"
    return line


def finish_report(r: MigrationReport, t: Tally) -> None:
    """The counts of a finished run written into its report, with a warning for each kind of
    session the operator has to look at."""
    r.sessions.migrated = t.migrated
    r.sessions.already_migrated = t.already_migrated
    r.sessions.problems = t.problems
    r.sessions.not_migrated = t.not_migrated
    r.sessions.events = t.events
    r.stages = {
        stage: {status.value: t.stages[stage][status.value] for status in STATUSES}
        for stage in t.stages
    }
    r.final_status = [final_status_line(stage, counts) for stage, counts in r.stages.items()]
    r.problem_kinds = dict(sorted(t.kinds.items()))
    r.problem_examples = t.examples
    for stage, n in t.interrupted.items():
        r.warnings.append(
            f"{n} session(s) had {stage} IN_PROGRESS in the legacy system: recorded FAILED "
            f"({INTERRUPTED}) and due for retry now, so `livedash run` takes them up"
        )
    for stage, n in t.legacy_failed.items():
        r.warnings.append(
            f"{n} session(s) had {stage} FAILED in the legacy system: kept FAILED with the "
            f"legacy message and not retried automatically; `livedash retry --stage {stage} "
            "--all-failed` runs them again"
        )
    if t.creation_skipped:
        r.warnings.append(
            f"{t.creation_skipped} session(s) had SESSION_CREATION SKIPPED in the legacy "
            "system (no transcript), so their AI_ANALYSIS and QUESTION_EXTRACTION cannot "
            "start; `livedash retry <session> --stage SESSION_CREATION` creates them without "
            "messages"
        )
    if t.start_differs:
        r.warnings.append(
            f"{t.start_differs} session(s): the raw start time read in {r.timezone} is not "
            "the legacy Session.startTime (the legacy server parsed it in its own local "
            "time); if that zone is not "
            f"{r.timezone}, migrate with --timezone set to it so a later CSV import sees the "
            "same rows"
        )
