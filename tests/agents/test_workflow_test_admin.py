"""RevOps tests a workflow in the admin, on a past call or a pasted transcript: the real
CRM is read, what would be written is shown as TEST, and nothing is written."""

import pytest
from django.urls import reverse

from crm_agents.calls import CallIn
from crm_agents.models import AgentRun, Call, CallSource, RunStatus
from crm_agents.services import do_submit_call
from crm_agents.test_runs import parse_transcript
from governance.review_models import ChangeProposal, ProposalStatus
from integrations.sandbox.models import SandboxRequest
from tests.agents.conftest import pricing_call
from tests.factories import AgentRunFactory, WorkflowFactory

BANNER = "TEST — nothing was written"

PASTED = {
    "title": "Acme Logistics x Seller - pricing review",
    "started_at": "2026-11-21 15:00:00",
    "attendees": "Riley Rep <riley@seller.example> [internal]\nJane Doe <jane@acme.example>",
    "transcript": (
        "[00:12] Jane Doe: We looked at the proposal with finance and the number we can work "
        "with is $84,000 a year.\n"
        "[00:40] Jane Doe: Our legal team needs the MSA, and we would like to sign by "
        "January 15, 2027.\n"
        "[00:55] Riley Rep: Next step then: I will send the MSA and order form by Friday "
        "November 27."
    ),
}


def _writes(world) -> int:
    return SandboxRequest.objects.filter(account=world.account, kind="write").count()


def _assert_test_result(response, world) -> AgentRun:
    assert response.status_code == 200
    page = response.content.decode()
    assert BANNER in page
    run = response.context["run"]
    assert run.is_test
    assert run.status == RunStatus.DRY_RUN, (run.status, run.status_reason, run.error)
    assert run.record_id == world.deal.crm_id
    proposals = ChangeProposal.objects.filter(change_set__run=run)
    assert {p.status for p in proposals} == {ProposalStatus.DRY_RUN}
    assert {p.field for p in proposals} >= {"amount", "close_date"}
    assert "84000" in page
    assert "the number we can work with is $84,000 a year." in page
    assert _writes(world) == 0
    return run


def test_it_tests_a_workflow_on_a_past_call_and_writes_nothing(world, login, revops):
    call, _ = do_submit_call(world.workspace, CallIn(**pricing_call()))
    amount_before = world.deal_value("amount")
    client = login(revops)

    listing = client.get(reverse("admin:crm_agents_workflow_test", args=[world.workflow.pk]))
    assert listing.status_code == 200
    assert call.title in listing.content.decode()

    response = client.post(
        reverse("admin:crm_agents_workflow_test", args=[world.workflow.pk]),
        {"call": call.pk},
        follow=True,
    )

    run = _assert_test_result(response, world)
    assert run.call == call
    assert world.deal_value("amount") == amount_before


def test_the_list_action_leads_to_the_past_call_page(world, login, revops):
    response = login(revops).post(
        reverse("admin:crm_agents_workflow_changelist"),
        {"action": "test_on_past_call", "_selected_action": [world.workflow.pk]},
    )

    assert response.status_code == 302
    assert response["Location"] == reverse(
        "admin:crm_agents_workflow_test", args=[world.workflow.pk]
    )


def test_it_tests_a_workflow_on_a_pasted_transcript(world, login, revops):
    response = login(revops).post(
        reverse("admin:crm_agents_workflow_test_paste", args=[world.workflow.pk]),
        PASTED,
        follow=True,
    )

    run = _assert_test_result(response, world)
    assert run.call.source == CallSource.TEST
    assert run.call.external_id.startswith("test-")
    assert run.call.transcript[0]["start"] == 12.0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("attendees", "Jane Doe jane@acme.example", "line 1"),
        ("attendees", "Jane Doe <not-an-email>", "is not an email address"),
        ("transcript", "   ", "This field is required"),
        ("transcript", "no speaker on this line", "line 1"),
    ],
)
def test_a_bad_paste_shows_errors_and_creates_nothing(
    login, revops, workspace, field, value, message
):
    workflow = WorkflowFactory(workspace=workspace)

    response = login(revops).post(
        reverse("admin:crm_agents_workflow_test_paste", args=[workflow.pk]),
        {**PASTED, field: value},
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Call.objects.exists()
    assert not AgentRun.objects.exists()


@pytest.mark.django_db
def test_outsiders_and_reps_cannot_test_a_workflow(login, outsider, rep, workspace):
    workflow = WorkflowFactory(workspace=workspace)
    url = reverse("admin:crm_agents_workflow_test_paste", args=[workflow.pk])

    assert login(outsider).get(url).status_code == 404
    assert login(rep).get(url).status_code == 403


@pytest.mark.django_db
def test_an_outsider_cannot_see_a_test_result(login, outsider, workspace):
    run = AgentRunFactory(workspace=workspace, is_test=True, status=RunStatus.DRY_RUN)
    url = reverse("admin:crm_agents_workflow_test_result", args=[run.pk])

    assert login(outsider).get(url).status_code == 404


def test_transcript_lines_without_times_continue_and_keep_order():
    turns = parse_transcript("Jane: hello\nstill Jane\n[1:02:03] Riley: later\nJane: after")

    assert turns == [
        {"speaker": "Jane", "start": 0, "text": "hello still Jane"},
        {"speaker": "Riley", "start": 3723.0, "text": "later"},
        {"speaker": "Jane", "start": 3723.0, "text": "after"},
    ]
