"""POST /api/v1/calls/: a call in, runs started, once per external id; bad bodies get 400
naming each bad value, and store nothing."""

import pytest

from audit.models import AuditEvent
from crm_agents.models import AgentRun, Call, RunStatus
from tests.factories import CallFactory, CallMatchFactory, WorkflowFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/calls/"


def test_it_accepts_a_call_and_starts_its_runs(
    api_as, rep, workflow, call_payload, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(rep).post(URL, call_payload(), format="json")

    assert response.status_code == 202
    body = response.json()
    call = Call.objects.get(pk=body["id"])
    assert body["created"] is True
    assert call.external_id == "gong-4711"
    assert call.workspace == workflow.workspace
    assert call.owner_email == "riley@acme.example"
    run = AgentRun.objects.get(call=call)
    assert [r["id"] for r in body["runs"]] == [run.pk]
    assert body["runs"][0]["url"].endswith(f"/api/v1/runs/{run.pk}/")
    assert body["url"].endswith(f"/api/v1/calls/{call.pk}/")
    # No CRM is connected in this workspace: the run ran, and says what to connect.
    assert run.status == RunStatus.FAILED
    assert "HubSpot is not connected" in run.status_reason
    # The answer says what was queued: the runs start once the call is committed.
    assert body["runs"][0]["status"] == RunStatus.QUEUED


def test_it_records_who_submitted_the_call(api_as, rep, workflow, call_payload):
    api_as(rep).post(URL, call_payload(), format="json")

    event = AuditEvent.objects.get(action="call.received")
    assert event.actor_user == rep


def test_it_creates_nothing_for_a_resubmitted_call(api_as, rep, workflow, call_payload):
    client = api_as(rep)
    first = client.post(URL, call_payload(), format="json").json()

    again = client.post(URL, call_payload(title="Renamed"), format="json")

    assert again.status_code == 200
    assert again.json()["created"] is False
    assert again.json()["id"] == first["id"]
    assert [r["id"] for r in again.json()["runs"]] == [r["id"] for r in first["runs"]]
    assert Call.objects.count() == 1
    assert AgentRun.objects.count() == 1
    assert Call.objects.get().title == "Acme pricing call"


def test_it_starts_no_run_when_no_trigger_matches(api_as, rep, workspace, call_payload):
    WorkflowFactory(workspace=workspace, trigger_title_contains="renewal")

    response = api_as(rep).post(URL, call_payload(), format="json")

    assert response.status_code == 202
    assert response.json()["runs"] == []


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"started_at": None}, {"started_at"}),
        ({"started_at": "2026-11-21T15:00:00"}, {"started_at"}),
        ({"external_id": ""}, {"external_id"}),
        ({"duration_s": -1}, {"duration_s"}),
        ({"colour": "blue"}, {"colour"}),
        (
            {"attendees": [{"email": "riley@acme.example"}, {"email": "not-an-email"}]},
            {"attendees.1.email"},
        ),
        ({"transcript": [{"speaker": "Jane", "start": -3, "text": "Hi"}]}, {"transcript.0.start"}),
        ({"transcript": [{"speaker": "Jane", "text": "Hi"}]}, {"transcript.0.start"}),
    ],
)
def test_it_names_each_bad_value(api_as, rep, workflow, call_payload, change, errors):
    payload = {k: v for k, v in call_payload(**change).items() if v is not None}

    response = api_as(rep).post(URL, payload, format="json")

    assert response.status_code == 400
    assert set(response.json()) == errors
    assert Call.objects.count() == 0
    assert AgentRun.objects.count() == 0


def test_its_messages_say_what_is_wrong(api_as, rep, workflow, call_payload):
    payload = call_payload(
        started_at="2026-11-21T15:00:00",
        attendees=[{"email": "x"}],
        colour="blue",
    )
    del payload["external_id"]

    errors = api_as(rep).post(URL, payload, format="json").json()

    assert errors == {
        "external_id": ["Field required"],
        "started_at": ["give a time zone, e.g. 2026-11-21T15:00:00Z"],
        "attendees.0.email": ["'x' is not an email address"],
        "colour": ["Unknown field."],
    }


