"""propose_update: a change a rep asked for in chat, into the same review and apply path
as a workflow's.

The record is read through the rep's chat connection first (a record outside the rep's
access ends here), the value is coerced to the property's type, the guard vets the write
against the policy (whitelist, toggles, closed deals), and the change lands as a
ChangeProposal in one ChangeSet per record and turn, reviewed or applied at once as the
policy's chat setting says, with the rep as the one who asked.
"""

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from audit.models import ActorKind
from audit.services import record_event
from crm_agents.chat.memory import Remembered, remember
from crm_agents.chat.references import (
    ChatRefusal,
    label_fields,
    label_of,
    resolve_field,
    resolve_record,
)
from crm_agents.coerce import WriteMode, coerce_value, same_value
from crm_agents.coerce_dates import CoercionError
from crm_agents.crm_meta import deal_stages
from crm_agents.records import refresh_set_status, supersede_older
from governance.models import ReviewMode
from governance.review_models import (
    CHAT_WORKFLOW_LABEL,
    ChangeProposal,
    ChangeSet,
    ProposalStatus,
    SetOperation,
    SetStatus,
)
from integrations.crm.types import ObjectType, Record

EVIDENCE_CHARS = 1000


class Proposer:
    def __init__(self, tools) -> None:
        self.tools = tools
        self.session = tools.session
        self.guard = tools.guard
        self.sets: dict[str, ChangeSet] = {}  # this turn's change set per record

    def propose(self, args) -> dict:
        target = resolve_record(self.session, self.guard, args.record)
        object_type = ObjectType(target.object_type)
        specs = self.tools.specs(object_type)
        native = resolve_field(self.guard, object_type, args.field, specs)
        spec = specs[native]
        stage_field = self.guard.profile.native_field(ObjectType.DEAL, "stage")
        extra = [stage_field] if object_type == ObjectType.DEAL else []
        names = list(dict.fromkeys([*label_fields(self.guard, object_type), *extra, native]))
        # Read first: a record outside the rep's access is refused here, before any policy
        # reasoning, and the write will be conditional on exactly these values.
        record = self.guard.get(object_type, target.id, names)
        label = label_of(self.guard, record)
        it = Remembered(str(object_type), record.id, label)
        remember(self.session, [it], it=it)
        if spec.read_only:
            raise ChatRefusal(f"{spec.label} is read-only for you in the CRM.")
        raw = args.value
        if object_type == ObjectType.DEAL:
            deal_stages(self.guard, self.guard.connection)  # cached: the closed-deal check
        # The policy first: a field outside the whitelist is refused whatever its value.
        said = None if raw is None or str(raw).strip() == "" else str(raw)
        refusals = self.guard.vet_update(
            object_type,
            record.id,
            {native: said},
            current_stage=record.properties.get(stage_field) if extra else None,
        )
        if refusals:
            reasons = "; ".join(dict.fromkeys(r.reason for r in refusals))
            raise ChatRefusal(f"{spec.label} of {label} cannot be changed: {reasons}.")
        try:
            value = coerce_value(raw, spec, call_date=timezone.localdate())
        except CoercionError as exc:
            raise ChatRefusal(f"{spec.label} cannot be set to {raw!r}: {exc}") from None
        current = record.properties.get(native)
        if same_value(current, value, spec):
            return {
                "record": it.ref,
                "summary": f"{spec.label} of {label} is already {_shown(current)}: "
                "nothing to change.",
            }
        proposal = self._record(record, label, native, spec, raw, value, stage_field)
        status = self._status_words(proposal)
        return {
            "record": it.ref,
            "field": spec.label,
            "value": value,
            "was": current,
            "status": status,
            "summary": f"Proposed {spec.label} = {_shown(value)} for {label} "
            f"(was {_shown(current)}): {status}.",
        }

    @transaction.atomic
    def _record(self, record: Record, label, native, spec, raw, value, stage_field):
        session, user = self.session, self.session.user
        policy = self.guard.policy
        canonical = self.guard.profile.canonical_field(record.object_type, native)
        change_set = self._change_set(record, label, stage_field)
        mode = policy.chat_review_mode_for(canonical)
        if policy.dry_run:
            status, reason = ProposalStatus.DRY_RUN, "dry run: recorded, not sent"
        elif mode == ReviewMode.AUTO:
            status, reason = ProposalStatus.APPROVED, "asked for in chat; the policy applies it"
        else:
            status, reason = ProposalStatus.PENDING, "asked for in chat; waits for review"
        proposal = ChangeProposal.objects.create(
            workspace=session.workspace,
            change_set=change_set,
            field=canonical,
            native_field=native,
            label=spec.label,
            write_mode=WriteMode.OVERWRITE,  # the rep said the value to set
            review_mode=mode,
            raw_value=raw,  # a JSON scalar: the tool's arguments are checked for that
            proposed_value=value,
            current_value=record.properties.get(native),
            current_modified_at=record.modified_at.get(native),
            evidence=f"{_who(user)} asked in chat: {self.tools.asked.content}"[:EVIDENCE_CHARS],
            confidence=1.0,
            status=status,
            status_reason=reason,
        )
        # The same field asked twice in one turn: the later value wins.
        ChangeProposal.objects.filter(
            change_set=change_set, native_field=native, status__in=[status]
        ).exclude(pk=proposal.pk).update(
            status=ProposalStatus.SUPERSEDED,
            superseded_by=proposal,
            status_reason="superseded by a later value asked in the same chat message",
        )
        if status == ProposalStatus.PENDING:
            supersede_older(change_set)
        refresh_set_status(change_set)
        record_event(
            session.workspace,
            action="chat.proposal",
            outcome="ok",
            actor_kind=ActorKind.USER,
            actor_user=user,
            crm=session.provider,
            connection=self.guard.connection,
            object_type=str(record.object_type),
            record_id=record.id,
            field=native,
            before=proposal.current_value,
            after=value,
            reason=reason,
            **change_set.audit_labels(),
            context={"change_set": change_set.pk, "proposal": proposal.pk},
        )
        self.tools.activity.proposed.append(
            {
                "change_set": change_set.pk,
                "proposal": proposal.pk,
                "object_type": str(record.object_type),
                "id": record.id,
                "label": label,
                "field": canonical,
                "field_label": spec.label,
                "value": value,
                "status": proposal.status,
                "status_label": proposal.get_status_display(),
                "url": reverse("admin:governance_changeset_change", args=[change_set.pk]),
            }
        )
        return proposal

    def _change_set(self, record: Record, label: str, stage_field: str) -> ChangeSet:
        ref = f"{record.object_type}:{record.id}"
        change_set = self.sets.get(ref)
        if change_set is not None:
            return change_set
        session = self.session
        condition = {}
        if record.object_type == ObjectType.DEAL and stage_field in record.properties:
            condition[stage_field] = record.properties[stage_field]
        change_set = ChangeSet.objects.create(
            workspace=session.workspace,
            provider=session.provider,
            object_type=str(record.object_type),
            operation=SetOperation.UPDATE,
            record_id=record.id,
            record_name=label[:500],
            call_title=f"Chat: {session.title or session.pk}"[:500],
            call_started_at=timezone.now(),
            workflow_label=CHAT_WORKFLOW_LABEL,
            owner_email=session.user.email,
            status=SetStatus.PENDING_REVIEW,
            read_at=timezone.now(),
            record_modified_at=record.updated_at,
            chat_session=session,
            requested_by=session.user,
            condition_values=condition,
        )
        self.sets[ref] = change_set
        return change_set

    def _status_words(self, proposal: ChangeProposal) -> str:
        return {
            ProposalStatus.PENDING: "it waits for review by RevOps",
            ProposalStatus.APPROVED: "it is being written to the CRM now",
            ProposalStatus.DRY_RUN: "dry run: recorded, nothing is written",
        }.get(proposal.status, proposal.get_status_display())


def _shown(value: str | None) -> str:
    return "(empty)" if value in (None, "") else repr(value)


def _who(user) -> str:
    return user.get_full_name() or user.get_username()
