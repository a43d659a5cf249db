"""Creating, changing and deleting workflows and their field rules.

Each change is one transaction with its audit event: ``before`` and ``after`` hold only the
fields that changed (everything, for a creation or a deletion), and a change that changes
nothing writes nothing. Pausing and resuming go through crm_agents/controls.py, which
audits them under their own names; an edit that flips ``paused`` is routed there.
"""

from collections.abc import Mapping

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from audit.services import record_event
from crm_agents.controls import (
    do_pause_rule,
    do_pause_workflow,
    do_resume_rule,
    do_resume_workflow,
)
from crm_agents.models import FieldRule, Workflow
from governance.models import Workspace

# What a person configures; ``workspace`` and ``template`` are set once, at creation.
WORKFLOW_FIELDS = (
    "name",
    "key",
    "provider",
    "object_type",
    "trigger_external_attendees",
    "trigger_title_contains",
    "trigger_min_duration_s",
    "trigger_owner_team",
    "no_match",
    "enabled",
    "paused",
    "dry_run",
)
RULE_FIELDS = (
    "field",
    "instruction",
    "write_mode",
    "read_dependencies",
    "order",
    "review_override",
    "paused",
)


@transaction.atomic
def do_create_workflow(
    workspace: Workspace,
    values: Mapping[str, object],
    *,
    actor: AbstractBaseUser | None,
    template: str = "",
) -> Workflow:
    values = _known(Workflow, values, WORKFLOW_FIELDS)
    workflow = Workflow(workspace=workspace, template=template, **values)
    workflow._history_user = actor
    workflow.save(force_insert=True)
    _audit_workflow(workflow, "workflow.created", actor, after=_snapshot(workflow, WORKFLOW_FIELDS))
    return workflow


@transaction.atomic
def do_update_workflow(
    workflow: Workflow, changes: Mapping[str, object], *, actor: AbstractBaseUser | None
) -> list[str]:
    """Apply ``changes``; the names of the fields that changed (empty: nothing written)."""
    changes = _known(Workflow, changes, WORKFLOW_FIELDS)
    locked = Workflow.objects.select_for_update().get(pk=workflow.pk)
    changed = _set_paused(locked, changes, do_pause_workflow, do_resume_workflow, actor)
    if changed:
        locked.refresh_from_db(fields=["paused", "updated_at"])
    before, after = _diff(locked, changes)
    if before:
        for name, value in after.items():
            setattr(locked, name, value)
        locked._history_user = actor
        locked.save(update_fields=[*after, "updated_at"])
        _audit_workflow(locked, "workflow.changed", actor, before=before, after=after)
    _copy(locked, workflow, WORKFLOW_FIELDS)
    return changed + sorted(after)


@transaction.atomic
def do_delete_workflow(workflow: Workflow, *, actor: AbstractBaseUser | None) -> None:
    """Delete the workflow and its rules; its runs stay, with its name as their label."""
    locked = Workflow.objects.select_for_update().filter(pk=workflow.pk).first()
    if locked is None:
        return
    rules = [_snapshot(rule, RULE_FIELDS) for rule in locked.rules.order_by("order", "pk")]
    before = {**_snapshot(locked, WORKFLOW_FIELDS), "rules": rules}
    _audit_workflow(locked, "workflow.deleted", actor, before=before)
    locked._history_user = actor
    locked.delete()


@transaction.atomic
def do_create_field_rule(
    workflow: Workflow, values: Mapping[str, object], *, actor: AbstractBaseUser | None
) -> FieldRule:
    values = _known(FieldRule, values, RULE_FIELDS)
    rule = FieldRule(workspace_id=workflow.workspace_id, workflow=workflow, **values)
    rule._history_user = actor
    rule.save(force_insert=True)
    _audit_rule(rule, "field_rule.created", actor, after=_snapshot(rule, RULE_FIELDS))
    return rule


