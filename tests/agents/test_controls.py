"""Pause and resume: a whole workspace, one workflow, one field rule."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from crm_agents import tasks
from crm_agents.controls import (
    do_pause_rule,
    do_pause_workflow,
    do_pause_workspace,
    do_resume_rule,
    do_resume_workflow,
    do_resume_workspace,
)
from crm_agents.models import FieldRule, Workflow
from crm_agents.services import triggers
from governance.models import Policy
from governance.review_models import ProposalStatus
from tests.factories import (
    CallFactory,
    ChangeProposalFactory,
    FieldRuleFactory,
    PolicyFactory,
    WorkflowFactory,
)

HELD = "CRM Steward is paused: this change is written when it resumes"


@pytest.fixture
def policies(workspace):
    return [
        PolicyFactory(workspace=workspace, provider="hubspot"),
        PolicyFactory(workspace=workspace, provider="salesforce"),
    ]


@pytest.fixture
def queued(monkeypatch) -> list[int]:
    sent: list[int] = []
    monkeypatch.setattr(tasks.apply_change_set, "delay", sent.append)
    return sent


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("sequence"))


@pytest.mark.django_db
def test_it_pauses_every_crm_of_a_workspace_once(workspace, policies, revops):
    assert do_pause_workspace(workspace, actor=revops) == ["hubspot", "salesforce"]
    assert do_pause_workspace(workspace, actor=revops) == []

    assert set(Policy.objects.values_list("paused", flat=True)) == {True}
    (event,) = _events("workspace.paused")
    assert (event.actor_kind, event.actor_user) == ("user", revops)
    assert event.after == {"paused": True}
    # The policy's own history names who paused it too.
    assert Policy.history.filter(paused=True, history_user=revops).count() == 2


@pytest.mark.django_db
def test_resuming_queues_what_the_pause_held_back(
    workspace, policies, revops, queued, django_capture_on_commit_callbacks
):
    do_pause_workspace(workspace, actor=revops)
    held = ChangeProposalFactory(
        workspace=workspace, status=ProposalStatus.APPROVED, status_reason=HELD
    )
    ChangeProposalFactory(workspace=workspace, status=ProposalStatus.PENDING)
    ChangeProposalFactory(
        workspace=workspace, status=ProposalStatus.APPROVED, change_set__is_test=True
    )

    with django_capture_on_commit_callbacks(execute=True):
        resumed = do_resume_workspace(workspace, actor=revops)

    assert resumed == ["hubspot", "salesforce"]
    assert queued == [held.change_set_id]
    assert not Policy.objects.filter(paused=True).exists()
    (event,) = _events("workspace.resumed")
    assert event.context["requeued_change_sets"] == [held.change_set_id]


@pytest.mark.django_db
def test_resuming_a_running_workspace_does_nothing(workspace, policies, revops, queued):
    assert do_resume_workspace(workspace, actor=revops) == []
    assert queued == []
    assert _events("workspace.resumed") == []


@pytest.mark.django_db
def test_a_paused_workflow_does_not_trigger_until_resumed(workspace, revops):
    workflow = WorkflowFactory(workspace=workspace)
    call = CallFactory(workspace=workspace)

    assert do_pause_workflow(workflow, actor=revops) is True
    assert do_pause_workflow(workflow, actor=revops) is False
    workflow.refresh_from_db()
    assert triggers(workflow, call) == "the workflow is paused"

    assert do_resume_workflow(workflow, actor=revops) is True
    workflow.refresh_from_db()
    assert triggers(workflow, call) is None
    actions = [e.action for e in AuditEvent.objects.order_by("sequence")]
    assert actions == ["workflow.paused", "workflow.resumed"]
    assert [e.workflow_label for e in _events("workflow.paused")] == [workflow.name]


@pytest.mark.django_db
def test_it_pauses_and_resumes_one_field_rule(workspace, revops):
    rule = FieldRuleFactory(workspace=workspace, field="next_step")

    assert do_pause_rule(rule, actor=revops) is True
    assert FieldRule.objects.get(pk=rule.pk).paused is True
    assert do_resume_rule(rule, actor=revops) is True
    assert do_resume_rule(rule, actor=revops) is False

    assert [(e.action, e.field) for e in AuditEvent.objects.order_by("sequence")] == [
        ("field_rule.paused", "next_step"),
        ("field_rule.resumed", "next_step"),
    ]


# --- the admin ----------------------------------------------------------------------------
def _action(client, action: str, *workflows):
    return client.post(
        reverse("admin:crm_agents_workflow_changelist"),
        {"action": action, "_selected_action": [w.pk for w in workflows]},
    )


@pytest.mark.django_db
def test_revops_pauses_and_resumes_workflows_from_the_list(login, revops, workspace):
    workflows = WorkflowFactory.create_batch(2, workspace=workspace)
    client = login(revops)

    response = _action(client, "pause_workflows", *workflows)

    assert response.status_code == 302
    assert set(Workflow.objects.values_list("paused", flat=True)) == {True}
    assert len(_events("workflow.paused")) == 2
    _action(client, "resume_workflows", workflows[0])
    assert Workflow.objects.get(pk=workflows[0].pk).paused is False


@pytest.mark.django_db
def test_a_rep_cannot_pause_a_workflow(login, rep, workspace):
    workflow = WorkflowFactory(workspace=workspace)

    _action(login(rep), "pause_workflows", workflow)

    assert Workflow.objects.get(pk=workflow.pk).paused is False


@pytest.mark.django_db
def test_an_outsider_cannot_pause_another_workspaces_workflow(login, outsider, workspace):
    workflow = WorkflowFactory(workspace=workspace)

    _action(login(outsider), "pause_workflows", workflow)

    assert Workflow.objects.get(pk=workflow.pk).paused is False


def _pause_url(workspace) -> str:
    return reverse("admin:crm_agents_workflow_pause_workspace", args=[workspace.pk])


@pytest.mark.django_db
def test_the_index_button_pauses_and_resumes_a_workspace(
    login, ws_admin, workspace, policies, queued
):
    client = login(ws_admin)

    response = client.post(_pause_url(workspace), {"action": "pause"})

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")
    assert set(Policy.objects.values_list("paused", flat=True)) == {True}
    page = client.get(reverse("admin:index")).content.decode()
    assert "Paused" in page
    assert ">Resume</button>" in page

    client.post(_pause_url(workspace), {"action": "resume"})
    assert set(Policy.objects.values_list("paused", flat=True)) == {False}


@pytest.mark.django_db
def test_the_workspace_pause_needs_a_post(login, ws_admin, workspace, policies):
    assert login(ws_admin).get(_pause_url(workspace)).status_code == 405


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["outsider", "rep"])
def test_only_configurers_of_the_workspace_may_pause_it(request, login, who, workspace, policies):
    response = login(request.getfixturevalue(who)).post(_pause_url(workspace), {"action": "pause"})

    assert response.status_code == 404
    assert not Policy.objects.filter(paused=True).exists()


@pytest.mark.django_db
def test_pausing_a_rule_in_the_workflow_form_is_audited(login, revops, workspace):
    workflow = WorkflowFactory(workspace=workspace, key="hygiene", name="Deal hygiene")
    rule = FieldRuleFactory(workspace=workspace, workflow=workflow, field="next_step")
    data = {
        "workspace": workspace.pk,
        "name": workflow.name,
        "key": workflow.key,
        "provider": "hubspot",
        "object_type": "deal",
        "trigger_external_attendees": "on",
        "trigger_min_duration_s": "0",
        "no_match": "skip",
        "enabled": "on",
        "rules-TOTAL_FORMS": "1",
        "rules-INITIAL_FORMS": "1",
        "rules-MIN_NUM_FORMS": "0",
        "rules-MAX_NUM_FORMS": "1000",
        "rules-0-id": rule.pk,
        "rules-0-workflow": workflow.pk,
        "rules-0-order": "0",
        "rules-0-field": "next_step",
        "rules-0-instruction": "The agreed next step, in one sentence",
        "rules-0-write_mode": "overwrite",
        "rules-0-read_dependencies": "[]",
        "rules-0-paused": "on",
    }

    response = login(revops).post(
        reverse("admin:crm_agents_workflow_change", args=[workflow.pk]), data
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    rule.refresh_from_db()
    assert rule.paused is True
    assert rule.instruction == "The agreed next step, in one sentence"
    (event,) = _events("field_rule.paused")
    assert event.actor_user == revops
