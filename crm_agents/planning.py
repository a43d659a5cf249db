"""Plan and gate: from the model's proposed values to the proposals a human or the apply
step acts on.

Each value is coerced to its property's type (text without the transcript's markup or
control characters), run through the field's write mode against the value read from the
CRM, and dropped when it would change nothing or not fit the field; then the guard vets
what remains. Every value ends up somewhere: a proposal to review or apply, or a dropped or
denied one with its reason, so "why did (or didn't) this field change?" has an answer.
"""

from dataclasses import dataclass

from crm_agents.coerce import CoercionError, apply_write_mode, coerce_value
from crm_agents.models import FieldRule
from crm_agents.types import FieldAsk, ProposedValue
from governance.guard import Guard
from governance.models import Policy, ReviewMode
from governance.review_models import ProposalStatus
from integrations.crm.types import ObjectType


@dataclass(frozen=True)
class PlannedProposal:
    ask: FieldAsk
    proposed: ProposedValue
    value: str | None
    status: ProposalStatus
    reason: str = ""
    review_mode: str = ""


def plan(
    values: tuple[ProposedValue, ...],
    asks: dict[str, FieldAsk],
    rules: dict[str, FieldRule],
    *,
    guard: Guard,
    policy: Policy,
    object_type: ObjectType,
    record_id: str | None,
    current_stage: str | None,
    call_date,
    creating: bool = False,
) -> list[PlannedProposal]:
    planned: list[PlannedProposal] = []
    writable: list[tuple[FieldAsk, ProposedValue, str | None]] = []
    for proposed in values:
        ask = asks[proposed.field]
        try:
            value = coerce_value(
                proposed.raw_value, ask.spec, call_date=call_date, max_length=ask.spec.max_length
            )
        except CoercionError as exc:
            planned.append(PlannedProposal(ask, proposed, None, ProposalStatus.DROPPED, str(exc)))
            continue
        if value is None:
            continue  # nothing said: absence never clears a value
        outcome = apply_write_mode(
            ask.write_mode, ask.current.value, value, ask.spec, max_length=ask.spec.max_length
        )
        if outcome.skip:
            planned.append(
                PlannedProposal(ask, proposed, value, ProposalStatus.DROPPED, outcome.skip)
            )
            continue
        writable.append((ask, proposed, outcome.value))
    if not writable:
        return planned
    refusals = guard.vet_update(
        object_type,
        record_id,
        {ask.native: value for ask, _, value in writable},
        current_stage=current_stage,
        creating=creating,
    )
    refused = {refusal.field: refusal.reason for refusal in refusals}
    for ask, proposed, value in writable:
        if ask.native in refused:
            planned.append(
                PlannedProposal(ask, proposed, value, ProposalStatus.DENIED, refused[ask.native])
            )
            continue
        rule = rules[ask.name]
        mode = rule.review_override or policy.review_mode_for(ask.name)
        status = ProposalStatus.PENDING if mode == ReviewMode.REVIEW else ProposalStatus.APPROVED
        reason = "" if mode == ReviewMode.REVIEW else "applied without review: the policy allows it"
        planned.append(PlannedProposal(ask, proposed, value, status, reason, str(mode)))
    return planned