def test_it_refuses_a_body_that_is_not_json(api_as, rep, workflow):
    response = api_as(rep).post(URL, "{not json", content_type="application/json")

    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]
    assert Call.objects.count() == 0


def test_it_refuses_a_body_that_is_not_an_object(api_as, rep, workflow):
    response = api_as(rep).post(URL, ["a", "list"], format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["non_field_errors"]


def test_it_refuses_a_form_encoded_body(api_as, rep, workflow, call_payload):
    response = api_as(rep).post(URL, {"external_id": "x"})

    assert response.status_code == 415


def test_it_asks_which_workspace_when_the_caller_has_several(
    api_as, rep, other_workspace, workflow, call_payload
):
    from governance.models import Membership, Role

    Membership.objects.create(workspace=other_workspace, user=rep, role=Role.MEMBER)
    client = api_as(rep)

    unnamed = client.post(URL, call_payload(), format="json")
    named = client.post(URL, call_payload(workspace=other_workspace.pk), format="json")

    assert unnamed.status_code == 400
    assert list(unnamed.json()) == ["workspace"]
    assert named.status_code == 202
    assert Call.objects.get().workspace == other_workspace


def test_an_outsider_cannot_submit_into_another_workspace(
    api_as, outsider, workspace, workflow, call_payload
):
    response = api_as(outsider).post(URL, call_payload(workspace=workspace.pk), format="json")

    assert response.status_code == 404
    assert Call.objects.count() == 0


def test_anonymous_callers_are_refused(api_as, workflow, call_payload):
    response = api_as().post(URL, call_payload(), format="json")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Api-Key"
    assert Call.objects.count() == 0


def test_it_lists_and_shows_the_callers_calls_only(api_as, rep, workspace, other_workspace):
    mine = CallFactory(workspace=workspace)
    theirs = CallFactory(workspace=other_workspace)
    client = api_as(rep)

    listed = client.get(URL).json()["results"]
    detail = client.get(f"{URL}{mine.pk}/")

    assert [c["id"] for c in listed] == [mine.pk]
    assert detail.status_code == 200
    assert detail.json()["transcript"] == mine.transcript
    assert client.get(f"{URL}{theirs.pk}/").status_code == 404


def test_an_outsider_gets_404_for_a_call(api_as, outsider, workspace):
    call = CallFactory(workspace=workspace)

    assert api_as(outsider).get(f"{URL}{call.pk}/").status_code == 404
    assert api_as(outsider).get(URL).json()["results"] == []


def test_a_calls_detail_says_which_record_it_matched_and_why(api_as, rep, workspace):
    match = CallMatchFactory(
        workspace=workspace,
        candidates=[
            {
                "id": "10001",
                "name": "Acme platform",
                "score": 1.05,
                "reasons": ["the call's title names “platform” from the deal's name"],
            },
            {"id": "10002", "name": "Acme support", "score": 0.65, "reasons": []},
        ],
    )
    CallMatchFactory(  # still being matched: not shown until it is done
        workspace=workspace, call=match.call, object_type="contact", matched_at=None
    )

    body = api_as(rep).get(f"{URL}{match.call.pk}/").json()

    assert body["matches"] == [
        {
            "provider": "hubspot",
            "object_type": "deal",
            "record_id": "10001",
            "record_name": "Acme platform",
            "reason": "the only candidate: Acme platform",
            "confidence": 0.95,
            "ambiguous": False,
            "candidates": match.candidates,
            "matched_by_run": None,
            "matched_at": body["matches"][0]["matched_at"],
        }
    ]
    assert body["matches"][0]["matched_at"].startswith(str(match.matched_at.date()))
