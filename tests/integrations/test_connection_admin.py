"""Connections in the admin and on the connect pages: who sees, tests and ends which."""

import re

from django.urls import reverse

from audit.models import AuditEvent
from governance.models import Role
from integrations.models import Connection, ConnectionScope, ConnectionStatus, CrmCall
from tests.factories import member_of

USER, WORKSPACE = ConnectionScope.USER, ConnectionScope.WORKSPACE
CHANGELIST = "admin:integrations_connection_changelist"


def test_the_test_action_reports_what_the_crm_answered(crm_setup, workspace, ws_admin, login):
    connection = crm_setup.connect(workspace, WORKSPACE, crm_setup.admin, acting_user=ws_admin)

    response = login(ws_admin).post(
        reverse(CHANGELIST),
        {"action": "test_connections", "_selected_action": [connection.pk]},
        follow=True,
    )

    assert "works: the CRM lists 4 users" in response.content.decode()
    assert CrmCall.objects.get().operation == "owners"
    tested = AuditEvent.objects.get(action="connection.tested")
    assert (tested.outcome, tested.actor_user, tested.connection) == ("ok", ws_admin, connection)
    assert tested.reason.endswith("works: the CRM lists 4 users.")


def test_the_test_action_reports_a_refused_token(crm_setup, workspace, ws_admin, login):
    from integrations.sandbox.models import SandboxToken

    connection = crm_setup.connect(workspace, WORKSPACE, crm_setup.admin, acting_user=ws_admin)
    SandboxToken.objects.filter(account=crm_setup.account).update(revoked=True)

    response = login(ws_admin).post(
        reverse(CHANGELIST),
        {"action": "test_connections", "_selected_action": [connection.pk]},
        follow=True,
    )

    page = response.content.decode()
    assert "HTTP 401" in page, re.findall(r"<li class=\"error\">(.*?)</li>", page, re.S)
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.EXPIRED
    # The refusal expired the connection (the system's doing), then the person's test failed.
    expired, tested = AuditEvent.objects.order_by("pk").filter(
        action__in=["connection.expired", "connection.tested"]
    )
    assert (expired.action, expired.actor_user) == ("connection.expired", None)
    assert (tested.action, tested.outcome, tested.actor_user) == (
        "connection.tested",
        "failed",
        ws_admin,
    )
    assert "HTTP 401" in tested.reason
    assert connection.credentials.access_token not in tested.reason


def test_reps_see_and_end_only_their_own_connections(
    crm_setup, workspace, ws_admin, rep_user, login
):
    shared = crm_setup.connect(workspace, WORKSPACE, crm_setup.admin, acting_user=ws_admin)
    own = crm_setup.connect(workspace, USER, crm_setup.rep, user=rep_user)
    colleague = member_of(workspace, Role.MEMBER, username="sam@seller.example")
    theirs = crm_setup.connect(workspace, USER, crm_setup.stranger, user=colleague)
    client = login(rep_user)

    listed = client.get(reverse(CHANGELIST)).context["cl"].result_list
    assert [c.pk for c in listed] == [own.pk]
    change = "admin:integrations_connection_change"
    assert client.get(reverse(change, args=[theirs.pk])).status_code == 404
    assert client.get(reverse(change, args=[shared.pk])).status_code == 404
    assert client.post(reverse("connections:disconnect", args=[theirs.pk])).status_code == 404

    client.post(reverse("connections:disconnect", args=[own.pk]))
    assert Connection.objects.get(pk=own.pk).status == ConnectionStatus.REVOKED
    assert Connection.objects.get(pk=theirs.pk).status == ConnectionStatus.ACTIVE


def test_revops_sees_the_workspace_connection_but_only_admins_end_it(
    crm_setup, workspace, ws_admin, revops, login
):
    shared = crm_setup.connect(workspace, WORKSPACE, crm_setup.admin, acting_user=ws_admin)

    listed = login(revops).get(reverse(CHANGELIST)).context["cl"].result_list
    refused = login(revops).post(reverse("connections:disconnect", args=[shared.pk]))
    assert [c.pk for c in listed] == [shared.pk]
    assert refused.status_code == 403

    login(ws_admin).post(reverse("connections:disconnect", args=[shared.pk]))
    assert Connection.objects.get(pk=shared.pk).status == ConnectionStatus.REVOKED


def test_an_admin_connects_with_a_private_app_token_or_session(
    crm_setup, workspace, ws_admin, login
):
    from integrations.sandbox import seed

    token = seed.issue_token(crm_setup.admin).access_token
    data = {
        "workspace": workspace.pk,
        "provider": crm_setup.provider,
        "access_token": token,
        "instance_url": crm_setup.base_url,
    }

    response = login(ws_admin).post(reverse("connections:token"), data)

    assert response.status_code == 302
    connection = Connection.objects.get(workspace=workspace, scope=WORKSPACE)
    assert connection.crm_account_id == crm_setup.account.external_id
    assert connection.credentials.access_token == token


def test_a_token_the_crm_refuses_is_a_form_error(crm_setup, workspace, ws_admin, login):
    data = {
        "workspace": workspace.pk,
        "provider": crm_setup.provider,
        "access_token": "pat-na1-not-a-real-token",
        "instance_url": crm_setup.base_url,
    }

    response = login(ws_admin).post(reverse("connections:token"), data)

    assert response.status_code == 200
    assert "The CRM refused it" in str(response.context["form"].errors)
    assert not Connection.objects.exists()


def test_reps_cannot_use_the_token_form_for_a_workspace(crm_setup, workspace, rep_user, login):
    data = {"workspace": workspace.pk, "provider": crm_setup.provider, "access_token": "x"}

    response = login(rep_user).post(reverse("connections:token"), data)

    assert "workspace" in response.context["form"].errors
    assert not Connection.objects.exists()
