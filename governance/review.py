"""Review decisions: approve, reject (with a reason) or edit, per set or per field.

Each decision is one transaction with its audit event; approved proposals go to the apply
task once the transaction commits. Decided proposals are final: deciding again is an error
that says so, not a silent second write.
"""

from django.db import transaction
from django.utils import timezone

from audit.services import record_event
from governance import owed
from governance.review_models import ChangeProposal, ChangeSet, ProposalStatus, SetStatus
from integrations.crm.errors import CrmError


class ReviewError(ValueError):
    """A decision that cannot be taken; the message says why."""


def _audit(change_set: ChangeSet, action: str, actor, *, field: str = "", **fields) -> None:
    record_event(
        change_set.workspace,
        action=action,
        outcome="ok",
        actor_kind="user",
        actor_user=actor,
        crm=change_set.provider,
        object_type=change_set.object_type,
        record_id=change_set.record_id,
        field=field,
        **change_set.audit_labels(),
        **fields,
    )


def _locked(change_set: ChangeSet) -> ChangeSet:
    change_set = ChangeSet.objects.select_for_update().get(pk=change_set.pk)
    if change_set.is_test:
        raise ReviewError("this is a TEST change set: it is never applied")
    if change_set.status == SetStatus.NEEDS_CHOICE:
        raise ReviewError("choose the record first: this change set has no record yet")
    return change_set


def _after_decision(change_set: ChangeSet) -> None:
    from crm_agents import tasks
    from crm_agents.records import refresh_run_status, refresh_set_status

    refresh_set_status(change_set)
    refresh_run_status(change_set.run_id)
    approved = change_set.proposals.filter(status=ProposalStatus.APPROVED)
    if approved.exists():
        # Owed from this commit on; the message only says "now" (governance/owed.py).
        approved.filter(due_at__isnull=True).update(due_at=timezone.now())
        owed.send_on_commit(tasks.apply_change_set, change_set.pk)


@transaction.atomic
def do_decide_proposal(
    proposal: ChangeProposal,
    decision: str,
    *,
    actor,
    reason: str = "",
    value: str | None = None,
) -> ChangeProposal:
    """``decision`` is approve, reject (needs ``reason``) or edit (approve ``value``)."""
    change_set = _locked(proposal.change_set)
    proposal = ChangeProposal.objects.select_for_update().get(pk=proposal.pk)
    if proposal.status != ProposalStatus.PENDING:
        raise ReviewError(
            f"{proposal.field} was already decided ({proposal.get_status_display().lower()})"
        )
    now = timezone.now()
    if decision == "reject":
        if not reason.strip():
            raise ReviewError("say why you reject this change: a reason is required")
        proposal.status, proposal.status_reason = ProposalStatus.REJECTED, reason.strip()
    elif decision in ("approve", "edit"):
        if decision == "edit":
            proposal.edited_value = _coerced_edit(proposal, change_set, value)
        proposal.status = ProposalStatus.APPROVED
        proposal.status_reason = "edited and approved" if decision == "edit" else "approved"
    else:
        raise ReviewError(f"unknown decision {decision!r}: use approve, reject or edit")
    proposal.decided_by, proposal.decided_at = actor, now
    proposal.save(
        update_fields=["status", "status_reason", "edited_value", "decided_by", "decided_at"]
    )
    _audit(
        change_set,
        f"review.{decision}",
        actor,
        field=proposal.native_field,
        before=proposal.current_value,
        after=proposal.value_to_write,
        reason=proposal.status_reason,
    )
    if not change_set.decided_by_id:
        ChangeSet.objects.filter(pk=change_set.pk).update(decided_by=actor, decided_at=now)
    _after_decision(change_set)
    return proposal


def _coerced_edit(proposal: ChangeProposal, change_set: ChangeSet, value) -> str | None:
    from crm_agents.coerce import CoercionError, coerce_value
    from crm_agents.crm_meta import property_specs
    from integrations.models import Connection

    connection = (
        change_set.run.connection
        if change_set.run and change_set.run.connection_id
        else Connection.objects.filter(
            workspace=change_set.workspace, provider=change_set.provider, scope="workspace"
        ).first()
    )
    if connection is None:
        raise ReviewError(
            f"this workspace has no {change_set.get_provider_display()} connection, so an edited "
            "value cannot be checked against the CRM's property: reconnect it, or approve or "
            "reject the proposed value"
        )
    try:
        spec = property_specs(connection, change_set.object_type).get(proposal.native_field)
    except CrmError as exc:
        raise ReviewError(
            f"could not read the CRM's property to check the edited value: {exc}; try again"
        ) from exc
    if spec is None:
        raise ReviewError(f"the CRM no longer has the property {proposal.native_field}")
    call_date = (change_set.call_started_at or timezone.now()).date()
    try:
        coerced = coerce_value(value, spec, call_date=call_date)
    except CoercionError as exc:
        raise ReviewError(str(exc)) from exc
    if coerced is None:
        raise ReviewError("an edited value cannot be empty; reject the change instead")
    return coerced


