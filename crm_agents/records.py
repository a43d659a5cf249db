"""What a run leaves behind: its ChangeSet and proposals, merged with other pending
proposals for the same record, and the run's status derived from them."""

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from audit.services import record_event
from crm_agents.matching import MatchResult
from crm_agents.models import AgentRun, RunStatus
from crm_agents.types import Candidate, Dropped
from governance import owed
from governance.review_models import (
    ChangeProposal,
    ChangeSet,
    ProposalStatus,
    SetOperation,
    SetStatus,
)
from integrations.crm.types import ObjectType, Record

WRITABLE = (ProposalStatus.PENDING, ProposalStatus.APPROVED)


def forced_match(matcher, object_type: ObjectType, record_id: str, read: list[str]) -> MatchResult:
    """The record a human chose for this run: read it like a matched one."""
    name = matcher.native(object_type, "name") if object_type != ObjectType.CONTACT else None
    extra = [name] if name else []
    if object_type == ObjectType.DEAL:
        extra.append(matcher.native(object_type, "stage"))
    found = matcher.guard.get_many(object_type, [record_id], [*extra, *read])
    if not found:
        return MatchResult(reason=f"the chosen record {record_id} is gone or no longer visible")
    record = found[0]
    label = (record.properties.get(name) if name else None) or record.id
    winner = Candidate(record.id, label, 1.0, ("chosen by a reviewer",))
    return MatchResult(
        candidates=(winner,),
        winner=winner,
        confidence=1.0,
        reason="chosen by a reviewer",
        records={record.id: record},
    )


def propose_create(steps, asked, result: MatchResult) -> tuple[str, str]:
    """No record matched and the workflow creates one: the fields are extracted against an
    empty record and proposed as a create (which the guard allows only with the toggle)."""
    if not steps.policy.allow_create:
        return RunStatus.NO_MATCH, f"{result.reason}; the policy does not allow creating records"
    run = steps.run_row
    run.record_name = f"New {steps.object_type} from {steps.call.title or 'the call'}"[:500]
    empty = Record(object_type=steps.object_type, id="", properties={})
    steps._match_result = result
    return steps._extract_and_plan(asked, empty, creating=True)


def audit_dropped(steps, dropped: tuple[Dropped, ...]) -> None:
    for item in dropped:
        record_event(
            steps.workspace,
            action="model.answer.refused",
            outcome="denied",
            crm=steps.workflow.provider,
            object_type=str(steps.object_type),
            record_id=steps.run_row.record_id,
            field=(item.field or "")[:128],
            reason=item.reason,
            context={"raw": _short(item.raw)},
            workflow_label=steps.run_row.workflow_label,
            call_label=str(steps.call)[:200],
            run_label=f"run {steps.run_row.pk}",
        )


def _short(value: object) -> object:
    text = value if isinstance(value, str) else repr(value)
    return text[:500]


@transaction.atomic
def record_change_set(steps, record: Record, planned, dropped, *, creating: bool) -> ChangeSet:
    run: AgentRun = steps.run_row
    call = steps.call
    dry = run.is_test or steps.workflow.dry_run or steps.policy.dry_run
    change_set = ChangeSet.objects.create(
        workspace=run.workspace,
        run=run,
        provider=run.provider,
        object_type=steps.object_type,
        operation=SetOperation.CREATE if creating else SetOperation.UPDATE,
        record_id=record.id,
        record_name=run.record_name,
        call_title=call.title,
        call_started_at=call.started_at,
        workflow_label=run.workflow_label,
        owner_email=call.owner_email,
        is_test=run.is_test,
        status=SetStatus.PENDING_REVIEW,
        read_at=timezone.now(),
        record_modified_at=record.updated_at,
        create_associations=_associations_of(steps) if creating else {},
    )
    rows = []
    for item in planned:
        status, reason = item.status, item.reason
        if dry and status in WRITABLE:
            status = ProposalStatus.DRY_RUN
            reason = "TEST: recorded, not sent" if run.is_test else "dry run: recorded, not sent"
        rows.append(
            ChangeProposal(
                workspace=run.workspace,
                change_set=change_set,
                field=item.ask.name,
                native_field=item.ask.native,
                label=item.ask.spec.label,
                write_mode=item.ask.write_mode,
                review_mode=item.review_mode,
                raw_value=_json_value(item.proposed.raw_value),
                proposed_value=item.value,
                current_value=item.ask.current.value,
                current_modified_at=item.ask.current.modified_at,
                evidence=item.proposed.evidence,
                evidence_start=item.proposed.evidence_start,
                confidence=item.proposed.confidence,
                status=status,
                status_reason=reason,
            )
        )
    for item in dropped:
        rows.append(
            ChangeProposal(
                workspace=run.workspace,
                change_set=change_set,
                field=(item.field or "")[:128],
                native_field="",
                raw_value=_json_value(item.raw),
                status=ProposalStatus.DROPPED,
                status_reason=item.reason,
            )
        )
    ChangeProposal.objects.bulk_create(rows)
    if not creating and not dry:
        supersede_older(change_set)
    refresh_set_status(change_set)
    return change_set


