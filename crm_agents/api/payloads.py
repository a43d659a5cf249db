"""The JSON bodies the API accepts that are validated by pydantic (the call payload is the
same one scenario files and the demo use, crm_agents/calls.py), and the translation of
pydantic's errors into DRF's 400 body.

Bodies are validated strictly, as the schema describes them: a number where text is due,
or ``"5"`` where a number is, is a 400, not a silent conversion. Errors are flat and keyed
by the dotted path of the offending value, e.g. ``{"attendees.1.email": ["'x' is not an
email address"]}``; errors about the body as a whole are under ``non_field_errors``.
"""

import json
from typing import Annotated, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from rest_framework import exceptions
from rest_framework.settings import api_settings

from crm_agents.api.filters import MAX_ID
from crm_agents.calls import NOT_BLANK, CallIn, integral

Payload = TypeVar("Payload", bound=BaseModel)

# The longest text a CRM property holds (HubSpot's limit; Salesforce's long text is shorter).
MAX_VALUE_CHARS = 65_536
MAX_REASON_CHARS = 2_000


# Constraints before the validator, so the schema shows them as minimum and maximum.
Id = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(integral)]


def _id(description: str) -> object:
    return Field(default=None, description=description)


class CallSubmission(CallIn):
    workspace: Id | None = _id(
        "The workspace's id. Optional with an API key, or for a person who belongs to a "
        "single workspace."
    )


class PastedCall(CallIn):
    external_id: str = Field(
        default="",
        max_length=255,
        description="Ignored: a test call is stored with its own id, test-<uuid>, so it "
        "can never stand in for a real call.",
    )


class WorkflowTestRequest(BaseModel):
    """Test a workflow on a past call (``call_id``) or on a pasted one (``call``)."""

    model_config = ConfigDict(
        extra="forbid",
        # Exactly one of the two, as the validator below says.
        json_schema_extra={
            "oneOf": [
                {"required": ["call_id"], "properties": {"call_id": {"type": "integer"}}},
                {"required": ["call"], "properties": {"call": {"type": "object"}}},
            ]
        },
    )

    call_id: Id | None = _id("A call of the workflow's workspace.")
    call: PastedCall | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "WorkflowTestRequest":
        if (self.call_id is None) == (self.call is None):
            raise ValueError("give either call_id (a past call) or call (a pasted one)")
        return self


def _single_value(value: object) -> object:
    if isinstance(value, dict | list):
        raise ValueError("Give a single value, not an object or a list.")
    return value


class Decision(BaseModel):
    """A decision on one proposal."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "allOf": [
                {
                    "if": {
                        "required": ["decision"],
                        "properties": {"decision": {"const": "reject"}},
                    },
                    "then": {
                        "required": ["reason"],
                        "properties": {"reason": {"pattern": NOT_BLANK}},
                    },
                },
                {
                    "if": {"required": ["decision"], "properties": {"decision": {"const": "edit"}}},
                    "then": {
                        "required": ["value"],
                        "properties": {"value": {"not": {"type": "null"}}},
                    },
                },
            ]
        },
    )

    decision: Literal["approve", "reject", "edit"]
    reason: str = Field(
        default="", max_length=MAX_REASON_CHARS, description="Why; required to reject."
    )
    value: Annotated[str | int | float | bool | None, BeforeValidator(_single_value)] = Field(
        default=None,
        description="For edit: the value to write instead, checked against the property's type.",
        json_schema_extra={"maxLength": MAX_VALUE_CHARS},
    )

    @model_validator(mode="after")
    def _complete(self) -> "Decision":
        if self.decision == "reject" and not self.reason.strip():
            raise _field_error("reason", "say why you reject this change: a reason is required")
        if self.decision == "edit" and self.value is None:
            raise _field_error("value", "An edit needs the value to write.")
        if isinstance(self.value, str) and len(self.value) > MAX_VALUE_CHARS:
            raise _field_error("value", f"At most {MAX_VALUE_CHARS} characters.")
        return self


class Choice(BaseModel):
    """The answer to a change set's question "which record?", once for the call."""

    model_config = ConfigDict(extra="forbid")

    record_id: str = Field(
        min_length=1,
        max_length=64,
        description="The CRM id of one of the candidate records the question offers.",
        json_schema_extra={"pattern": NOT_BLANK},
    )


class Rejection(BaseModel):
    """Reject every pending proposal of a change set."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        max_length=MAX_REASON_CHARS,
        description="Why these changes are rejected; required.",
        json_schema_extra={"pattern": NOT_BLANK},
    )

    @model_validator(mode="after")
    def _given(self) -> "Rejection":
        if not self.reason.strip():
            raise _field_error("reason", "say why you reject these changes: a reason is required")
        return self


class NewToken(BaseModel):
    """A new personal API token."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(
        min_length=1,
        max_length=100,
        description="What uses it, e.g. “Reporting script”.",
        json_schema_extra={"pattern": NOT_BLANK},
    )

    @field_validator("name")
    @classmethod
    def _not_blank(cls, name: str) -> str:
        name = name.strip()  # Python's strip, as NOT_BLANK says
        if not name:
            raise ValueError("a token needs a name saying what uses it")
        return name


class _FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _field_error(field: str, message: str) -> _FieldError:
    return _FieldError(field, message)


def parse(model: type[Payload], data: object) -> Payload:
    """``data`` validated as ``model``, or a DRF ValidationError (400) naming each field."""
    try:
        return model.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        raise exceptions.ValidationError(field_errors(exc)) from None


def field_errors(exc: ValidationError) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False, include_input=False):
        loc = list(error["loc"])
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, _FieldError):
            loc.append(cause.field)
        key = ".".join(str(part) for part in loc) or api_settings.NON_FIELD_ERRORS_KEY
        errors.setdefault(key, []).append(_message(error))
    return errors


def _message(error: dict) -> str:
    if error["type"] == "value_error":
        # Our own validators' messages, without pydantic's "Value error, " in front.
        return str(error["ctx"]["error"])
    if error["type"] == "extra_forbidden":
        return "Unknown field."
    return error["msg"]
