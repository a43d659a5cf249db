"""The rep's chat page (/chat/): private sessions, the new-chat and message forms, and what
the agent did under each reply."""

import pytest
from django.test import Client
from django.urls import reverse

from crm_agents.chat.services import MAX_MESSAGE_CHARS, do_start_chat_session
from crm_agents.chat_models import ChatMessage, ChatRole, ChatSession
from governance.models import Role
from governance.review_models import ChangeSet, ProposalStatus
from tests.factories import ChangeProposalFactory, ChangeSetFactory, MembershipFactory, member_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(workspace, rep) -> ChatSession:
    return do_start_chat_session(workspace, rep, "hubspot", title="Acme renewal")


def _say(session: ChatSession, role: str, content: str, activity: dict | None = None):
    return ChatMessage.objects.create(
        workspace=session.workspace,
        session=session,
        role=role,
        content=content,
        activity=activity or {},
    )


def test_it_lists_only_the_users_own_sessions_newest_first(workspace, rep, login):
    older = do_start_chat_session(workspace, rep, "hubspot", title="Older chat")
    newer = do_start_chat_session(workspace, rep, "salesforce", title="Newer chat")
    sam = member_of(workspace, Role.MEMBER, username="sam@acme.example")
    do_start_chat_session(workspace, sam, "hubspot", title="Sam's chat")

    response = login(rep).get(reverse("chat:list"))

    assert response.status_code == 200
    page = response.content.decode()
    assert page.index("Newer chat") < page.index("Older chat")
    assert "Sam&#x27;s chat" not in page
    assert reverse("chat:session", args=[older.pk]) in page
    assert reverse("chat:session", args=[newer.pk]) in page


def test_it_asks_for_the_workspace_only_when_there_are_several(workspace, other_workspace, rep):
    client = Client()
    client.force_login(rep)
    assert 'type="hidden" name="workspace"' in client.get(reverse("chat:list")).content.decode()

    MembershipFactory(workspace=other_workspace, user=rep, role=Role.MEMBER)
    page = client.get(reverse("chat:list")).content.decode()
    assert '<select name="workspace"' in page
    assert other_workspace.name in page


def test_it_starts_a_chat_and_opens_it(workspace, rep, login):
    response = login(rep).post(
        reverse("chat:start"), {"workspace": workspace.pk, "provider": "salesforce"}
    )

    session = ChatSession.objects.get(user=rep)
    assert response.status_code == 302
    assert response["Location"] == reverse("chat:session", args=[session.pk])
    assert (session.workspace, session.provider) == (workspace, "salesforce")


def test_it_refuses_a_workspace_the_user_is_not_in(rep, other_workspace, login):
    response = login(rep).post(
        reverse("chat:start"), {"workspace": other_workspace.pk, "provider": "hubspot"}
    )

    assert response.status_code == 400
    assert not ChatSession.objects.exists()


def test_it_refuses_an_unknown_crm(workspace, rep, login):
    response = login(rep).post(reverse("chat:start"), {"workspace": workspace.pk, "provider": "x"})

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not ChatSession.objects.exists()


def test_another_users_chat_is_a_404(workspace, session, outsider, login):
    sam = member_of(workspace, Role.MEMBER, username="sam@acme.example")
    url = reverse("chat:session", args=[session.pk])
    for user in (sam, outsider):
        client = login(user)
        assert client.get(url).status_code == 404
        assert client.post(url, {"text": "set its amount to 1"}).status_code == 404
    assert not session.messages.exists()


def test_a_missing_chat_is_a_404(rep, login):
    assert login(rep).get(reverse("chat:session", args=[999999])).status_code == 404


def test_a_chat_in_a_workspace_the_user_left_is_a_404(workspace, session, rep, login):
    rep.memberships.filter(workspace=workspace).delete()

    assert login(rep).get(reverse("chat:session", args=[session.pk])).status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(session):
    for url in (reverse("chat:list"), reverse("chat:session", args=[session.pk])):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


def test_sending_needs_the_csrf_token(session, rep):
    client = Client(enforce_csrf_checks=True)
    client.force_login(rep)

    response = client.post(reverse("chat:session", args=[session.pk]), {"text": "hello"})

    assert response.status_code == 403
    assert not session.messages.exists()


def test_it_shows_the_conversation_in_the_admin_look(session, rep, login):
    _say(session, ChatRole.USER, "find the Acme deal")
    # A tool call and its result are kept for the record, not shown as messages.
    ChatMessage.objects.create(
        workspace=session.workspace,
        session=session,
        role=ChatRole.ASSISTANT,
        tool_calls=[{"id": "1", "name": "find_records", "arguments": "{}"}],
    )
    ChatMessage.objects.create(
        workspace=session.workspace,
        session=session,
        role=ChatRole.TOOL,
        content='{"secret": "tool payload"}',
    )
    _say(session, ChatRole.ASSISTANT, "I found Acme Platform.")

    page = login(rep).get(reverse("chat:session", args=[session.pk])).content.decode()

    assert 'class="breadcrumbs"' in page
    assert "<title>Acme renewal | CRM Steward</title>" in page
    assert "find the Acme deal" in page
    assert "I found Acme Platform." in page
    assert "tool payload" not in page
    assert 'name="csrfmiddlewaretoken"' in page
    assert reverse("chat:list") in page