def _associations_of(steps) -> dict[str, list[str]]:
    result = getattr(steps, "_match_result", None)
    if result is None:
        return {}
    links = {}
    if result.company_ids and steps.object_type != ObjectType.COMPANY:
        links[str(ObjectType.COMPANY)] = list(result.company_ids[:1])
    if result.contact_ids and steps.object_type == ObjectType.DEAL:
        links[str(ObjectType.CONTACT)] = list(result.contact_ids)
    return links


def creation_associations(change_set: ChangeSet, guard) -> dict[ObjectType, list[str]] | None:
    """Link a created record to the call's company and contacts, when the policy allows
    associations; without that toggle the record is created alone rather than refused."""
    if not guard.policy.allow_create_associations or not change_set.create_associations:
        return None
    return {ObjectType(kind): ids for kind, ids in change_set.create_associations.items()}


def _json_value(value: object) -> object:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, dict)):
        return value
    return repr(value)


def supersede_older(change_set: ChangeSet) -> None:
    """Newest call wins: of two waiting proposals for the same record and field, the one
    from the older call is superseded (and says by which)."""
    mine = change_set.proposals.filter(status__in=[ProposalStatus.PENDING])
    for proposal in mine:
        others = (
            ChangeProposal.objects.select_for_update()
            .filter(
                workspace=change_set.workspace,
                change_set__provider=change_set.provider,
                change_set__record_id=change_set.record_id,
                change_set__is_test=False,
                native_field=proposal.native_field,
                status=ProposalStatus.PENDING,
            )
            .exclude(change_set=change_set)
            .select_related("change_set")
        )
        for other in others:
            older = (other.change_set.call_started_at, other.pk) < (
                change_set.call_started_at,
                proposal.pk,
            )
            loser, winner = (other, proposal) if older else (proposal, other)
            loser.status = ProposalStatus.SUPERSEDED
            loser.superseded_by = winner
            loser.status_reason = (
                f"superseded by the proposal from the call {winner.change_set.call_title!r}"
            )
            loser.save(update_fields=["status", "superseded_by", "status_reason"])
            if loser.change_set_id != change_set.pk:
                refresh_set_status(loser.change_set)
                # The older call's run is finished: its status follows its set now.
                refresh_run_status(loser.change_set.run_id)
            if loser is proposal:
                break


def refresh_set_status(change_set: ChangeSet) -> ChangeSet:
    """The set's status, lowest confidence and field count, from its proposals."""
    if change_set.status in (SetStatus.NEEDS_CHOICE, SetStatus.CHOSEN, SetStatus.REJECTED):
        return change_set
    statuses = list(change_set.proposals.values_list("status", "confidence"))
    live = [s for s, _ in statuses if s not in (ProposalStatus.DROPPED, ProposalStatus.DENIED)]
    confidences = [c for s, c in statuses if c is not None and s in WRITABLE]
    present = set(live)
    if ProposalStatus.PENDING in present:
        status = SetStatus.PENDING_REVIEW
    elif present & {ProposalStatus.APPROVED, ProposalStatus.APPLYING}:
        status = SetStatus.APPROVED
    elif ProposalStatus.CONFLICT in present:
        status = SetStatus.PARTIAL if ProposalStatus.APPLIED in present else SetStatus.CONFLICT
    elif present & {ProposalStatus.APPLIED, ProposalStatus.ROLLING_BACK}:
        status = SetStatus.PARTIAL if ProposalStatus.FAILED in present else SetStatus.APPLIED
    elif ProposalStatus.ROLLED_BACK in present:
        status = SetStatus.ROLLED_BACK
    elif ProposalStatus.FAILED in present:
        status = SetStatus.FAILED
    elif ProposalStatus.DRY_RUN in present:
        status = SetStatus.DRY_RUN
    elif ProposalStatus.REJECTED in present:
        status = SetStatus.REJECTED
    elif ProposalStatus.SUPERSEDED in present:
        status = SetStatus.SUPERSEDED
    else:
        status = SetStatus.NOTHING
    change_set.status = status
    change_set.field_count = len([s for s in live if s not in (ProposalStatus.SUPERSEDED,)])
    change_set.lowest_confidence = min(confidences) if confidences else None
    # When the set's fields reached the CRM: the latest write of its applied fields.
    change_set.applied_at = change_set.proposals.filter(applied_at__isnull=False).aggregate(
        last=Max("applied_at")
    )["last"]
    ChangeSet.objects.filter(pk=change_set.pk).update(
        status=status,
        field_count=change_set.field_count,
        lowest_confidence=change_set.lowest_confidence,
        applied_at=change_set.applied_at,
    )
    return change_set


