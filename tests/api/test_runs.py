"""GET /api/v1/runs/ and /api/v1/workflows/: what a run did and why, scoped by workspace;
the prompt and the model's raw answer for RevOps and admins only."""

import pytest

from crm_agents.models import RunStatus
from tests.factories import AgentRunFactory, CallFactory, WorkflowFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(workspace):
    return AgentRunFactory(
        workspace=workspace,
        status=RunStatus.PENDING_REVIEW,
        prompt="SYSTEM: the policy says…",
        prompt_hash="ab" * 32,
        model="sandbox-rules-1",
        raw_answer='{"fields": []}',
        prompt_tokens=812,
        completion_tokens=64,
        timings={"match": 12.0, "total": 40.5},
        crm_requests=3,
        candidates=[{"id": "501", "name": "Acme renewal", "score": 0.9, "reasons": ["owner"]}],
        record_id="501",
        record_name="Acme renewal",
    )


def test_it_shows_a_run_with_its_decisions(api_as, revops, run):
    body = api_as(revops).get(f"/api/v1/runs/{run.pk}/").json()

    assert body["status"] == RunStatus.PENDING_REVIEW
    assert body["candidates"][0]["id"] == "501"
    assert body["record_name"] == "Acme renewal"
    assert (body["prompt_tokens"], body["completion_tokens"]) == (812, 64)
    assert body["timings"]["total"] == 40.5
    assert body["crm_requests"] == 3
    assert body["prompt_hash"] == "ab" * 32
    assert body["prompt"] == "SYSTEM: the policy says…"
    assert body["raw_answer"] == '{"fields": []}'


def test_a_rep_sees_the_run_but_not_its_prompt(api_as, rep, run):
    body = api_as(rep).get(f"/api/v1/runs/{run.pk}/").json()

    assert body["prompt_hash"] == "ab" * 32
    assert "prompt" not in body
    assert "raw_answer" not in body


def test_it_filters_runs(api_as, rep, workspace):
    failed = AgentRunFactory(workspace=workspace, status=RunStatus.FAILED)
    pending = AgentRunFactory(workspace=workspace, status=RunStatus.PENDING_REVIEW)
    client = api_as(rep)

    def ids(query: str) -> list[int]:
        return [r["id"] for r in client.get(f"/api/v1/runs/?{query}").json()["results"]]

    assert ids("status=failed") == [failed.pk]
    assert ids(f"call={pending.call_id}") == [pending.pk]
    assert ids(f"workflow={failed.workflow_id}") == [failed.pk]
    assert ids("is_test=true") == []
    assert sorted(ids("")) == sorted([failed.pk, pending.pk])


def test_it_refuses_a_filter_that_is_not_an_id(api_as, rep):
    response = api_as(rep).get("/api/v1/runs/?call=abc")

    assert response.status_code == 400
    assert list(response.json()) == ["call"]


def test_an_outsider_gets_404_for_a_run(api_as, outsider, run):
    client = api_as(outsider)

    assert client.get(f"/api/v1/runs/{run.pk}/").status_code == 404
    assert client.get("/api/v1/runs/").json()["results"] == []
    assert client.get(f"/api/v1/runs/?workspace={run.workspace_id}").json()["results"] == []


def test_it_lists_workflows_with_their_rules(api_as, rep, workspace, other_workspace):
    mine = WorkflowFactory(workspace=workspace)
    WorkflowFactory(workspace=other_workspace)

    listed = api_as(rep).get("/api/v1/workflows/").json()["results"]

    assert [w["id"] for w in listed] == [mine.pk]
    assert listed[0]["rules"] == []


def test_a_call_lists_its_runs(api_as, rep, workspace):
    call = CallFactory(workspace=workspace)
    run = AgentRunFactory(workspace=workspace, call=call)

    body = api_as(rep).get(f"/api/v1/calls/{call.pk}/").json()

    assert [r["id"] for r in body["runs"]] == [run.pk]
