"""POST /api/v1/workflows/<id>/test/: a TEST run on a past call or a pasted one."""

import pytest

from crm_agents.models import AgentRun, Call, CallSource, RunStatus
from tests.factories import CallFactory

pytestmark = pytest.mark.django_db


def _url(workflow) -> str:
    return f"/api/v1/workflows/{workflow.pk}/test/"


def test_it_tests_a_workflow_on_a_past_call(api_as, revops, workspace, workflow):
    call = CallFactory(workspace=workspace)

    response = api_as(revops).post(_url(workflow), {"call_id": call.pk}, format="json")

    assert response.status_code == 202
    run = AgentRun.objects.get(pk=response.json()["id"])
    assert run.is_test
    assert (run.call, run.workflow) == (call, workflow)
    assert run.status == RunStatus.FAILED
    assert "HubSpot is not connected" in run.status_reason
    assert response.json()["status"] == RunStatus.FAILED


def test_it_tests_a_workflow_on_a_pasted_call(api_as, revops, workflow, call_payload):
    pasted = call_payload()
    del pasted["external_id"]

    response = api_as(revops).post(_url(workflow), {"call": pasted}, format="json")

    assert response.status_code == 202
    call = Call.objects.get(pk=response.json()["call"])
    assert call.source == CallSource.TEST
    assert call.external_id.startswith("test-")
    assert AgentRun.objects.get().is_test


def test_a_pasted_call_never_takes_a_real_external_id(api_as, revops, workflow, call_payload):
    client = api_as(revops)
    client.post(_url(workflow), {"call": call_payload()}, format="json")

    real = client.post("/api/v1/calls/", call_payload(), format="json")

    assert real.status_code == 202
    assert real.json()["created"] is True


def test_it_runs_a_past_call_again_each_time(api_as, revops, workspace, workflow):
    call = CallFactory(workspace=workspace)
    client = api_as(revops)

    client.post(_url(workflow), {"call_id": call.pk}, format="json")
    client.post(_url(workflow), {"call_id": call.pk}, format="json")

    assert AgentRun.objects.filter(call=call, is_test=True).count() == 2


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"non_field_errors"}),
        ({"call_id": 1, "call": {}}, {"call.started_at"}),
        ({"call": {"started_at": "2026-11-21T15:00:00"}}, {"call.started_at"}),
        (
            {"call": {"started_at": "2026-11-21T15:00:00Z", "attendees": [{"email": "x"}]}},
            {"call.attendees.0.email"},
        ),
        ({"call_id": "abc"}, {"call_id"}),
    ],
)
def test_it_names_each_bad_value(api_as, revops, workflow, body, errors):
    response = api_as(revops).post(_url(workflow), body, format="json")

    assert response.status_code == 400
    assert set(response.json()) == errors
    assert Call.objects.count() == 0
    assert AgentRun.objects.count() == 0


def test_a_call_of_another_workspace_is_not_found(api_as, revops, other_workspace, workflow):
    foreign = CallFactory(workspace=other_workspace)

    response = api_as(revops).post(_url(workflow), {"call_id": foreign.pk}, format="json")

    assert response.status_code == 404
    assert list(response.json()) == ["call_id"]
    assert AgentRun.objects.count() == 0


def test_a_rep_cannot_test_a_workflow(api_as, rep, workspace, workflow):
    call = CallFactory(workspace=workspace)

    response = api_as(rep).post(_url(workflow), {"call_id": call.pk}, format="json")

    assert response.status_code == 403
    assert AgentRun.objects.count() == 0


def test_an_outsider_gets_404(api_as, outsider, workspace, workflow):
    call = CallFactory(workspace=workspace)

    response = api_as(outsider).post(_url(workflow), {"call_id": call.pk}, format="json")

    assert response.status_code == 404
    assert api_as(outsider).get(f"/api/v1/workflows/{workflow.pk}/").status_code == 404
