"""Apply approved proposals to the CRM: exactly once, and never over a newer value.

Claiming: approved proposals move to ``applying`` in one conditional update, so of two
workers (a retry, a duplicate task) only one gets each proposal. The claim names its task
and lasts WORK_LEASE_SECONDS; a claim whose lease ran out, or whose own task is delivered
again (so its first worker died), is settled from the CRM: if it holds the value we meant
to write, the proposal was applied, otherwise it is approved again.

Writing: one conditional request for all claimed fields of the record, on the condition
that nothing changed since the pipeline read it (Salesforce: If-Unmodified-Since with the
record's LastModifiedDate at that read; HubSpot: the adapter compares the values read).
When the CRM answers "changed", one fresh read says which fields: those become conflicts
with the CRM's newer value, and the others are written in one more conditional request.

Lost answers: a write whose answer never came (a timeout, a dropped connection, a 5xx)
may have happened. Its proposals wait "in doubt" with a back-off; the next attempt reads
the CRM first, and a field that holds exactly what was sent is recorded as written.
"""

from datetime import timedelta

from django.db import models, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from audit.models import ActorKind
from audit.services import record_event
from governance import owed
from governance.change_set_guard import NoGuard, change_set_guard
from governance.guard import Guard, RefusalCode, WriteOutcome, WriteStatus
from governance.review_models import ChangeProposal, ChangeSet, ProposalStatus, SetOperation
from integrations.crm import errors
from integrations.crm.types import ObjectType, Precondition


class ApplyLater(Exception):
    """A transient CRM problem: the claimed proposals wait; retry after ``delay`` seconds."""

    def __init__(self, cause: errors.CrmError, delay: float | None = None) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.delay = delay


# Claims per task: the first, and approvals that land while it writes.
MAX_ROUNDS = 3


def _claim(change_set: ChangeSet, owner: str) -> list[ChangeProposal]:
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            ChangeProposal.objects.select_for_update(skip_locked=True)
            .filter(change_set=change_set, status=ProposalStatus.APPROVED)
            .values_list("pk", flat=True)
        )
        claimed = ChangeProposal.objects.filter(pk__in=ids, status=ProposalStatus.APPROVED).update(
            status=ProposalStatus.APPLYING, claimed_at=now, claim_owner=owner, due_at=None
        )
    if not claimed:
        return []
    return list(
        ChangeProposal.objects.filter(
            pk__in=ids, status=ProposalStatus.APPLYING, claimed_at=now
        ).order_by("pk")
    )


def _wait(
    change_set: ChangeSet, proposals: list[ChangeProposal], cause: errors.CrmError
) -> float | None:
    """The CRM failed in a way that may pass: the proposals are approved again, due after
    a back-off (and in doubt when the write may have reached the CRM), or failed with the
    reason once the failures have lasted too long. The seconds to wait, or None."""
    now = timezone.now()
    doubtful = isinstance(cause, errors.Transient)
    since = min((p.waiting_since for p in proposals if p.waiting_since), default=None)
    if owed.outage_over(since, now):
        reason = owed.gave_up_reason("the CRM", cause, since)
        for proposal in proposals:
            _finish(proposal, ProposalStatus.FAILED, reason, claimed_at=None, claim_owner="")
            _audit_gave_up(change_set, proposal, reason)
        return None
    delay = owed.backoff(since, getattr(cause, "retry_after", None), now)
    due = now + timedelta(seconds=delay)
    ChangeProposal.objects.filter(
        pk__in=[p.pk for p in proposals], status=ProposalStatus.APPLYING
    ).update(
        status=ProposalStatus.APPROVED,
        claimed_at=None,
        claim_owner="",
        due_at=due,
        waiting_since=Coalesce(F("waiting_since"), now),
        in_doubt_since=Coalesce(F("in_doubt_since"), now) if doubtful else F("in_doubt_since"),
        status_reason=owed.waiting_reason("the CRM", cause, due),
    )
    return delay


def _audit_gave_up(change_set: ChangeSet, proposal: ChangeProposal, reason: str) -> None:
    record_event(
        change_set.workspace,
        action="apply.gave_up",
        outcome="failed",
        actor_kind=ActorKind.SYSTEM,
        crm=change_set.provider,
        object_type=change_set.object_type,
        record_id=change_set.record_id,
        field=proposal.native_field,
        after=proposal.value_to_write,
        reason=reason,
        context={"proposal": proposal.pk},
        **change_set.audit_labels(),
    )


