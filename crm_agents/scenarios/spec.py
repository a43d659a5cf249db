"""The scenario file format (shared/scenarios/README.md) as strict pydantic models.

Unknown keys are errors, so a typo such as ``atendees`` fails loudly with its path
(``calls[0].atendees: unknown key``) instead of being ignored.

A few keys go beyond the README, all optional: ``after_call`` and ``field`` on a review
decision, a ``{"choose": "<record key>"}`` decision (a human picks the record of a run
that needs a choice), ``delete`` on a CRM edit, ``review`` and ``owner_team`` on
workflows and field rules, ``new`` on expected proposals, ``denied`` expectations, the
``not_triggered`` outcome, and ``_source`` / ``_comment`` notes. Loading and the checks of
keys across the file are in loader.py.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

Provider = Literal["hubspot", "salesforce"]
ObjectName = Literal["company", "contact", "deal"]
Scope = Literal["none", "read", "read_write"]
ReviewModeName = Literal["auto", "review"]
Outcome = Literal[
    "applied",
    "pending_review",
    "no_match",
    "ambiguous",
    "conflict",
    "failed",
    "dry_run",
    "no_changes",
    "not_triggered",  # the workflow's trigger did not fire: no run at all
]
ProposalStatusName = Literal[
    "pending",
    "approved",
    "applying",
    "applied",
    "rejected",
    "conflict",
    "denied",
    "dropped",
    "superseded",
    "dry_run",
    "failed",
]
Key = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class ScenarioError(Exception):
    """A malformed scenario: ``path`` names the bad key (``calls[0].atendees``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UserSpec(_Strict):
    key: Key
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    access: Literal["owned", "team", "all"] = "all"
    team: str = ""
    readonly_fields: list[str] = []
    hidden_fields: list[str] = []


class CustomFieldSpec(_Strict):
    object: ObjectName
    name: str = Field(pattern=r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
    type: Literal["string", "text", "number", "date", "datetime", "bool", "enumeration", "phone"]
    label: str = ""
    options: list[str] = []


class RecordSpec(_Strict):
    key: Key
    object: ObjectName
    owner: str | None = None
    associations: list[str] = []
    fields: dict[str, Any] = {}
    modified_at: dict[str, datetime] = {}


class CrmSpec(_Strict):
    users: list[UserSpec] = Field(min_length=1)
    custom_fields: list[CustomFieldSpec] = []
    records: list[RecordSpec] = []


class TogglesSpec(_Strict):
    allow_create: bool = False
    allow_stage_change: bool = False
    allow_update_closed: bool = False
    allow_clear_values: bool = False
    allow_create_associations: bool = False


class ReviewPolicySpec(_Strict):
    default: ReviewModeName = "review"
    fields: dict[str, ReviewModeName] = {}


class PolicySpec(_Strict):
    objects: dict[ObjectName, Scope] = {}
    read_fields: dict[ObjectName, list[str]] = {}
    write_fields: dict[ObjectName, list[str]] = {}
    toggles: TogglesSpec = TogglesSpec()
    review: ReviewModeName | ReviewPolicySpec | None = None
    dry_run: bool = False
    force_workspace_connection_for_chat: bool = False


class ConnectionsSpec(_Strict):
    workspace: str
    users: dict[str, str] = {}


class TriggerSpec(_Strict):
    external_attendees: bool = True
    title_contains: str | None = None
    min_duration_s: int = Field(default=0, ge=0)
    owner_team: str | None = None


class FieldRuleSpec(_Strict):
    field: str = Field(min_length=1, max_length=128)
    instruction: str = Field(min_length=1)
    write_mode: Literal["overwrite", "append", "append_if_different", "fill_empty"] = "overwrite"
    read: list[str] = []
    review: ReviewModeName | None = None


class WorkflowSpec(_Strict):
    key: Key
    object: ObjectName = "deal"
    trigger: TriggerSpec = TriggerSpec()
    no_match: Literal["skip", "create"] = "skip"
    dry_run: bool = False
    fields: list[FieldRuleSpec] = Field(min_length=1)


class AttendeeSpec(_Strict):
    name: str = ""
    email: str | None = None
    internal: bool = False


class TurnSpec(_Strict):
    speaker: str = Field(min_length=1)
    start: float = Field(ge=0)
    text: str


class CallSpec(_Strict):
    key: Key
    external_id: str = Field(min_length=1, max_length=255)
    title: str = ""
    started_at: datetime
    duration_s: int = Field(default=0, ge=0)
    owner: str | None = None
    attendees: list[AttendeeSpec] = []
    transcript: list[TurnSpec] = []


class ModelSpec(_Strict):
    kind: Literal["rules", "scripted"] = "rules"
    # {"<call>/<workflow>": {"extract": <answer>, "choose_record": <answer>}}; an answer is
    # any JSON (sent as its JSON text) or a string (sent verbatim: a non-JSON answer).
    answers: dict[str, dict[Literal["extract", "choose_record"], Any]] = {}


class CrmEditSpec(_Strict):
    after_call: str
    record: str
    by: str
    fields: dict[str, Any] = {}
    delete: bool = False  # the person deletes the record instead

    @model_validator(mode="after")
    def _does_something(self) -> "CrmEditSpec":
        if not self.fields and not self.delete:
            raise ValueError('an edit needs "fields" or "delete": true')
        return self


class EditDecision(_Strict):
    edit: dict[str, Any] = Field(min_length=1)


class ChooseDecision(_Strict):
    choose: str


class ReviewSpec(_Strict):
    call: str
    workflow: str
    decision: Literal["approve", "reject"] | EditDecision | ChooseDecision
    field: str | None = None
    reason: str = ""
    after_call: str | None = None


class ExpectedProposal(_Strict):
    call: str
    workflow: str
    field: str
    # Per CRM where the CRMs differ on purpose (field-level security exists on
    # Salesforce only): the two runs are then not required to agree on this field.
    status: ProposalStatusName | dict[Provider, ProposalStatusName] | None = None
    new: Any = None


class ExpectedDenial(_Strict):
    field: str
    record: str | None = None


class ExpectSpec(_Strict):
    records: dict[str, dict[str, Any]] = {}
    unchanged: list[str] = []
    outcomes: dict[str, Outcome | dict[Provider, Outcome]] = {}
    proposals: list[ExpectedProposal] = []
    denied: list[ExpectedDenial] = []
    denied_min: int | None = Field(default=None, ge=0)
    writes_max: int | None = Field(default=None, ge=0)


class Scenario(_Strict):
    name: str = Field(min_length=1, max_length=120)
    provider: Literal["hubspot", "salesforce", "both"] = "both"
    now: datetime | None = None  # informational: the sandbox runs on the real clock
    crm: CrmSpec
    policy: PolicySpec = PolicySpec()
    connections: ConnectionsSpec | None = None
    workflows: list[WorkflowSpec] = Field(min_length=1)
    calls: list[CallSpec] = Field(min_length=1)
    model: ModelSpec = ModelSpec()
    crm_edits: list[CrmEditSpec] = []
    review: list[ReviewSpec] = []
    expect: ExpectSpec = ExpectSpec()
    source_note: str | None = Field(default=None, alias="_source")
    comment: str | None = Field(default=None, alias="_comment")

    @field_validator("now")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2026-11-21T16:00:00Z")
        return value

    def workspace_user(self) -> str:
        return self.connections.workspace if self.connections else self.crm.users[0].key

    def providers(self, override: str | None = None) -> list[str]:
        chosen = override or self.provider
        return ["hubspot", "salesforce"] if chosen == "both" else [chosen]


# --- values given per CRM --------------------------------------------------------------------


def per_crm(value: Any, provider: str) -> Any:
    """``{"hubspot": x, "salesforce": y}`` -> the provider's value, anywhere in ``value``."""
    if isinstance(value, dict):
        if value and set(value) <= {"hubspot", "salesforce"}:
            return per_crm(value.get(provider), provider)
        return {k: per_crm(v, provider) for k, v in value.items()}
    if isinstance(value, list):
        return [per_crm(item, provider) for item in value]
    return value