RUN_STATUS_OF_SET = {
    SetStatus.NEEDS_CHOICE: RunStatus.AMBIGUOUS,
    SetStatus.CHOSEN: RunStatus.QUEUED,
    SetStatus.PENDING_REVIEW: RunStatus.PENDING_REVIEW,
    SetStatus.APPROVED: RunStatus.APPLYING,
    SetStatus.APPLIED: RunStatus.APPLIED,
    SetStatus.PARTIAL: RunStatus.CONFLICT,
    SetStatus.CONFLICT: RunStatus.CONFLICT,
    SetStatus.REJECTED: RunStatus.NO_CHANGES,
    SetStatus.DRY_RUN: RunStatus.DRY_RUN,
    SetStatus.FAILED: RunStatus.FAILED,
    SetStatus.SUPERSEDED: RunStatus.SUPERSEDED,
    SetStatus.NOTHING: RunStatus.NO_CHANGES,
    SetStatus.ROLLED_BACK: RunStatus.ROLLED_BACK,
}


def settle(steps, change_set: ChangeSet) -> tuple[str, str]:
    """Hand approved proposals to the apply step, then say where the run stands."""
    hand_to_apply(change_set)
    change_set.refresh_from_db(fields=["status"])
    return run_status_for(change_set)


def hand_to_apply(change_set: ChangeSet) -> None:
    """Approved proposals are written now (once the transaction commits), even while
    other fields of the same record wait for review."""
    from crm_agents import tasks

    approved = change_set.proposals.filter(status=ProposalStatus.APPROVED)
    if approved.exists():
        approved.filter(due_at__isnull=True).update(due_at=timezone.now())
        owed.send_on_commit(tasks.apply_change_set, change_set.pk)


def run_status_for(change_set: ChangeSet) -> tuple[str, str]:
    status = RUN_STATUS_OF_SET[SetStatus(change_set.status)]
    reasons = {
        RunStatus.APPLIED: "every approved change was written",
        RunStatus.PENDING_REVIEW: "changes wait for review",
        RunStatus.APPLYING: "approved changes are being written",
        RunStatus.CONFLICT: "the CRM holds a newer value for some fields: a human decides",
        RunStatus.DRY_RUN: "dry run: what would be written is recorded, nothing was sent",
        RunStatus.NO_CHANGES: "nothing to change",
        RunStatus.FAILED: "the CRM rejected the changes",
        RunStatus.AMBIGUOUS: "several records could be meant: a human chooses",
        RunStatus.QUEUED: "a human chose the record: the run goes on with it",
        RunStatus.ROLLED_BACK: "the changes were written, then rolled back",
        RunStatus.SUPERSEDED: "the changes it proposed were superseded by a newer call's",
    }
    return status, reasons.get(status, "")


def refresh_run_status(run_id: int | None) -> None:
    """After an apply or a review decision, the run's status follows its change set.
    Both the run's end and the apply's end call this, so whichever comes last leaves the
    right status."""
    if run_id is None:
        return
    # A question of record is not the run's outcome: the run says why it waits, and the
    # answer queues it again (crm_agents/questions.py).
    change_set = (
        ChangeSet.objects.filter(run_id=run_id)
        .exclude(status__in=[SetStatus.NEEDS_CHOICE, SetStatus.CHOSEN])
        .order_by("-pk")
        .first()
    )
    if change_set is None:
        return
    status, reason = run_status_for(change_set)
    AgentRun.objects.filter(pk=run_id).exclude(
        status__in=[RunStatus.QUEUED, RunStatus.RUNNING]
    ).update(status=status, status_reason=reason)