def _finish(proposal: ChangeProposal, status: str, reason: str = "", **fields) -> None:
    proposal.status = status
    proposal.status_reason = reason
    if status != ProposalStatus.APPROVED:
        fields = {"due_at": None, "waiting_since": None, "in_doubt_since": None, **fields}
    for name, value in fields.items():
        setattr(proposal, name, value)
    proposal.save(update_fields=["status", "status_reason", *fields])


def apply_change_set(change_set_id: int, *, owner: str = "") -> ChangeSet | None:
    """Write the set's approved proposals; ``owner`` is the id of the task doing it."""
    from crm_agents.records import refresh_run_status, refresh_set_status

    change_set = (
        ChangeSet.objects.select_related("run", "decided_by", "requested_by")
        .filter(pk=change_set_id)
        .first()
    )
    if change_set is None or change_set.is_test:
        return change_set
    try:
        guard = change_set_guard(
            change_set,
            actor=change_set.decided_by or change_set.requested_by,
            actor_kind=ActorKind.USER if change_set.from_chat else ActorKind.AGENT,
            as_requester=change_set.from_chat,
        )
    except NoGuard as exc:
        _fail_all(change_set, exc.message, owner)
        return change_set
    run = change_set.run
    proposals: list[ChangeProposal] = []
    try:
        _recover_stale(change_set, guard, owner)
        proposals = _claim(change_set, owner)
        if proposals and change_set.operation == SetOperation.CREATE:
            if any(p.in_doubt_since for p in proposals):
                for proposal in proposals:  # never a second record
                    _finish(proposal, ProposalStatus.FAILED, _CREATE_IN_DOUBT)
                    _audit_write(change_set, guard, proposal, "unknown", _CREATE_IN_DOUBT)
            else:
                _create(change_set, guard, proposals)
        else:
            rounds = 0
            while proposals:
                still = _settle_in_doubt(change_set, guard, proposals)
                if still:
                    _write(change_set, guard, still)
                # A reviewer's approval that landed while this task wrote is written now,
                # not left for the reconciler: its own task may have found the set busy.
                rounds += 1
                proposals = _claim(change_set, owner) if rounds < MAX_ROUNDS else []
    except (errors.RateLimited, errors.Transient) as exc:
        waiting = list(
            ChangeProposal.objects.filter(
                pk__in=[p.pk for p in proposals], status=ProposalStatus.APPLYING
            )
        )
        delay = _wait(change_set, waiting, exc) if waiting else None
        refresh_set_status(change_set)
        refresh_run_status(run.pk if run else None)
        if delay is not None or not waiting:
            raise ApplyLater(exc, delay) from exc
        return change_set
    except errors.CrmError as exc:
        for proposal in proposals:
            if proposal.status == ProposalStatus.APPLYING:
                _finish(proposal, ProposalStatus.FAILED, f"the CRM refused: {exc}")
    refresh_set_status(change_set)
    refresh_run_status(run.pk if run else None)
    return change_set


def _fail_all(change_set: ChangeSet, reason: str, owner: str) -> None:
    from crm_agents.records import refresh_run_status, refresh_set_status

    proposals = _claim(change_set, owner)
    for proposal in proposals:
        _finish(proposal, ProposalStatus.FAILED, reason)
    refresh_set_status(change_set)
    refresh_run_status(change_set.run_id)


def _stage_expectation(change_set: ChangeSet, guard: Guard) -> dict[str, str | None]:
    """The deal's stage as the pipeline read it, so the write is conditional on it too and
    the guard's closed-deal check needs no extra read."""
    if change_set.object_type != ObjectType.DEAL:
        return {}
    stage = guard.profile.native_field(ObjectType.DEAL, "stage")
    if stage in (change_set.condition_values or {}):
        return {stage: change_set.condition_values[stage]}
    if change_set.run is None:
        return {}
    read = (change_set.run.current_values or {}).get(stage)
    return {stage: read.get("value")} if isinstance(read, dict) else {}


