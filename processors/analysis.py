"""AI_ANALYSIS and QUESTION_EXTRACTION processors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from domain.analysis import SessionAnalysis
from domain.company import Company
from domain.payloads import AIUsage
from domain.questions import normalise_questions
from domain.session import Session
from domain.stages import Stage
from domain.transcript import Message
from processors import offline_analyser


@dataclass(frozen=True)
class AnalysisOutput:
    analysis: SessionAnalysis
    provider: str
    model: str
    prompt_version: str
    usage: AIUsage | None
    metadata: dict[str, object]


Analyser = Callable[[Sequence[Message], str | None], AnalysisOutput]


def offline(messages: Sequence[Message], _model: str | None) -> AnalysisOutput:
    analysis = offline_analyser.analyse(messages)
    return AnalysisOutput(
        analysis=analysis,
        provider=offline_analyser.PROVIDER,
        model=offline_analyser.MODEL,
        prompt_version="rules-1",
        usage=None,
        metadata={"cost_eur": 0},
    )


@dataclass(frozen=True)
class AnalysisInputs:
    messages: list[Message]
    model: str | None


class AnalysisProcessor:
    stage = Stage.AI_ANALYSIS

    def __init__(self, analyser: Analyser = offline, default_model: str | None = None) -> None:
        self.analyser = analyser
        self.default_model = default_model

    def prepare(self, session: Session, company: Company) -> AnalysisInputs:
        return AnalysisInputs(list(session.messages), company.ai_model or self.default_model)

    def run(self, inputs: AnalysisInputs) -> AnalysisOutput:
        return self.analyser(inputs.messages, inputs.model)

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

    def run(self, inputs: list[str]) -> list[str]:
        return normalise_questions(inputs)

    def record(self, session: Session, attempt: int, output: list[str], now: datetime) -> None:
        session.record_questions(attempt, output, now, {"questions": len(output)})
