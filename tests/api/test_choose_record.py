"""Answering "which record?" over the API: once for the call, by those who decide; a set
not waiting for a choice, or a record that is not a candidate, is refused with the reason."""

import pytest
from django.utils import timezone

from crm_agents import tasks
from crm_agents.models import AgentRun, RunStatus
from governance.models import Role
from governance.review_models import SetStatus
from tests.factories import AgentRunFactory, ChangeSetFactory, member_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch) -> list[int]:
    """The runs sent to the workers; no CRM is needed."""
    queued: list[int] = []
    monkeypatch.setattr(tasks.run_workflow, "delay", queued.append)
    return queued


@pytest.fixture
def question(workspace):
    run = AgentRunFactory(
        workspace=workspace,
        call__runs_created_at=timezone.now(),
        status=RunStatus.AMBIGUOUS,
        candidates=[
            {"id": "501", "name": "Acme (EU)", "score": 0.7, "reasons": []},
            {"id": "502", "name": "Acme (US)", "score": 0.7, "reasons": []},
        ],
    )
    question = ChangeSetFactory(
        workspace=workspace, run=run, status=SetStatus.NEEDS_CHOICE, record_id="", record_name=""
    )
    AgentRun.objects.filter(pk=run.pk).update(waits_on=question)
    return question


def _choose(client, change_set, **body):
    return client.post(f"/api/v1/change-sets/{change_set.pk}/choose/", body, format="json")


def test_revops_answers_once_for_every_workflow_of_the_call(
    api_as, revops, question, sent, django_capture_on_commit_callbacks
):
    other = AgentRunFactory(
        workspace=question.workspace,
        call=question.run.call,
        status=RunStatus.AMBIGUOUS,
        waits_on=question,
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = _choose(api_as(revops), question, record_id="502")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["question"]["status"] == SetStatus.CHOSEN
    assert body["question"]["record_name"] == "Acme (US)"
    assert body["continued_runs"] == [question.run_id, other.pk]
    assert body["change_sets"] == []  # sent to the workers, not done yet
    assert sorted(sent) == sorted(body["continued_runs"])


def test_a_set_not_waiting_for_a_choice_is_a_conflict(api_as, revops, workspace, sent):
    pending = ChangeSetFactory(workspace=workspace)

    response = _choose(api_as(revops), pending, record_id="9001")

    assert response.status_code == 409
    assert response.json()["detail"] == (
        "this change set is not waiting for a choice of record (it is waiting for review)"
    )
    assert sent == []


def test_a_question_answered_already_is_a_conflict(api_as, revops, question, sent):
    client = api_as(revops)
    _choose(client, question, record_id="502")

    response = _choose(client, question, record_id="501")

    assert response.status_code == 409
    assert response.json()["detail"] == "this question was already answered: Acme (US) was chosen"


def test_a_record_that_is_not_a_candidate_is_refused(api_as, revops, question, sent):
    response = _choose(api_as(revops), question, record_id="999")

    assert response.status_code == 400
    assert response.json()["detail"] == "999 is not one of the candidate records"
    question.refresh_from_db()
    assert question.status == SetStatus.NEEDS_CHOICE


def test_a_rep_cannot_choose(api_as, rep, question, sent):
    assert _choose(api_as(rep), question, record_id="502").status_code == 403
    assert sent == []


def test_an_outsider_gets_404(api_as, other_workspace, question, sent):
    outsider = member_of(other_workspace, Role.ADMIN, username="olga@globex.example")

    assert _choose(api_as(outsider), question, record_id="502").status_code == 404


def test_a_run_says_which_question_it_waits_on(api_as, rep, question):
    other = AgentRunFactory(
        workspace=question.workspace,
        call=question.run.call,
        status=RunStatus.AMBIGUOUS,
        waits_on=question,
    )

    body = api_as(rep).get(f"/api/v1/runs/{other.pk}/").json()

    assert body["status"] == RunStatus.AMBIGUOUS
    assert body["waits_on"] == question.pk
