"""Chat over the API: sessions are their user's alone, a message runs one real agent turn
(sandbox CRM and rules-mode model), bad bodies get 400s that say what is wrong, and a
workspace API key cannot chat."""

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from crm_agents.chat.services import MAX_MESSAGE_CHARS, do_start_chat_session
from crm_agents.chat_models import ChatMessage, ChatRole, ChatSession
from governance.models import Role
from governance.review_models import ChangeSet, SetStatus
from tests.agents import conftest as agents_conftest
from tests.factories import ApiTokenFactory, MembershipFactory

pytestmark = pytest.mark.django_db

SESSIONS = "/api/v1/chat-sessions/"

# The agents' connected sandbox world (both providers), for turns that reach a CRM.
world = agents_conftest.world


def _messages_url(session_id: int) -> str:
    return f"{SESSIONS}{session_id}/messages/"


@pytest.fixture
def rep_session(rep, workspace) -> ChatSession:
    return do_start_chat_session(workspace, rep, "hubspot")


# --- starting and listing sessions --------------------------------------------------------------
def test_it_starts_a_session_in_the_callers_only_workspace(api_as, rep, workspace):
    response = api_as(rep).post(SESSIONS, {"provider": "salesforce"}, format="json")

    assert response.status_code == 201
    body = response.json()
    session = ChatSession.objects.get()
    assert (session.user, session.workspace, session.provider) == (rep, workspace, "salesforce")
    assert body["id"] == session.pk
    assert body["workspace"] == workspace.pk
    assert body["provider"] == "salesforce"
    assert body["title"] == ""
    assert body["url"].endswith(f"{SESSIONS}{session.pk}/")
    assert body["messages_url"].endswith(_messages_url(session.pk))
    assert body.keys() >= {"created_at", "updated_at"}


def test_it_starts_a_session_in_the_named_workspace_with_a_title(
    api_as, rep, workspace, other_workspace
):
    MembershipFactory(workspace=other_workspace, user=rep, role=Role.MEMBER)

    response = api_as(rep).post(
        SESSIONS,
        {"provider": "hubspot", "workspace": other_workspace.pk, "title": "  Q4 deals  "},
        format="json",
    )

    assert response.status_code == 201
    session = ChatSession.objects.get()
    assert session.workspace == other_workspace
    assert session.title == "Q4 deals"


def test_a_person_in_several_workspaces_must_name_one(api_as, rep, other_workspace):
    MembershipFactory(workspace=other_workspace, user=rep, role=Role.MEMBER)

    response = api_as(rep).post(SESSIONS, {"provider": "hubspot"}, format="json")

    assert response.status_code == 400
    assert "workspace" in response.json()
    assert not ChatSession.objects.exists()


def test_a_workspace_the_caller_is_not_in_is_a_404(api_as, rep, other_workspace):
    response = api_as(rep).post(
        SESSIONS, {"provider": "hubspot", "workspace": other_workspace.pk}, format="json"
    )

    assert response.status_code == 404
    assert not ChatSession.objects.exists()


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"provider": "pipedrive"}, "provider", "'hubspot' or 'salesforce'"),
        ({}, "provider", "Field required"),
        ({"provider": "hubspot", "workspace": "acme"}, "workspace", "integer"),
        ({"provider": "hubspot", "title": "x" * 201}, "title", "200 characters"),
        ({"provider": "hubspot", "crm": "hubspot"}, "crm", "Unknown field."),
        (["hubspot"], "non_field_errors", "object"),
    ],
    ids=["unknown-provider", "no-provider", "bad-workspace", "long-title", "extra", "list"],
)
def test_a_bad_session_body_is_a_400_naming_the_field(api_as, rep, body, field, says):
    response = api_as(rep).post(SESSIONS, body, format="json")

    assert response.status_code == 400
    assert says in " ".join(response.json()[field])
    assert not ChatSession.objects.exists()


