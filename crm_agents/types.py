"""Typed values passed between the pipeline's steps (match, read, extract, plan, gate)."""

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

from integrations.crm.types import PropertySpec

if TYPE_CHECKING:  # prompts imports these types; at run time the plan is just an attribute
    from crm_agents.prompts.schema_limits import RequestPlan


@dataclass(frozen=True)
class Attendee:
    name: str
    email: str
    internal: bool


@dataclass(frozen=True)
class TranscriptTurn:
    speaker: str
    start: float
    text: str


@dataclass(frozen=True)
class CallView:
    """What the pipeline needs of a call, whether stored (Call) or pasted for a test."""

    external_id: str
    title: str
    started_at: datetime
    duration_s: int
    owner_email: str
    attendees: tuple[Attendee, ...]
    transcript: tuple[TranscriptTurn, ...]

    @property
    def call_date(self) -> date:
        return self.started_at.date()

    def external_emails(self) -> list[str]:
        return sorted(
            {a.email.strip().lower() for a in self.attendees if not a.internal and a.email}
        )


@dataclass(frozen=True)
class CurrentValue:
    """A property's value as the CRM held it when the pipeline read it."""

    value: str | None
    modified_at: datetime | None


@dataclass(frozen=True)
class FieldAsk:
    """One field the model is asked for."""

    name: str  # canonical, as the prompt names it (amount, close_date, pain_points)
    native: str  # the CRM's property name (Amount, closedate, Pain_Points__c)
    spec: PropertySpec
    instruction: str
    write_mode: str
    current: CurrentValue


@dataclass(frozen=True)
class ContextField:
    """A read-before-write dependency: shown to the model, never written."""

    name: str
    label: str
    current: CurrentValue


@dataclass(frozen=True)
class ExtractionInput:
    call: CallView
    object_type: str
    record_name: str
    fields: tuple[FieldAsk, ...]
    context: tuple[ContextField, ...] = ()
    policy_section: str = ""


@dataclass(frozen=True)
class ProposedValue:
    """A value the model proposed that passed the answer contract (field asked for,
    verbatim evidence); coercion and policy come later, in plan and gate."""

    field: str
    native: str
    raw_value: object
    evidence: str
    evidence_start: float | None
    confidence: float


@dataclass(frozen=True)
class Dropped:
    """Something in the model's answer that was refused, and why (audited)."""

    field: str | None
    reason: str
    raw: object = None


@dataclass(frozen=True)
class ModelExchange:
    """One model call: what was asked, what came back, what it cost."""

    prompt: str
    prompt_hash: str
    prompt_version: str
    model: str
    raw_answer: str
    cached: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    elapsed_ms: float = 0.0


@dataclass(frozen=True)
class Extraction:
    # The run's record of the model's work: the one call, or every call combined.
    exchange: ModelExchange
    values: tuple[ProposedValue, ...] = ()
    dropped: tuple[Dropped, ...] = ()
    # Each model call, and how the fields were split among them (prompts/schema_limits.py).
    calls: tuple[ModelExchange, ...] = ()
    plan: "RequestPlan | None" = None


@dataclass(frozen=True)
class Candidate:
    """A record the call may be about, with why and how sure."""

    id: str
    name: str
    score: float
    reasons: tuple[str, ...] = ()
    properties: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class TieBreak:
    exchange: ModelExchange
    record_id: str | None
    reason: str