@transaction.atomic
def do_approve_change_set(change_set: ChangeSet, *, actor) -> ChangeSet:
    change_set = _locked(change_set)
    pending = list(change_set.proposals.filter(status=ProposalStatus.PENDING))
    if not pending:
        raise ReviewError("nothing in this change set is waiting for review")
    now = timezone.now()
    for proposal in pending:
        proposal.status, proposal.status_reason = ProposalStatus.APPROVED, "approved"
        proposal.decided_by, proposal.decided_at = actor, now
        proposal.save(update_fields=["status", "status_reason", "decided_by", "decided_at"])
    ChangeSet.objects.filter(pk=change_set.pk).update(decided_by=actor, decided_at=now)
    _audit(change_set, "review.approve_set", actor, context={"fields": [p.field for p in pending]})
    _after_decision(change_set)
    return change_set


@transaction.atomic
def do_reject_change_set(change_set: ChangeSet, *, actor, reason: str) -> ChangeSet:
    if not reason.strip():
        raise ReviewError("say why you reject these changes: a reason is required")
    change_set = _locked(change_set)
    pending = list(change_set.proposals.filter(status=ProposalStatus.PENDING))
    if not pending:
        raise ReviewError("nothing in this change set is waiting for review")
    now = timezone.now()
    for proposal in pending:
        proposal.status, proposal.status_reason = ProposalStatus.REJECTED, reason.strip()
        proposal.decided_by, proposal.decided_at = actor, now
        proposal.save(update_fields=["status", "status_reason", "decided_by", "decided_at"])
    ChangeSet.objects.filter(pk=change_set.pk).update(
        decided_by=actor, decided_at=now, reject_reason=reason.strip()
    )
    _audit(change_set, "review.reject_set", actor, reason=reason.strip())
    _after_decision(change_set)
    return change_set


def _locked_conflict(proposal: ChangeProposal) -> tuple[ChangeSet, ChangeProposal]:
    change_set = _locked(proposal.change_set)
    proposal = ChangeProposal.objects.select_for_update().get(pk=proposal.pk)
    if proposal.status != ProposalStatus.CONFLICT:
        raise ReviewError(
            f"{proposal.field} is not a conflict ({proposal.get_status_display().lower()})"
        )
    return change_set, proposal


def _after_conflict_decision(change_set: ChangeSet) -> None:
    from crm_agents.records import refresh_run_status, refresh_set_status

    refresh_set_status(change_set)
    refresh_run_status(change_set.run_id)


@transaction.atomic
def do_repropose_conflict(proposal: ChangeProposal, *, actor) -> ChangeProposal:
    """Propose the conflicting value again, now against the CRM's newer value: a new
    pending proposal in the same set supersedes the conflict one, and waits for review."""
    change_set, proposal = _locked_conflict(proposal)
    now = timezone.now()
    # What was meant to be written (an approved edit included) is what is proposed again.
    value = proposal.value_to_write
    fresh = ChangeProposal.objects.create(
        workspace_id=proposal.workspace_id,
        change_set=change_set,
        field=proposal.field,
        native_field=proposal.native_field,
        label=proposal.label,
        write_mode=proposal.write_mode,
        review_mode=proposal.review_mode,
        raw_value=proposal.raw_value,
        proposed_value=value,
        current_value=proposal.crm_value_after,
        evidence=proposal.evidence,
        evidence_start=proposal.evidence_start,
        confidence=proposal.confidence,
        status=ProposalStatus.PENDING,
        status_reason="proposed again after a conflict with a newer CRM value",
    )
    proposal.status = ProposalStatus.SUPERSEDED
    proposal.status_reason = "proposed again after the conflict"
    proposal.superseded_by = fresh
    proposal.decided_by, proposal.decided_at = actor, now
    proposal.save(
        update_fields=["status", "status_reason", "superseded_by", "decided_by", "decided_at"]
    )
    _audit(
        change_set,
        "review.repropose",
        actor,
        field=proposal.native_field,
        before=fresh.current_value,
        after=value,
        reason=proposal.status_reason,
        context={"conflict": proposal.pk, "proposal": fresh.pk},
    )
    _after_conflict_decision(change_set)
    return fresh


@transaction.atomic
def do_dismiss_conflict(proposal: ChangeProposal, *, actor) -> ChangeProposal:
    """Keep the CRM's newer value: the conflict proposal is rejected for good."""
    change_set, proposal = _locked_conflict(proposal)
    proposal.status, proposal.status_reason = ProposalStatus.REJECTED, "dismissed after a conflict"
    proposal.decided_by, proposal.decided_at = actor, timezone.now()
    proposal.save(update_fields=["status", "status_reason", "decided_by", "decided_at"])
    _audit(
        change_set,
        "review.dismiss_conflict",
        actor,
        field=proposal.native_field,
        before=proposal.current_value,
        after=proposal.value_to_write,
        reason=proposal.status_reason,
        context={"proposal": proposal.pk, "crm_value": proposal.crm_value_after},
    )
    _after_conflict_decision(change_set)
    return proposal