def test_a_body_that_is_not_json_is_a_400(api_as, rep, rep_session):
    client = api_as(rep)

    started = client.post(SESSIONS, "provider=hubspot", content_type="application/json")
    posted = client.post(
        _messages_url(rep_session.pk), "{text: hi", content_type="application/json"
    )

    assert started.status_code == 400
    assert "JSON parse error" in started.json()["detail"]
    assert posted.status_code == 400
    assert "JSON parse error" in posted.json()["detail"]
    assert ChatSession.objects.count() == 1
    assert not ChatMessage.objects.exists()


def test_the_list_shows_only_the_callers_own_sessions(
    api_as, rep, revops, outsider, workspace, other_workspace
):
    mine = do_start_chat_session(workspace, rep, "hubspot", title="Mine")
    do_start_chat_session(workspace, revops, "hubspot", title="A colleague's")
    do_start_chat_session(other_workspace, outsider, "hubspot", title="Another workspace's")

    response = api_as(rep).get(SESSIONS)

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [mine.pk]


def test_the_list_filters_by_workspace_and_provider(api_as, rep, workspace, other_workspace):
    MembershipFactory(workspace=other_workspace, user=rep, role=Role.MEMBER)
    here = do_start_chat_session(workspace, rep, "hubspot")
    there = do_start_chat_session(other_workspace, rep, "salesforce")
    client = api_as(rep)

    def ids(query: str) -> list[int]:
        return [row["id"] for row in client.get(f"{SESSIONS}?{query}").json()["results"]]

    assert ids(f"workspace={workspace.pk}") == [here.pk]
    assert ids("provider=salesforce") == [there.pk]
    assert sorted(ids("")) == sorted([here.pk, there.pk])
    assert client.get(f"{SESSIONS}?workspace=acme").status_code == 400


def test_a_personal_token_and_a_login_both_chat(rep, workspace, login):
    token = ApiTokenFactory(user=rep)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.secret}")

    started = client.post(SESSIONS, {"provider": "hubspot"}, format="json")
    listed = login(rep).get(SESSIONS)

    assert started.status_code == 201
    assert ChatSession.objects.get().user == rep
    assert [row["id"] for row in listed.json()["results"]] == [started.json()["id"]]


def test_an_anonymous_caller_gets_401(api_as, rep_session):
    assert api_as().get(SESSIONS).status_code == 401
    assert api_as().post(_messages_url(rep_session.pk), {"text": "hi"}).status_code == 401


# --- who may see a session ----------------------------------------------------------------------
def test_the_owner_reads_their_session(api_as, rep, rep_session):
    response = api_as(rep).get(f"{SESSIONS}{rep_session.pk}/")

    assert response.status_code == 200
    assert response.json()["id"] == rep_session.pk


@pytest.mark.parametrize("caller", ["revops", "ws_admin", "outsider"])
def test_anyone_else_gets_404_as_for_a_missing_session(request, api_as, caller, rep_session):
    client = api_as(request.getfixturevalue(caller))
    missing = rep_session.pk + 1000

    for session_id in (rep_session.pk, missing):
        assert client.get(f"{SESSIONS}{session_id}/").status_code == 404
        assert client.get(_messages_url(session_id)).status_code == 404
        posted = client.post(_messages_url(session_id), {"text": "find acme"}, format="json")
        assert posted.status_code == 404
    assert client.get(SESSIONS).json()["results"] == []
    assert not ChatMessage.objects.exists()


def test_a_session_id_that_is_not_a_number_is_a_404(api_as, rep):
    assert api_as(rep).get(f"{SESSIONS}acme/").status_code == 404


def test_a_workspace_api_key_cannot_chat(key_client, rep_session, workspace):
    attempts = [
        key_client.get(SESSIONS),
        key_client.post(SESSIONS, {"provider": "hubspot"}, format="json"),
        key_client.get(f"{SESSIONS}{rep_session.pk}/"),
        key_client.get(_messages_url(rep_session.pk)),
        key_client.post(_messages_url(rep_session.pk), {"text": "find acme"}, format="json"),
    ]

    for response in attempts:
        assert response.status_code == 403
        assert "personal API token" in response.json()["detail"]
    assert ChatSession.objects.count() == 1
    assert not ChatMessage.objects.exists()


