"""Every branch of connection resolution, on both CRMs, with the words each error uses."""

import pytest

from governance.models import Policy
from integrations.connections import (
    ConnectionExpired,
    ConnectionFailed,
    ConnectionMissing,
    ConnectionRevoked,
    Purpose,
    resolve_connection,
)
from integrations.crm.types import ObjectType, SearchQuery
from integrations.models import ConnectionScope, ConnectionStatus, CrmCall

WORKSPACE, USER = ConnectionScope.WORKSPACE, ConnectionScope.USER


def test_workflows_use_the_workspace_connection(crm_setup, workspace, ws_admin, rep_user):
    shared = crm_setup.connect(workspace, WORKSPACE, crm_setup.admin, acting_user=ws_admin)
    crm_setup.connect(workspace, USER, crm_setup.rep, user=rep_user)

    resolved = resolve_connection(workspace, crm_setup.provider, Purpose.WORKFLOW)
    resolved.client().search(SearchQuery(ObjectType.DEAL))

    assert resolved.connection == shared
    assert resolved.scope == WORKSPACE
    call = CrmCall.objects.get()
    assert (call.connection, call.scope, call.purpose, call.outcome) == (
        shared,
        WORKSPACE,
        "workflow",
        "ok",
    )


def test_a_workflow_never_borrows_a_reps_connection(crm_setup, workspace, rep_user):
    crm_setup.connect(workspace, USER, crm_setup.rep, user=rep_user)
    name = "HubSpot" if crm_setup.provider == "hubspot" else "Salesforce"

    with pytest.raises(ConnectionMissing) as caught:
        resolve_connection(workspace, crm_setup.provider, Purpose.WORKFLOW)

    assert caught.value.message == (
        f"{name} is not connected for the workspace Acme Sales: a workspace admin must connect "
        f"it at http://127.0.0.1:8000/connections/ ('Connect {name} for the workspace')."
    )


def test_chat_uses_the_reps_own_connection(crm_setup, workspace, ws_admin, rep_user):
    crm_setup.connect(workspace, WORKSPACE, crm_setup.admin, acting_user=ws_admin)
    own = crm_setup.connect(workspace, USER, crm_setup.rep, user=rep_user)

    resolved = resolve_connection(workspace, crm_setup.provider, Purpose.CHAT, rep_user)
    resolved.client().search(SearchQuery(ObjectType.DEAL))

    assert resolved.connection == own
    call = CrmCall.objects.get()
    assert (call.scope, call.purpose, call.acting_user) == (USER, "chat", rep_user)


def test_chat_never_falls_back_to_the_workspace_connection(
    crm_setup, workspace, ws_admin, rep_user
):
    crm_setup.connect(workspace, WORKSPACE, crm_setup.admin, acting_user=ws_admin)

    with pytest.raises(ConnectionMissing) as caught:
        resolve_connection(workspace, crm_setup.provider, Purpose.CHAT, rep_user)

    assert caught.value.message.startswith("You have not connected your own ")
    assert "connect it at http://127.0.0.1:8000/connections/" in caught.value.message
    assert "does not use the workspace connection unless an admin turns that on" in (
        caught.value.message
    )


def test_the_admin_override_makes_chat_use_the_workspace_connection(
    crm_setup, workspace, ws_admin, rep_user
):
    shared = crm_setup.connect(workspace, WORKSPACE, crm_setup.admin, acting_user=ws_admin)
    crm_setup.connect(workspace, USER, crm_setup.rep, user=rep_user)
    Policy.objects.create(
        workspace=workspace, provider=crm_setup.provider, force_workspace_connection_for_chat=True
    )

    resolved = resolve_connection(workspace, crm_setup.provider, Purpose.CHAT, rep_user)

    assert resolved.connection == shared
    assert "a workspace admin made chat use it" in resolved.reason


def test_the_override_without_a_workspace_connection_says_whom_to_ask(
    crm_setup, workspace, rep_user
):
    crm_setup.connect(workspace, USER, crm_setup.rep, user=rep_user)
    Policy.objects.create(
        workspace=workspace, provider=crm_setup.provider, force_workspace_connection_for_chat=True
    )

    with pytest.raises(ConnectionMissing) as caught:
        resolve_connection(workspace, crm_setup.provider, Purpose.CHAT, rep_user)

    assert "has chat use the workspace's" in caught.value.message
    assert "ask a workspace admin to connect" in caught.value.message


@pytest.mark.parametrize(
    ("status", "problem", "words"),
    [
        (ConnectionStatus.EXPIRED, ConnectionExpired, "has expired"),
        (ConnectionStatus.REVOKED, ConnectionRevoked, "was disconnected"),
        (ConnectionStatus.ERROR, ConnectionFailed, "is failing"),
    ],
)
def test_an_unusable_connection_says_what_is_wrong_and_who_fixes_it(
    crm_setup, workspace, ws_admin, rep_user, status, problem, words
):
    shared = crm_setup.connect(workspace, WORKSPACE, crm_setup.admin, acting_user=ws_admin)
    own = crm_setup.connect(workspace, USER, crm_setup.rep, user=rep_user)
    for connection in (shared, own):
        connection.status, connection.last_error = status, "the CRM said no"
        connection.save()

    with pytest.raises(problem) as workflow:
        resolve_connection(workspace, crm_setup.provider, Purpose.WORKFLOW)
    with pytest.raises(problem) as chat:
        resolve_connection(workspace, crm_setup.provider, Purpose.CHAT, rep_user)

    assert f"connection {words}" in workflow.value.message
    assert "a workspace admin must reconnect it" in workflow.value.message
    assert chat.value.message.startswith("Your ")
    assert "reconnect it at http://127.0.0.1:8000/connections/" in chat.value.message


@pytest.mark.django_db
def test_chat_without_a_user_is_a_programming_error(workspace):
    with pytest.raises(ValueError, match="acting user"):
        resolve_connection(workspace, "hubspot", Purpose.CHAT)


def test_reconnecting_replaces_the_connection_in_its_slot(crm_setup, workspace, rep_user):
    first = crm_setup.connect(workspace, USER, crm_setup.rep, user=rep_user)
    second = crm_setup.connect(workspace, USER, crm_setup.teammate, user=rep_user)

    assert first.pk == second.pk
    second.refresh_from_db()
    assert second.crm_user_email == "morgan@seller.example"
