"""The shape of a call as it arrives (API, scenario file, demo), validated at the boundary."""

import re
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)

# What Python counts as a space (str.strip, re's \s), spelled out for the schema's patterns:
# JSON Schema's \s (ECMA-262) leaves out \x1c-\x1f and \x85, so "\S" there would accept a
# value that stripping leaves empty.
SPACE = r"\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK = f"[^{SPACE}]"
_EMAIL_CORE = f"[^@{SPACE}]+@[^@{SPACE}]+\\.[^@{SPACE}]+"
_EMAIL = re.compile(_EMAIL_CORE)
# The same rule for the schema: surrounding spaces are trimmed before the check.
EMAIL_PATTERN = f"^[{SPACE}]*{_EMAIL_CORE}[{SPACE}]*$"


MAX_EMAIL = 254


def _email(value: str) -> str:
    value = value.strip().lower()
    if not _EMAIL.fullmatch(value):
        raise ValueError(f"{value!r} is not an email address")
    if len(value) > MAX_EMAIL:
        raise ValueError(f"an email address has at most {MAX_EMAIL} characters")
    return value


EmailStr = Annotated[
    str,
    AfterValidator(_email),
    WithJsonSchema({"type": "string", "pattern": EMAIL_PATTERN, "maxLength": MAX_EMAIL}),
]

# When a call started: a time the product can store and show anywhere. The years 1970 to
# 2199 as written, with a real-world UTC offset (-14:00 to +14:00), so that converting it to
# any time zone stays far inside what Python and the databases hold. Written as RFC 3339
# (2026-11-21T15:00:00Z, up to microseconds). The schema carries the same rule as a pattern,
# except 29 February, which a pattern cannot tell from a non-leap year: the date check does.
FIRST_YEAR, LAST_YEAR = 1970, 2199
MAX_UTC_OFFSET = timedelta(hours=14)
_YEAR = "(?:19[7-9][0-9]|2[01][0-9][0-9])"
_LONG_MONTH_DAY = "(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
_SHORT_MONTH_DAY = "(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
_TIME = r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
_OFFSET = "(?:Z|[+-](?:0[0-9]|1[0-3]):[0-5][0-9]|[+-]14:00)"


def _date_time(february: str) -> str:
    return f"^{_YEAR}-(?:{_LONG_MONTH_DAY}|{_SHORT_MONTH_DAY}|02-{february}){_TIME}{_OFFSET}$"


STARTED_AT_PATTERN = _date_time("(?:0[1-9]|1[0-9]|2[0-8])")
_STARTED_AT = re.compile(_date_time("(?:0[1-9]|1[0-9]|2[0-9])"))
STARTED_AT_RULE = (
    f"write it as 2026-11-21T15:00:00Z or with its UTC offset (-14:00 to +14:00), "
    f"in the years {FIRST_YEAR} to {LAST_YEAR}"
)


def integral(value: object) -> object:
    # JSON has one number type: 1800.0 is the integer 1800, as JSON Schema says.
    return int(value) if isinstance(value, float) and value.is_integer() else value


WholeNumber = Annotated[int, BeforeValidator(integral)]

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

    external_id: str = Field(min_length=1, max_length=255, json_schema_extra={"pattern": NOT_BLANK})
    title: str = Field(default="", max_length=500)
    started_at: datetime = Field(
        description=f"When the call started: {STARTED_AT_RULE}.",
        json_schema_extra={"pattern": STARTED_AT_PATTERN},
    )
    duration_s: WholeNumber = Field(default=0, ge=0, le=86_400)
    owner: EmailStr | None = Field(default=None, description="The call owner's email.")
    attendees: list[AttendeeIn] = Field(default_factory=list, max_length=500)
    transcript: list[TurnIn] = Field(default_factory=list, max_length=MAX_TURNS)

    @field_validator("external_id")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        # Python's strip, as NOT_BLANK says: pydantic's own trims fewer characters (\x1c-\x1f).
        value = value.strip()
        if not value:
            raise ValueError("give the call's id in the system it comes from")
        return value

    @field_validator("started_at", mode="before")
    @classmethod
    def _rfc3339(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            written = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not a date and time: {STARTED_AT_RULE}") from None
        _check_started_at(written)
        if not _STARTED_AT.fullmatch(value):
            raise ValueError(STARTED_AT_RULE)
        return written

    @field_validator("started_at")
    @classmethod
    def _storable(cls, value: datetime) -> datetime:
        _check_started_at(value)
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


def _check_started_at(value: datetime) -> None:
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("give a time zone, e.g. 2026-11-21T15:00:00Z")
    if abs(offset) > MAX_UTC_OFFSET:
        raise ValueError("the UTC offset must be between -14:00 and +14:00")
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"give a time in the years {FIRST_YEAR} to {LAST_YEAR}")
