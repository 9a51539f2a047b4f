"""What batches report back: counts, stage statuses and problem examples, merged in the driver."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from domain.session import Session
from domain.stages import STAGE_ORDER, Stage, Status
from processors.legacy.csv_row import external_id_of
from processors.legacy.prepare import Prepared
from processors.legacy.records import LegacyUnit, UnitKey
from processors.legacy.report import MAX_PROBLEM_EXAMPLES, ProblemExample


@dataclass
class Tally:
    """What batches report back; picklable, so worker processes can send it and it merges."""

    migrated: int = 0
    already_migrated: int = 0
    problems: int = 0
    not_migrated: int = 0
    events: int = 0
    stages: dict[str, Counter[str]] = field(
        default_factory=lambda: {s.value: Counter() for s in STAGE_ORDER}
    )
    kinds: Counter[str] = field(default_factory=Counter)
    examples: list[ProblemExample] = field(default_factory=list)
    legacy_failed: Counter[str] = field(default_factory=Counter)
    interrupted: Counter[str] = field(default_factory=Counter)
    creation_skipped: int = 0
    start_differs: int = 0

    def merge(self, other: Tally) -> None:
        self.migrated += other.migrated
        self.already_migrated += other.already_migrated
        self.problems += other.problems
        self.not_migrated += other.not_migrated
        self.events += other.events
        for stage, counts in other.stages.items():
            self.stages[stage].update(counts)
        self.kinds.update(other.kinds)
        room = MAX_PROBLEM_EXAMPLES - len(self.examples)
        self.examples.extend(other.examples[: max(0, room)])
        self.legacy_failed.update(other.legacy_failed)
        self.interrupted.update(other.interrupted)
        self.creation_skipped += other.creation_skipped
        self.start_differs += other.start_differs

    def add_states(self, states: dict[str, str]) -> None:
        for stage, status in states.items():
            self.stages[stage][status] += 1

    def add_session(self, session: Session) -> None:
        self.migrated += 1
        states = {s.value: session.stages[s].status.value for s in STAGE_ORDER}
        self.add_states(states)
        for stage in STAGE_ORDER:
            st = session.stages[stage]
            if st.status is Status.FAILED:
                if st.error_type == "interrupted":
                    self.interrupted[stage.value] += 1
                elif st.error_type == "legacy_failure":
                    self.legacy_failed[stage.value] += 1
        creation = session.stages[Stage.SESSION_CREATION]
        if creation.status is Status.SKIPPED:
            self.creation_skipped += 1

    def add_problems(self, p: Prepared, company: str) -> None:
        if p.start_differs:
            self.start_differs += 1
        if not p.problems:
            return
        self.problems += 1
        for problem in p.problems:
            self.kinds[problem.split(":", 1)[0]] += 1
        self._example(p.external_id, company, p.unit, list(p.problems))

    def not_migrated_unit(self, key: UnitKey, company: str, why: str) -> None:
        self.not_migrated += 1
        self.kinds["not_migrated"] += 1
        ext = external_id_of(key[0], key[3], key[1])[0]
        if len(self.examples) < MAX_PROBLEM_EXAMPLES:
            self.examples.append(
                ProblemExample(
                    external_id=ext,
                    company=company,
                    legacy_session_id=key[1],
                    legacy_import_id=key[0],
                    problems=[f"not_migrated: {why}"],
                )
            )

    def _example(self, ext: str, company: str, unit: LegacyUnit, problems: list[str]) -> None:
        if len(self.examples) < MAX_PROBLEM_EXAMPLES:
            self.examples.append(
                ProblemExample(
                    external_id=ext,
                    company=company,
                    legacy_session_id=unit.legacy_session_id,
                    legacy_import_id=unit.legacy_import_id,
                    problems=problems,
                )
            )
