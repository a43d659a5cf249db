"""Rolling back what the agent wrote: a whole applied set or single fields, within 30 days.

A rollback puts back the value the CRM held before the agent's write (the proposal's
``current_value``), and only where the CRM still holds the value the agent wrote (its
``applied_value``); a field someone changed since is a conflict and is left alone
(DESIGN.md invariant 3). The write goes through the guard like any other, so the policy
still decides: clearing a field that was empty before needs the "clear a value" toggle,
a paused workspace sends nothing, a closed deal stays closed to CRM Steward.

Exactly once (invariant 4): each field is claimed with one conditional update
(``applied`` -> ``applying``) before anything is sent, so of two clicks or two workers only
one rolls a field back; the second finds nothing to claim and sends nothing. A rolled-back
proposal is then marked ``superseded`` with a reason saying who rolled it back, when, and to
what. A dedicated ``rolled_back`` status (with ``rolled_back_at`` / ``rolled_back_by``) is
the cleaner home for that state and waits for a model change; until then "superseded with
an ``applied_at``" means "rolled back", and "applying with an ``applied_at``" means "being
rolled back".

Sets that created a record cannot be rolled back: undoing a create means deleting a CRM
record, and CRM Steward never deletes CRM records. TEST sets wrote nothing to undo.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from audit.models import ActorKind
from audit.services import record_event
from governance.change_set_guard import NoGuard, change_set_guard
from governance.guard import Guard, RefusalCode, WriteOutcome, WriteStatus
from governance.review_models import ChangeProposal, ChangeSet, ProposalStatus, SetOperation
from integrations.crm import errors
from integrations.crm.types import ObjectType, Precondition

ROLLBACK_WINDOW = timedelta(days=30)
# A rollback claim older than this belongs to a process that died mid-rollback.
CLAIM_TIMEOUT = timedelta(minutes=10)


class RollbackError(ValueError):
    """A rollback that cannot even be described (an id not in the set); the message says why."""


@dataclass(frozen=True)
class RollbackLine:
    proposal_id: int
    field: str
    native_field: str
    written: str | None  # the value the agent wrote (proposal.applied_value)
    restore: str | None  # the value put back: what the CRM held before (proposal.current_value)
    possible: bool
    reason: str


def _shown(value: str | None) -> str:
    return "(empty)" if value in (None, "") else repr(value)


def _refusal_of(change_set: ChangeSet, proposal: ChangeProposal, now) -> str | None:
    """Why ``proposal`` cannot be rolled back, or None when it can."""
    if change_set.is_test:
        return "a TEST change set: nothing was written to the CRM, so nothing to roll back"
    if change_set.operation == SetOperation.CREATE:
        return (
            "this change set created the record: undoing it would mean deleting a CRM "
            "record, which CRM Steward never does (delete it in the CRM if it should go)"
        )
    if proposal.status == ProposalStatus.ROLLED_BACK:
        return f"already {proposal.status_reason or 'rolled back'}"
    if proposal.status == ProposalStatus.ROLLING_BACK:
        return "a rollback of this field is under way"
    if proposal.status != ProposalStatus.APPLIED or proposal.applied_at is None:
        return f"not applied ({proposal.get_status_display().lower()}): nothing to roll back"
    if proposal.applied_at < now - ROLLBACK_WINDOW:
        return (
            f"applied on {proposal.applied_at:%Y-%m-%d}, more than "
            f"{ROLLBACK_WINDOW.days} days ago: outside the rollback window"
        )
    return None


def _line(proposal: ChangeProposal, possible: bool, reason: str) -> RollbackLine:
    return RollbackLine(
        proposal_id=proposal.pk,
        field=proposal.field,
        native_field=proposal.native_field,
        written=proposal.applied_value,
        restore=proposal.current_value,
        possible=possible,
        reason=reason,
    )


def _proposals(change_set: ChangeSet, proposal_ids: list[int] | None) -> list[ChangeProposal]:
    proposals = ChangeProposal.objects.filter(change_set=change_set).order_by("pk")
    if proposal_ids is None:
        return list(proposals)
    found = list(proposals.filter(pk__in=proposal_ids))
    unknown = set(proposal_ids) - {p.pk for p in found}
    if unknown:
        raise RollbackError(f"not proposals of this change set: {sorted(unknown)}")
    return found


def preview_rollback(
    change_set: ChangeSet, proposal_ids: list[int] | None = None
) -> list[RollbackLine]:
    """What a rollback would restore, line by line. Asks the CRM nothing: whether the CRM
    still holds the written value is only known when the rollback reads it."""
    now = timezone.now()
    lines = []
    for proposal in _proposals(change_set, proposal_ids):
        refusal = _refusal_of(change_set, proposal, now)
        if refusal is None:
            lines.append(_line(proposal, True, f"will restore {_shown(proposal.current_value)}"))
        else:
            lines.append(_line(proposal, False, refusal))
    return lines


def do_rollback(
    change_set: ChangeSet, *, actor, proposal_ids: list[int] | None = None
) -> list[RollbackLine]:
    """Roll back the set's applied fields (or those of ``proposal_ids``); one line per field
    saying what happened. Every line is an audit event ``change.rollback``."""
    change_set = ChangeSet.objects.select_related("workspace").get(pk=change_set.pk)
    now = timezone.now()
    proposals = _proposals(change_set, proposal_ids)
    guard: Guard | str | None = None
    stale = [p for p in proposals if _stale_rollback(p, now)]
    if stale:
        guard = _guard(change_set, actor)
        if isinstance(guard, Guard):
            _recover_stale(change_set, guard, actor, stale)
            proposals = _proposals(change_set, [p.pk for p in proposals])

    lines: dict[int, RollbackLine] = {}
    wanted = []
    for proposal in proposals:
        refusal = _refusal_of(change_set, proposal, now)
        if refusal is None:
            wanted.append(proposal)
        else:
            lines[proposal.pk] = _refused(change_set, proposal, actor, refusal)
    claimed = _claim(wanted, now)
    for proposal in wanted:
        if proposal not in claimed:
            reason = "another rollback of this field got there first"
            lines[proposal.pk] = _refused(change_set, proposal, actor, reason)
    if claimed:
        guard = guard or _guard(change_set, actor)
        if isinstance(guard, str):
            for proposal in claimed:
                lines[proposal.pk] = _release(change_set, proposal, actor, "failed", guard)
        else:
            lines.update(_restore(change_set, guard, actor, claimed))
        from crm_agents.records import refresh_set_status

        # The run keeps its status: it did apply these changes; the rollback came later.
        refresh_set_status(change_set)
    return [lines[p.pk] for p in proposals]


def settle_stale_rollbacks(change_set: ChangeSet) -> int:
    """The reconciler's part: rollbacks whose process died mid-write are settled from the
    CRM (restored, or applied again), as a retried rollback would; how many."""
    now = timezone.now()
    stale = [
        p
        for p in change_set.proposals.filter(status=ProposalStatus.ROLLING_BACK)
        if _stale_rollback(p, now)
    ]
    if not stale:
        return 0
    guard = _guard(change_set, None)
    if isinstance(guard, Guard):
        _recover_stale(change_set, guard, None, stale)
    else:
        for proposal in stale:
            _release(change_set, proposal, None, "failed", f"not rolled back: {guard}")
    from crm_agents.records import refresh_set_status

    refresh_set_status(change_set)
    return len(stale)


def _refused(change_set: ChangeSet, proposal: ChangeProposal, actor, reason: str) -> RollbackLine:
    _audit(change_set, proposal, actor, "denied", reason)
    return _line(proposal, False, reason)


def _stale_rollback(proposal: ChangeProposal, now) -> bool:
    return (
        proposal.status == ProposalStatus.ROLLING_BACK
        and proposal.applied_at is not None
        and proposal.claimed_at is not None
        and proposal.claimed_at < now - CLAIM_TIMEOUT
    )


def _claim(proposals: list[ChangeProposal], now) -> list[ChangeProposal]:
    # A status of its own, so the apply step's recovery of stale "applying" claims can
    # never mistake a rollback that died mid-write for an apply.
    claimed = []
    for proposal in proposals:
        taken = ChangeProposal.objects.filter(
            pk=proposal.pk, status=ProposalStatus.APPLIED, applied_at=proposal.applied_at
        ).update(status=ProposalStatus.ROLLING_BACK, claimed_at=now)
        if taken:
            claimed.append(proposal)
    return claimed


def _guard(change_set: ChangeSet, actor) -> Guard | str:
    """The guard over the workspace connection, or why there is none."""
    try:
        return change_set_guard(change_set, actor=actor, actor_kind=ActorKind.USER)
    except NoGuard as exc:
        return exc.message


def _stage_field(change_set: ChangeSet, guard: Guard) -> list[str]:
    if change_set.object_type != ObjectType.DEAL:
        return []
    return guard.readable(ObjectType.DEAL, [guard.profile.native_field(ObjectType.DEAL, "stage")])


def _restore(
    change_set: ChangeSet, guard: Guard, actor, proposals: list[ChangeProposal]
) -> dict[int, RollbackLine]:
    from crm_agents.crm_meta import property_specs, same_as

    object_type = ObjectType(change_set.object_type)
    lines: dict[int, RollbackLine] = {}
    stage = _stage_field(change_set, guard)
    names = list(dict.fromkeys([*stage, *(p.native_field for p in proposals)]))
    try:
        fresh = guard.get(object_type, change_set.record_id, names)
    except errors.CrmError as exc:
        reason = f"could not read the record from the CRM: {exc}; nothing was written"
        return {p.pk: _release(change_set, p, actor, "failed", reason) for p in proposals}
    specs = property_specs(guard.connection, object_type)
    restorable = []
    for proposal in proposals:
        if not guard.readable(object_type, [proposal.native_field]):
            reason = (
                f"refused by policy: CRM Steward may no longer read {proposal.native_field}, "
                "so it cannot check the value it wrote is still there"
            )
            lines[proposal.pk] = _release(change_set, proposal, actor, "denied", reason)
            continue
        held = fresh.properties.get(proposal.native_field)
        still = same_as(specs, proposal.native_field, held, proposal.applied_value)
        if still:
            restorable.append(proposal)
        else:
            reason = (
                f"conflict: the CRM now holds {_shown(held)}, not the "
                f"{_shown(proposal.applied_value)} CRM Steward wrote; left as it is"
            )
            lines[proposal.pk] = _release(
                change_set, proposal, actor, "denied", reason, context={"crm_value": held}
            )
    if not restorable:
        return lines
    expected = {name: fresh.properties.get(name) for name in stage}
    expected.update({p.native_field: fresh.properties.get(p.native_field) for p in restorable})
    try:
        outcome = guard.update(
            object_type,
            change_set.record_id,
            {p.native_field: p.current_value for p in restorable},
            precondition=Precondition(
                unmodified_since=fresh.updated_at or timezone.now(), expected=expected
            ),
        )
    except errors.CrmError as exc:
        reason = f"the CRM could not be reached: {exc}; nothing was written, try again"
        lines.update({p.pk: _release(change_set, p, actor, "failed", reason) for p in restorable})
        return lines
    lines.update(_settle(change_set, actor, restorable, outcome))
    return lines


def _settle(
    change_set: ChangeSet, actor, proposals: list[ChangeProposal], outcome: WriteOutcome
) -> dict[int, RollbackLine]:
    refused = {r.field: r for r in outcome.refusals}
    whole = next((r for r in outcome.refusals if r.field is None), None)
    lines = {}
    for proposal in proposals:
        refusal = refused.get(proposal.native_field) or whole
        if outcome.status == WriteStatus.SENT and proposal.native_field in outcome.sent:
            lines[proposal.pk] = _rolled_back(change_set, proposal, actor)
        elif outcome.status == WriteStatus.DRY_RUN and proposal.native_field in outcome.sent:
            reason = "dry run: the restore was captured, not sent"
            lines[proposal.pk] = _release(change_set, proposal, actor, "dry_run", reason)
        elif outcome.status == WriteStatus.CONFLICT:
            reason = "conflict: the record changed during the rollback; nothing was written"
            lines[proposal.pk] = _release(change_set, proposal, actor, "denied", reason)
        elif refusal is not None and refusal.code == RefusalCode.PAUSED:
            reason = "refused by policy: CRM Steward is paused for this CRM; nothing was written"
            lines[proposal.pk] = _release(change_set, proposal, actor, "denied", reason)
        elif refusal is not None:
            reason = f"refused by policy: {refusal.reason}"
            lines[proposal.pk] = _release(change_set, proposal, actor, "denied", reason)
        else:
            reason = f"the CRM refused the value: {outcome.error}"
            lines[proposal.pk] = _release(change_set, proposal, actor, "failed", reason)
    return lines


@transaction.atomic
def _rolled_back(
    change_set: ChangeSet, proposal: ChangeProposal, actor, note: str = ""
) -> RollbackLine:
    who = actor.get_username() if actor is not None else "system"
    reason = (
        f"rolled back by {who} on {timezone.now():%Y-%m-%d %H:%M} UTC: "
        f"restored {_shown(proposal.current_value)}{note}"
    )
    ChangeProposal.objects.filter(pk=proposal.pk, status=ProposalStatus.ROLLING_BACK).update(
        status=ProposalStatus.ROLLED_BACK,
        status_reason=reason,
        claimed_at=None,
        rolled_back_at=timezone.now(),
        rolled_back_by=actor,
    )
    _audit(change_set, proposal, actor, "ok", reason)
    return _line(proposal, True, f"restored {_shown(proposal.current_value)}")


@transaction.atomic
def _release(
    change_set: ChangeSet,
    proposal: ChangeProposal,
    actor,
    outcome: str,
    reason: str,
    *,
    context: dict | None = None,
) -> RollbackLine:
    """Not rolled back: the proposal is applied again, and the audit says why."""
    ChangeProposal.objects.filter(pk=proposal.pk, status=ProposalStatus.ROLLING_BACK).update(
        status=ProposalStatus.APPLIED, claimed_at=None
    )
    _audit(change_set, proposal, actor, outcome, reason, context=context)
    return _line(proposal, False, reason)


def _audit(
    change_set: ChangeSet,
    proposal: ChangeProposal,
    actor,
    outcome: str,
    reason: str,
    *,
    context: dict | None = None,
) -> None:
    record_event(
        change_set.workspace,
        action="change.rollback",
        outcome=outcome,
        actor_kind="user",
        actor_user=actor,
        crm=change_set.provider,
        object_type=change_set.object_type,
        record_id=change_set.record_id,
        field=proposal.native_field,
        before=proposal.applied_value,
        after=proposal.current_value,
        reason=reason,
        context={"proposal": proposal.pk, **(context or {})},
        **change_set.audit_labels(),
    )


def _recover_stale(
    change_set: ChangeSet, guard: Guard, actor, proposals: list[ChangeProposal]
) -> None:
    """Claims left by a rollback that died: the CRM says whether the restore went out."""
    from crm_agents.crm_meta import property_specs, same_as

    object_type = ObjectType(change_set.object_type)
    try:
        fresh = guard.get(object_type, change_set.record_id, [p.native_field for p in proposals])
    except errors.CrmError:
        return  # still "under way"; the next attempt asks again
    specs = property_specs(guard.connection, object_type)
    for proposal in proposals:
        held = fresh.properties.get(proposal.native_field)
        restored = proposal.native_field in fresh.properties and same_as(
            specs, proposal.native_field, held, proposal.current_value
        )
        if restored:
            _rolled_back(change_set, proposal, actor, " (confirmed after an interrupted rollback)")
        else:
            ChangeProposal.objects.filter(
                pk=proposal.pk, status=ProposalStatus.ROLLING_BACK
            ).update(status=ProposalStatus.APPLIED, claimed_at=None)
