"""The analysis schema: what the AI stage must return, validated the same way for every provider."""

from __future__ import annotations

import re
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Sentiment(Enum):
    POSITIVE = "POSITIVE"
    NEUTRAL = "NEUTRAL"
    NEGATIVE = "NEGATIVE"


class Category(Enum):
    SCHEDULE_HOURS = "SCHEDULE_HOURS"
    LEAVE_VACATION = "LEAVE_VACATION"
    SICK_LEAVE_RECOVERY = "SICK_LEAVE_RECOVERY"
    SALARY_COMPENSATION = "SALARY_COMPENSATION"
    CONTRACT_HOURS = "CONTRACT_HOURS"
    ONBOARDING = "ONBOARDING"
    OFFBOARDING = "OFFBOARDING"
    WORKWEAR_STAFF_PASS = "WORKWEAR_STAFF_PASS"
    TEAM_CONTACTS = "TEAM_CONTACTS"
    PERSONAL_QUESTIONS = "PERSONAL_QUESTIONS"
    ACCESS_LOGIN = "ACCESS_LOGIN"
    SOCIAL_QUESTIONS = "SOCIAL_QUESTIONS"
    UNRECOGNIZED_OTHER = "UNRECOGNIZED_OTHER"


_LANG = re.compile(r"^[a-z]{2}$")


class SessionAnalysis(BaseModel):
    """One model for the JSON schema sent to the LLM and for validating every answer."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    language: str = Field(description="Main language of the user, ISO 639-1 code, e.g. 'nl'")
    sentiment: Sentiment
    escalated: bool = Field(description="The issue was escalated to a supervisor or manager")
    forwarded_hr: bool = Field(description="HR contact details were mentioned or given")
    category: Category
    questions: list[str] = Field(max_length=5, description="At most 5 user questions, in English")
    summary: str = Field(min_length=10, max_length=300)

    @field_validator("language", mode="before")
    @classmethod
    def _language(cls, value: object) -> object:
        if isinstance(value, str):
            code = value.strip().lower().replace("_", "-").split("-")[0]
            if _LANG.match(code):
                return code
        return value

    @field_validator("language")
    @classmethod
    def _language_is_iso(cls, value: str) -> str:
        if not _LANG.match(value):
            raise ValueError("language must be an ISO 639-1 code such as 'en' or 'nl'")
        return value