def _write(change_set: ChangeSet, guard: Guard, proposals: list[ChangeProposal]) -> None:
    object_type = ObjectType(change_set.object_type)
    expected = {
        **_stage_expectation(change_set, guard),
        **{p.native_field: p.current_value for p in proposals},
    }
    since = change_set.record_modified_at or change_set.read_at
    outcome = guard.update(
        object_type,
        change_set.record_id,
        {p.native_field: p.value_to_write for p in proposals},
        precondition=Precondition(unmodified_since=since, expected=expected),
    )
    if outcome.status != WriteStatus.CONFLICT:
        _settle(proposals, outcome)
        return
    # Which fields changed? One fresh read decides; the rest is written on its terms.
    names = list(dict.fromkeys([*expected, *(p.native_field for p in proposals)]))
    fresh = guard.get(object_type, change_set.record_id, names)
    from crm_agents.crm_meta import property_specs, same_as

    specs = property_specs(guard.connection, object_type)
    still: list[ChangeProposal] = []
    for proposal in proposals:
        now_value = fresh.properties.get(proposal.native_field)
        if same_as(specs, proposal.native_field, now_value, proposal.current_value):
            still.append(proposal)
        else:
            _conflict(change_set, guard, proposal, now_value)
    if not still:
        return
    stage = _stage_expectation(change_set, guard)
    if any(fresh.properties.get(name) != value for name, value in stage.items()):
        for proposal in still:
            _conflict(
                change_set,
                guard,
                proposal,
                fresh.properties.get(proposal.native_field),
                reason="the deal's stage changed since the changes were proposed",
            )
        return
    fresh_expected = {
        **stage,
        **{p.native_field: fresh.properties.get(p.native_field) for p in still},
    }
    outcome = guard.update(
        object_type,
        change_set.record_id,
        {p.native_field: p.value_to_write for p in still},
        precondition=Precondition(
            unmodified_since=fresh.updated_at or timezone.now(), expected=fresh_expected
        ),
    )
    if outcome.status == WriteStatus.CONFLICT:
        for proposal in still:
            _conflict(change_set, guard, proposal, None)
        return
    _settle(still, outcome)


@transaction.atomic
def _conflict(change_set, guard: Guard, proposal: ChangeProposal, crm_value, reason: str = ""):
    _finish(
        proposal,
        ProposalStatus.CONFLICT,
        reason or f"the CRM value changed since it was read (now {crm_value!r}); not overwritten",
        crm_value_after=crm_value,
    )
    record_event(
        change_set.workspace,
        action="change.conflict",
        outcome="denied",
        crm=change_set.provider,
        object_type=change_set.object_type,
        record_id=change_set.record_id,
        field=proposal.native_field,
        before=proposal.current_value,
        after=proposal.value_to_write,
        reason=proposal.status_reason,
        context={"crm_value": crm_value, "proposal": proposal.pk},
        **change_set.audit_labels(),
    )


def _settle(proposals: list[ChangeProposal], outcome: WriteOutcome) -> None:
    refused = {r.field: r for r in outcome.refusals}
    whole = next((r for r in outcome.refusals if r.field is None), None)
    now = timezone.now()
    for proposal in proposals:
        refusal = refused.get(proposal.native_field) or whole
        if outcome.status == WriteStatus.SENT and proposal.native_field in outcome.sent:
            _finish(
                proposal,
                ProposalStatus.APPLIED,
                "written to the CRM",
                applied_value=proposal.value_to_write,
                applied_at=now,
            )
        elif outcome.status == WriteStatus.DRY_RUN and proposal.native_field in outcome.sent:
            _finish(proposal, ProposalStatus.DRY_RUN, "dry run: captured, not sent")
        elif refusal is not None and refusal.code == RefusalCode.PAUSED:
            _finish(
                proposal,
                ProposalStatus.APPROVED,
                "CRM Steward is paused: this change is written when it resumes",
                claimed_at=None,
            )
        elif isinstance(outcome.error, errors.NotFound):
            _finish(
                proposal,
                ProposalStatus.FAILED,
                f"the record is gone or no longer visible to the connection: {refusal.reason}"
                if refusal
                else "the record is gone",
            )
        elif refusal is not None:
            _finish(proposal, ProposalStatus.DENIED, refusal.reason)
        else:
            error = outcome.error
            _finish(proposal, ProposalStatus.FAILED, f"the CRM refused the value: {error}")


def _create(change_set: ChangeSet, guard: Guard, proposals: list[ChangeProposal]) -> None:
    from crm_agents.records import creation_associations

    object_type = ObjectType(change_set.object_type)
    properties = {p.native_field: p.value_to_write for p in proposals}
    outcome = guard.create(
        object_type, properties, associations=creation_associations(change_set, guard)
    )
    if outcome.status == WriteStatus.SENT and outcome.result is not None:
        ChangeSet.objects.filter(pk=change_set.pk).update(record_id=outcome.result.id)
        if change_set.run_id:
            from crm_agents.models import AgentRun

            AgentRun.objects.filter(pk=change_set.run_id).update(record_id=outcome.result.id)
        change_set.record_id = outcome.result.id
    _settle(proposals, outcome)