def test_it_renders_what_the_agent_did(workspace, session, rep, login):
    change_set = ChangeSetFactory(workspace=workspace, run=None, chat_session=session)
    ChangeProposalFactory(
        workspace=workspace,
        change_set=change_set,
        field="close_date",
        proposed_value="2027-03-31",
        status=ProposalStatus.PENDING,
    )
    _say(
        session,
        ChatRole.ASSISTANT,
        "I proposed the new close date.",
        activity={
            "found": [
                {
                    "object_type": "deal",
                    "id": "5001",
                    "label": "Acme Platform",
                    "url": "https://app.hubspot.com/contacts/1/record/0-3/5001",
                }
            ],
            "read": [
                {
                    "object_type": "deal",
                    "id": "5001",
                    "label": "Acme Platform",
                    "url": "",
                    "values": {"Close date": "2026-12-31"},
                }
            ],
            "proposed": [
                {
                    "change_set": change_set.pk,
                    "object_type": "deal",
                    "id": "5001",
                    "label": "Acme Platform",
                    "field": "close_date",
                    "field_label": "Close date",
                    "value": "2027-03-31",
                    "status": "pending",
                    "status_label": "Waiting for review",
                    "url": "/admin/governance/changeset/1/change/",
                }
            ],
            "refused": [{"tool": "propose_update", "reason": "Stage changes are not allowed."}],
            "error": None,
            "steps": 3,
        },
    )

    page = login(rep).get(reverse("chat:session", args=[session.pk])).content.decode()

    assert 'href="https://app.hubspot.com/contacts/1/record/0-3/5001"' in page
    assert "Close date of Acme Platform: <strong>2026-12-31</strong>" in page
    review = reverse("admin:governance_changeset_change", args=[change_set.pk])
    assert f'href="{review}"' in page
    assert "2027-03-31" in page
    assert "Waiting for review" in page
    assert "Stage changes are not allowed." in page
    assert "errornote" not in page


def test_a_proposals_status_is_the_current_one(workspace, session, rep, login):
    change_set = ChangeSetFactory(workspace=workspace, run=None, chat_session=session)
    ChangeProposalFactory(
        workspace=workspace, change_set=change_set, field="amount", status=ProposalStatus.APPLIED
    )
    proposed = {"change_set": change_set.pk, "field": "amount", "field_label": "Amount"}
    _say(
        session,
        ChatRole.ASSISTANT,
        "Proposed.",
        activity={"proposed": [proposed | {"value": "75000", "status_label": "Waiting"}]},
    )

    page = login(rep).get(reverse("chat:session", args=[session.pk])).content.decode()

    assert '<span class="status">Applied</span>' in page
    assert ChangeSet.objects.get().chat_session == session


def test_an_error_is_shown_as_an_error(session, rep, login):
    message = (
        "You have not connected your own HubSpot account, and chat works on your own "
        "permissions: connect it at /connections/."
    )
    _say(
        session,
        ChatRole.ASSISTANT,
        message,
        activity={"error": {"kind": "connection", "message": message}},
    )

    page = login(rep).get(reverse("chat:session", args=[session.pk])).content.decode()

    assert 'class="errornote chat-error error-connection"' in page
    assert "You have not connected your own HubSpot account" in page


def test_the_user_tools_link_to_chat(rep, login):
    page = login(rep).get(reverse("admin:index")).content.decode()

    assert f'href="{reverse("chat:list")}" id="chat-link"' in page


@pytest.mark.parametrize(
    ("text", "error"),
    [("   ", "Type a message first."), ("x" * (MAX_MESSAGE_CHARS + 1), "at most")],
)
def test_a_message_the_service_refuses_is_shown_as_an_error(session, rep, login, text, error):
    response = login(rep).post(reverse("chat:session", args=[session.pk]), {"text": text})

    assert response.status_code == 400
    assert error in response.content.decode()
    assert not session.messages.exists()


def test_sending_runs_a_turn_and_redirects_back(session, rep, login):
    client = login(rep)
    url = reverse("chat:session", args=[session.pk])

    response = client.post(url, {"text": "list my open deals"})

    assert response.status_code == 302
    assert response["Location"] == url
    page = client.get(url).content.decode()
    reply = session.messages.get(role=ChatRole.ASSISTANT)  # the real turn's (no connection)
    assert page.index("list my open deals") < page.index(reply.content.split(":")[0])


def test_a_turn_without_the_reps_own_connection_says_what_to_connect(session, rep, login):
    client = login(rep)
    url = reverse("chat:session", args=[session.pk])

    assert client.post(url, {"text": "list my open deals"}).status_code == 302

    page = client.get(url).content.decode()
    assert 'class="errornote chat-error error-connection"' in page
    assert "HubSpot" in page.split("chat-error", 1)[1]
