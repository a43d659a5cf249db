"""The JSON bodies the API accepts that are validated by pydantic (the call payload is the
same one scenario files and the demo use, crm_agents/calls.py), and the translation of
pydantic's errors into DRF's 400 body.

Errors are flat and keyed by the dotted path of the offending value, e.g.
``{"attendees.1.email": ["'x' is not an email address"]}``; errors about the body as a
whole are under ``non_field_errors``.
"""

from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from rest_framework import exceptions
from rest_framework.settings import api_settings

from crm_agents.calls import CallIn

Payload = TypeVar("Payload", bound=BaseModel)


class CallSubmission(CallIn):
    workspace: int | None = Field(
        default=None,
        description="The workspace's id. Optional with an API key, or for a person who "
        "belongs to a single workspace.",
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

    model_config = ConfigDict(extra="forbid")

    call_id: int | None = Field(default=None, description="A call of the workflow's workspace.")
    call: PastedCall | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "WorkflowTestRequest":
        if (self.call_id is None) == (self.call is None):
            raise ValueError("give either call_id (a past call) or call (a pasted one)")
        return self


def parse(model: type[Payload], data: object) -> Payload:
    """``data`` validated as ``model``, or a DRF ValidationError (400) naming each field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise exceptions.ValidationError(field_errors(exc)) from None


def field_errors(exc: ValidationError) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False, include_input=False):
        key = ".".join(str(part) for part in error["loc"]) or api_settings.NON_FIELD_ERRORS_KEY
        errors.setdefault(key, []).append(_message(error))
    return errors


def _message(error: dict) -> str:
    if error["type"] == "value_error":
        # Our own validators' messages, without pydantic's "Value error, " in front.
        return str(error["ctx"]["error"])
    if error["type"] == "extra_forbidden":
        return "Unknown field."
    return error["msg"]
