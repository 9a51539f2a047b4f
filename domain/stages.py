"""Stages, statuses and the rules that connect them.

Everything a processor, projection or report needs to know about the order of the
pipeline lives here, so adding a stage later is a change to this module only.
"""

from __future__ import annotations

from enum import Enum


class Stage(Enum):
    CSV_IMPORT = "CSV_IMPORT"
    TRANSCRIPT_FETCH = "TRANSCRIPT_FETCH"
    SESSION_CREATION = "SESSION_CREATION"
    AI_ANALYSIS = "AI_ANALYSIS"
    QUESTION_EXTRACTION = "QUESTION_EXTRACTION"

    @property
    def index(self) -> int:
        return STAGE_ORDER.index(self)

    @property
    def previous(self) -> Stage | None:
        i = self.index
        return STAGE_ORDER[i - 1] if i > 0 else None

    @property
    def next(self) -> Stage | None:
        i = self.index
        return STAGE_ORDER[i + 1] if i + 1 < len(STAGE_ORDER) else None

    def and_later(self) -> tuple[Stage, ...]:
        return STAGE_ORDER[self.index :]

    @classmethod
    def parse(cls, value: str) -> Stage:
        """Accepts the exact name, any case, or '-' for '_' (friendly for a command line)."""
        key = value.strip().upper().replace("-", "_")
        try:
            return cls[key]
        except KeyError:
            names = ", ".join(s.value for s in STAGE_ORDER)
            raise ValueError(f"unknown stage {value!r}; expected one of {names}") from None


class Status(Enum):
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"

    @classmethod
    def parse(cls, value: str) -> Status:
        key = value.strip().upper().replace("-", "_")
        try:
            return cls[key]
        except KeyError:
            names = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown status {value!r}; expected one of {names}") from None


STAGE_ORDER: tuple[Stage, ...] = tuple(Stage)
STATUSES: tuple[Status, ...] = tuple(Status)

# A stage whose work is behind it, as far as the next stage is concerned.
DONE: frozenset[Status] = frozenset({Status.COMPLETED, Status.SKIPPED})

# What the previous stage must be for a stage to become ready. The original treated
# SKIPPED as "not done" and so blocked every session without a transcript (§14 item 28).
READY_WHEN_PREVIOUS: dict[Stage, frozenset[Status]] = {
    Stage.TRANSCRIPT_FETCH: frozenset({Status.COMPLETED}),
    Stage.SESSION_CREATION: DONE,
    Stage.AI_ANALYSIS: frozenset({Status.COMPLETED}),
    Stage.QUESTION_EXTRACTION: DONE,
}

# Stages a worker performs; CSV_IMPORT is completed by the import itself.
WORKER_STAGES: tuple[Stage, ...] = STAGE_ORDER[1:]

# Stages that an import of a changed CSV row sends back to PENDING.
REOPENED_BY_ROW_CHANGE: tuple[Stage, ...] = Stage.TRANSCRIPT_FETCH.and_later()


def is_ready(stage: Stage, previous_status: Status | None) -> bool:
    """True when the stage's predecessor allows it to run."""
    if stage is Stage.CSV_IMPORT:
        return True
    return previous_status in READY_WHEN_PREVIOUS[stage]