@transaction.atomic
def do_update_field_rule(
    rule: FieldRule, changes: Mapping[str, object], *, actor: AbstractBaseUser | None
) -> list[str]:
    """Apply ``changes``; the names of the fields that changed (empty: nothing written)."""
    changes = _known(FieldRule, changes, RULE_FIELDS)
    locked = FieldRule.objects.select_for_update().select_related("workflow").get(pk=rule.pk)
    changed = _set_paused(locked, changes, do_pause_rule, do_resume_rule, actor)
    if changed:
        locked.refresh_from_db(fields=["paused"])
    before, after = _diff(locked, changes)
    if before:
        for name, value in after.items():
            setattr(locked, name, value)
        locked._history_user = actor
        locked.save(update_fields=list(after))
        _audit_rule(locked, "field_rule.changed", actor, before=before, after=after)
    _copy(locked, rule, RULE_FIELDS)
    return changed + sorted(after)


@transaction.atomic
def do_delete_field_rule(rule: FieldRule, *, actor: AbstractBaseUser | None) -> bool:
    """False when the rule was already gone."""
    rules = FieldRule.objects.select_for_update().select_related("workflow")
    locked = rules.filter(pk=rule.pk).first()
    if locked is None:
        return False
    _audit_rule(locked, "field_rule.deleted", actor, before=_snapshot(locked, RULE_FIELDS))
    locked._history_user = actor
    locked.delete()
    return True


def _known(model, values: Mapping[str, object], allowed: tuple[str, ...]) -> dict[str, object]:
    """``values`` as the model's own types (so "300" and 300 are no change), known fields only."""
    unknown = set(values) - set(allowed)
    if unknown:
        raise ValueError(f"Not configurable here: {', '.join(sorted(unknown))}.")
    return {name: model._meta.get_field(name).to_python(value) for name, value in values.items()}


def _set_paused(obj, changes: dict, pause, resume, actor) -> list[str]:
    """Route a change of ``paused`` through its audited service; ["paused"] if it changed."""
    if "paused" not in changes:
        return []
    service = pause if changes.pop("paused") else resume
    return ["paused"] if service(obj, actor=actor) else []


def _diff(obj, changes: dict) -> tuple[dict, dict]:
    before: dict[str, object] = {}
    after: dict[str, object] = {}
    for name, value in changes.items():
        if getattr(obj, name) != value:
            before[name], after[name] = getattr(obj, name), value
    return before, after


def _snapshot(obj, fields: tuple[str, ...]) -> dict[str, object]:
    return {name: getattr(obj, name) for name in fields}


def _copy(source, target, fields: tuple[str, ...]) -> None:
    # The caller's instance reads as saved (the admin shows it right after).
    for name in (*fields, "updated_at"):
        if hasattr(source, name):
            setattr(target, name, getattr(source, name))


def _audit_workflow(
    workflow: Workflow,
    action: str,
    actor: AbstractBaseUser | None,
    *,
    before: object = None,
    after: object = None,
) -> None:
    record_event(
        workflow.workspace,
        action=action,
        outcome="ok",
        actor_kind="user" if actor else "system",
        actor_user=actor,
        crm=workflow.provider,
        object_type=workflow.object_type,
        before=before,
        after=after,
        reason=_reason(action, before, after),
        workflow_label=workflow.name,
        context={"workflow": workflow.pk, "template": workflow.template},
    )


def _audit_rule(
    rule: FieldRule,
    action: str,
    actor: AbstractBaseUser | None,
    *,
    before: object = None,
    after: object = None,
) -> None:
    workflow = rule.workflow
    record_event(
        workflow.workspace,
        action=action,
        outcome="ok",
        actor_kind="user" if actor else "system",
        actor_user=actor,
        crm=workflow.provider,
        object_type=workflow.object_type,
        field=rule.field[:128],
        before=before,
        after=after,
        reason=_reason(action, before, after),
        workflow_label=workflow.name,
        context={"workflow": workflow.pk, "rule": rule.pk},
    )


def _reason(action: str, before: object, after: object) -> str:
    verb = action.rsplit(".", 1)[1]
    if verb == "changed" and isinstance(after, dict):
        return f"changed {', '.join(sorted(after))}"
    return verb
