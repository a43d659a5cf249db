"""Pause and resume: everything in a workspace, one workflow, or one field rule.

- A paused workspace (every Policy of it paused) sends nothing to its CRMs: the guard
  refuses each write, and the apply step keeps such proposals approved ("written when it
  resumes"). Resuming queues those sets again.
- A paused workflow does not trigger on new calls (crm_agents.services.triggers).
- A paused field rule is left out of its workflow's runs (crm_agents.pipeline).

Each change is one transaction with its audit event, and does nothing when nothing changes.
"""

from django.db import transaction
from django.utils import timezone

from audit.services import record_event
from crm_agents.models import FieldRule, Workflow
from governance import owed
from governance.models import Policy, Workspace
from governance.review_models import ChangeProposal, ProposalStatus


def do_pause_workspace(workspace: Workspace, *, actor) -> list[str]:
    """Pause every CRM policy of the workspace; the CRMs newly paused, in order."""
    return _set_workspace_paused(workspace, True, actor=actor)


def do_resume_workspace(workspace: Workspace, *, actor) -> list[str]:
    """Resume every CRM policy of the workspace and queue the approved changes the pause
    held back; the CRMs newly resumed, in order."""
    return _set_workspace_paused(workspace, False, actor=actor)


@transaction.atomic
def _set_workspace_paused(workspace: Workspace, paused: bool, *, actor) -> list[str]:
    policies = list(
        Policy.objects.select_for_update()
        .filter(workspace=workspace, paused=not paused)
        .order_by("provider")
    )
    if not policies:
        return []
    for policy in policies:
        policy.paused = paused
        policy._history_user = actor  # so the policy's history (and its audit) names them
        policy.save(update_fields=["paused", "updated_at"])
    providers = [policy.provider for policy in policies]
    held = _held_change_set_ids(workspace, providers) if not paused else []
    record_event(
        workspace,
        action="workspace.paused" if paused else "workspace.resumed",
        outcome="ok",
        actor_kind="user",
        actor_user=actor,
        before={"paused": not paused},
        after={"paused": paused},
        reason=f"{'paused' if paused else 'resumed'} {', '.join(providers)}",
        context={"crms": providers, "requeued_change_sets": held},
    )
    if held:
        from crm_agents import tasks

        ChangeProposal.objects.filter(
            change_set_id__in=held, status=ProposalStatus.APPROVED
        ).update(due_at=timezone.now())
        for pk in held:
            owed.send_on_commit(tasks.apply_change_set, pk)
    return providers


def _held_change_set_ids(workspace: Workspace, providers: list[str]) -> list[int]:
    # Every approved proposal waits for the apply step: those the pause held back, and any
    # whose task is still queued. Applying claims each proposal once, so asking twice is safe.
    return sorted(
        set(
            ChangeProposal.objects.filter(
                workspace=workspace,
                status=ProposalStatus.APPROVED,
                change_set__is_test=False,
                change_set__provider__in=providers,
            ).values_list("change_set_id", flat=True)
        )
    )


def do_pause_workflow(workflow: Workflow, *, actor) -> bool:
    return _set_workflow_paused(workflow, True, actor=actor)


def do_resume_workflow(workflow: Workflow, *, actor) -> bool:
    return _set_workflow_paused(workflow, False, actor=actor)


@transaction.atomic
def _set_workflow_paused(workflow: Workflow, paused: bool, *, actor) -> bool:
    """True when the workflow changed."""
    workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
    if workflow.paused == paused:
        return False
    workflow.paused = paused
    workflow._history_user = actor
    workflow.save(update_fields=["paused", "updated_at"])
    record_event(
        workflow.workspace,
        action="workflow.paused" if paused else "workflow.resumed",
        outcome="ok",
        actor_kind="user",
        actor_user=actor,
        crm=workflow.provider,
        object_type=workflow.object_type,
        before={"paused": not paused},
        after={"paused": paused},
        workflow_label=workflow.name,
        context={"workflow": workflow.pk},
    )
    return True


def do_pause_rule(rule: FieldRule, *, actor) -> bool:
    return _set_rule_paused(rule, True, actor=actor)


def do_resume_rule(rule: FieldRule, *, actor) -> bool:
    return _set_rule_paused(rule, False, actor=actor)


@transaction.atomic
def _set_rule_paused(rule: FieldRule, paused: bool, *, actor) -> bool:
    """True when the rule changed."""
    rule = (
        FieldRule.objects.select_for_update()
        .select_related("workflow", "workspace")
        .get(pk=rule.pk)
    )
    if rule.paused == paused:
        return False
    rule.paused = paused
    rule._history_user = actor
    rule.save(update_fields=["paused"])
    workflow = rule.workflow
    record_event(
        rule.workspace,
        action="field_rule.paused" if paused else "field_rule.resumed",
        outcome="ok",
        actor_kind="user",
        actor_user=actor,
        crm=workflow.provider,
        object_type=workflow.object_type,
        field=rule.field[:128],
        before={"paused": not paused},
        after={"paused": paused},
        workflow_label=workflow.name,
        context={"workflow": workflow.pk, "rule": rule.pk},
    )
    return True