def _recover_stale(change_set: ChangeSet, guard: Guard, owner: str) -> None:
    """Settle claims left by a worker that died mid-apply: its lease ran out, or this task
    is the same message delivered again. The CRM says what happened."""
    stale = list(
        ChangeProposal.objects.filter(change_set=change_set, status=ProposalStatus.APPLYING)
        .filter(
            models.Q(claimed_at__lt=owed.lease_cutoff())
            | models.Q(claim_owner=owner, claim_owner__gt="")
        )
        .order_by("pk")
    )
    if not stale:
        return
    if change_set.operation == SetOperation.CREATE or not change_set.record_id:
        for proposal in stale:
            _finish(proposal, ProposalStatus.FAILED, _CREATE_IN_DOUBT)
            _audit_write(change_set, guard, proposal, "unknown", _CREATE_IN_DOUBT)
        return
    held = _held_values(change_set, guard, stale)
    for proposal in stale:
        if held[proposal.pk]:
            _confirmed(change_set, guard, proposal, "after an interrupted apply")
        else:
            ChangeProposal.objects.filter(pk=proposal.pk, status=ProposalStatus.APPLYING).update(
                status=ProposalStatus.APPROVED, claimed_at=None, claim_owner="", due_at=None
            )
            record_event(
                change_set.workspace,
                action="apply.taken_over",
                outcome="ok",
                actor_kind=ActorKind.SYSTEM,
                crm=change_set.provider,
                object_type=change_set.object_type,
                record_id=change_set.record_id,
                field=proposal.native_field,
                after=proposal.value_to_write,
                reason="the worker writing it stopped, and the CRM does not hold the value: "
                "it is written again",
                context={"proposal": proposal.pk, "claim_owner": proposal.claim_owner},
                **change_set.audit_labels(),
            )


_CREATE_IN_DOUBT = (
    "the CRM did not answer while the record was being created, so it may exist now; "
    "CRM Steward does not create it a second time: check the CRM and create it by hand if "
    "it is missing"
)


def _held_values(
    change_set: ChangeSet, guard: Guard, proposals: list[ChangeProposal]
) -> dict[int, bool]:
    """For each proposal: does the CRM hold exactly the value it was to write?"""
    from crm_agents.coerce import same_value
    from crm_agents.crm_meta import property_specs

    object_type = ObjectType(change_set.object_type)
    fresh = guard.get(object_type, change_set.record_id, [p.native_field for p in proposals])
    specs = property_specs(guard.connection, object_type)
    held = {}
    for proposal in proposals:
        spec = specs.get(proposal.native_field)
        value = fresh.properties.get(proposal.native_field)
        held[proposal.pk] = spec is not None and same_value(value, proposal.value_to_write, spec)
    return held


def _settle_in_doubt(
    change_set: ChangeSet, guard: Guard, proposals: list[ChangeProposal]
) -> list[ChangeProposal]:
    """Before writing again, read what a write whose answer was lost did: a field that
    holds what was sent is written; the rest (returned) still needs its write."""
    doubtful = [p for p in proposals if p.in_doubt_since is not None]
    if not doubtful:
        return proposals
    held = _held_values(change_set, guard, doubtful)
    still = []
    for proposal in proposals:
        if held.get(proposal.pk):
            _confirmed(change_set, guard, proposal, "after its answer was lost")
        else:
            still.append(proposal)
    return still


def _confirmed(change_set: ChangeSet, guard: Guard, proposal: ChangeProposal, when: str) -> None:
    reason = f"written to the CRM (confirmed by reading the CRM {when})"
    with transaction.atomic():
        _finish(
            proposal,
            ProposalStatus.APPLIED,
            reason,
            applied_value=proposal.value_to_write,
            applied_at=timezone.now(),
            claimed_at=None,
        )
        _audit_write(change_set, guard, proposal, "ok", reason)


def _audit_write(
    change_set: ChangeSet, guard: Guard, proposal: ChangeProposal, outcome: str, reason: str
) -> None:
    if outcome == "ok":
        guard.audit_settled_write(
            change_set.object_type,
            change_set.record_id,
            proposal.native_field,
            proposal.value_to_write,
            reason=reason,
            proposal=proposal.pk,
        )
        return
    record_event(
        change_set.workspace,
        action="crm.create" if change_set.operation == SetOperation.CREATE else "crm.write",
        outcome=outcome,
        actor_kind=ActorKind.SYSTEM,
        crm=change_set.provider,
        object_type=change_set.object_type,
        record_id=change_set.record_id,
        field=proposal.native_field,
        after=proposal.value_to_write,
        reason=reason,
        context={"proposal": proposal.pk},
        **change_set.audit_labels(),
    )