# --- messages ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"text": "   "}, "Type a message first."),
        ({"text": "x" * (MAX_MESSAGE_CHARS + 1)}, f"at most {MAX_MESSAGE_CHARS}"),
        ({}, "Field required"),
        ({"text": 42}, "valid string"),
        ({"message": "hi"}, "Field required"),
    ],
    ids=["blank", "too-long", "missing", "not-a-string", "misnamed"],
)
def test_a_bad_message_is_a_400_and_stores_nothing(api_as, rep, rep_session, body, says):
    response = api_as(rep).post(_messages_url(rep_session.pk), body, format="json")

    assert response.status_code == 400
    assert says in " ".join(response.json()["text"])
    assert not ChatMessage.objects.exists()


def test_a_message_while_a_turn_runs_is_a_409_in_the_service_words(api_as, rep, rep_session):
    # A turn is still running in this session (a double click, a second tab).
    ChatSession.objects.filter(pk=rep_session.pk).update(turn_started_at=timezone.now())

    response = api_as(rep).post(_messages_url(rep_session.pk), {"text": "hi"}, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "I am still answering your previous message in this chat; wait for my reply."
    }
    assert not ChatMessage.objects.exists()


def test_without_a_crm_connection_the_reply_says_to_connect(api_as, rep, rep_session):
    response = api_as(rep).post(
        _messages_url(rep_session.pk), {"text": "find the Acme Logistics deal"}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert body["message"]["role"] == ChatRole.USER
    assert body["message"]["content"] == "find the Acme Logistics deal"
    reply = body["reply"]
    assert reply["role"] == ChatRole.ASSISTANT
    assert reply["activity"]["error"]["kind"] == "connection"
    assert "connect" in reply["content"].lower()
    assert not ChangeSet.objects.exists()


def test_a_rep_finds_a_deal_and_proposes_a_change_for_review(api_as, rep, world):
    world.policy.force_workspace_connection_for_chat = True
    world.policy.save(update_fields=["force_workspace_connection_for_chat"])
    client = api_as(rep)
    session_id = client.post(SESSIONS, {"provider": world.provider}, format="json").json()["id"]

    found = client.post(
        _messages_url(session_id), {"text": "find the Acme Logistics deal"}, format="json"
    )
    proposed = client.post(
        _messages_url(session_id), {"text": "set its close date to 2027-01-15"}, format="json"
    )

    assert found.status_code == 201, found.json()
    first = found.json()["reply"]
    assert first["activity"]["error"] is None, first
    assert world.deal.crm_id in [record["id"] for record in first["activity"]["found"]]
    assert "Acme Logistics" in first["content"]

    assert proposed.status_code == 201, proposed.json()
    second = proposed.json()
    assert second["message"]["content"] == "set its close date to 2027-01-15"
    [change] = second["reply"]["activity"]["proposed"]
    assert change["id"] == world.deal.crm_id
    change_set = ChangeSet.objects.get(pk=change["change_set"])
    assert change_set.chat_session_id == session_id
    assert change_set.requested_by == rep
    assert change_set.status == SetStatus.PENDING_REVIEW
    assert change["url"]
    assert "review" in second["reply"]["content"]
    # Waiting for review: nothing has been written to the CRM.
    assert world.deal_value("close_date") == "2026-12-31"

    conversation = client.get(_messages_url(session_id)).json()
    assert conversation["count"] == 4
    assert [m["role"] for m in conversation["results"]] == ["user", "assistant"] * 2
    assert conversation["results"][3]["id"] == second["reply"]["id"]
    assert conversation["results"][3]["activity"] == second["reply"]["activity"]
    session = client.get(f"{SESSIONS}{session_id}/").json()
    assert session["title"] == "find the Acme Logistics deal"
