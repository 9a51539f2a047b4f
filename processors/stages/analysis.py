"""AI_ANALYSIS and QUESTION_EXTRACTION processors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from domain.analysis import SessionAnalysis
from domain.company import Company
from domain.payloads import AIUsage
from domain.questions import normalise_questions
from domain.session import Session
from domain.stages import Stage, Status
from domain.transcript import Message
from processors.stages.base import WorkContext


@dataclass(frozen=True)
class AnalysisOutput:
    analysis: SessionAnalysis
    provider: str
    model: str
    prompt_version: str
    usage: AIUsage | None
    metadata: dict[str, object]


@dataclass(frozen=True)
class AnalysisInputs:
    session_id: UUID
    messages: list[Message]
    model: str | None
    recorded_response: AIUsage | None = None
    """A paid response an earlier attempt received but never turned into an analysis: a retry
    validates it instead of paying again."""


Analyser = Callable[[AnalysisInputs, WorkContext], AnalysisOutput]


def unconsumed_response(session: Session) -> AIUsage | None:
    """The last paid analysis response that no analysis was recorded from since, if any."""
    consumed_after = -1
    for i, (stage, _attempt, usage) in enumerate(session.ai_usage):
        if stage is Stage.AI_ANALYSIS and usage.response_text:
            consumed_after = i
    if consumed_after < 0 or session.stages[Stage.AI_ANALYSIS].status is Status.COMPLETED:
        return None
    _stage, attempt, usage = session.ai_usage[consumed_after]
    if session.analysis_from_attempt is not None and session.analysis_from_attempt >= attempt:
        return None
    state = session.stages[Stage.AI_ANALYSIS]
    if state.error_type in ("invalid_output", "refused"):
        return None  # the last answer was judged already: a retry asks afresh
    return usage


class AnalysisProcessor:
    stage = Stage.AI_ANALYSIS

    def __init__(self, analyser: Analyser, default_model: str | None = None) -> None:
        """``analyser``: the offline one (`processors.ai.offline.analyser`) or OpenAI's, chosen
        by the composition root (`cli.bootstrap`)."""
        self.analyser = analyser
        self.default_model = default_model

    def prepare(self, session: Session, company: Company) -> AnalysisInputs:
        return AnalysisInputs(
            session_id=session.id,
            messages=list(session.messages),
            model=company.ai_model or self.default_model,
            recorded_response=unconsumed_response(session),
        )

    def run(self, inputs: AnalysisInputs, ctx: WorkContext) -> AnalysisOutput:
        return self.analyser(inputs, ctx)

    def close(self) -> None:
        """Releases the analyser's HTTP client, when it has one."""
        close = getattr(self.analyser, "close", None)
        if close is not None:
            close()

    def record(self, session: Session, attempt: int, output: AnalysisOutput, now: datetime) -> None:
        a = output.analysis
        session.record_analysis(
            attempt,
            a,
            output.provider,
            output.model,
            output.prompt_version,
            now,
            {
                "provider": output.provider,
                "model": output.model,
                "prompt_version": output.prompt_version,
                "language": a.language,
                "sentiment": a.sentiment.value,
                "category": a.category.value,
                "questions": len(a.questions),
                **output.metadata,
            },
        )


class QuestionExtractionProcessor:
    stage = Stage.QUESTION_EXTRACTION

    def prepare(self, session: Session, company: Company) -> list[str]:
        return list(session.analysis.questions) if session.analysis else []

    def run(self, inputs: list[str], ctx: WorkContext | None = None) -> list[str]:
        return normalise_questions(inputs)

    def record(self, session: Session, attempt: int, output: list[str], now: datetime) -> None:
        session.record_questions(attempt, output, now, {"questions": len(output)})
