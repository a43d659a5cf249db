"""The shape of a call as it arrives (API, scenario file, demo), validated at the boundary."""

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _email(value: str) -> str:
    value = value.strip().lower()
    if not _EMAIL.fullmatch(value):
        raise ValueError(f"{value!r} is not an email address")
    return value


EmailStr = Annotated[str, AfterValidator(_email)]

MAX_TURNS = 5000
MAX_TURN_TEXT = 10_000


class AttendeeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(default="", max_length=200)
    email: EmailStr | None = None
    internal: bool = False


class TurnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    speaker: str = Field(min_length=1, max_length=200)
    start: float = Field(ge=0, le=86_400, description="Seconds from the start of the call.")
    text: str = Field(max_length=MAX_TURN_TEXT)


class CallIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    external_id: str = Field(min_length=1, max_length=255)
    title: str = Field(default="", max_length=500)
    started_at: datetime
    duration_s: int = Field(default=0, ge=0, le=86_400)
    owner: EmailStr | None = Field(default=None, description="The call owner's email.")
    attendees: list[AttendeeIn] = Field(default_factory=list, max_length=500)
    transcript: list[TurnIn] = Field(default_factory=list, max_length=MAX_TURNS)

    @field_validator("started_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2026-11-21T15:00:00Z")
        return value

    def as_model_fields(self) -> dict:
        return {
            "title": self.title,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "owner_email": self.owner or "",
            "attendees": [
                {"name": a.name, "email": a.email or "", "internal": a.internal}
                for a in self.attendees
            ],
            "transcript": [t.model_dump() for t in self.transcript],
        }
