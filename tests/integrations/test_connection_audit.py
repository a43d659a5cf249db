"""Connecting, disconnecting and failed refreshes are audit events naming who (or the system)
and why, and never holding a token."""

import json
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from integrations import oauth
from integrations.connections import (
    ConnectionExpired,
    ConnectionFailed,
    Purpose,
    refresh_connection,
    resolve_connection,
)
from integrations.models import Connection, ConnectionScope, ConnectionStatus, Credentials
from integrations.sandbox import seed
from integrations.sandbox.models import SandboxToken
from tests.factories import ConnectionFactory

USER, WORKSPACE = ConnectionScope.USER, ConnectionScope.WORKSPACE
REFRESH_TOKEN = "refresh-THIS-IS-SECRET-0123456789"
ACCESS_TOKEN = "access-THIS-IS-SECRET-9876543210"


def _event(action: str) -> AuditEvent:
    return AuditEvent.objects.get(action=action)


def _text(event: AuditEvent) -> str:
    return json.dumps([event.reason, event.before, event.after, event.context])


def test_connecting_and_reconnecting_with_a_token_is_audited(crm_setup, workspace, ws_admin, login):
    token = seed.issue_token(crm_setup.admin).access_token
    data = {
        "workspace": workspace.pk,
        "provider": crm_setup.provider,
        "access_token": token,
        "instance_url": crm_setup.base_url,
    }
    client = login(ws_admin)

    client.post(reverse("connections:token"), data)
    client.post(reverse("connections:token"), data)

    connection = Connection.objects.get(workspace=workspace, scope=WORKSPACE)
    connected, reconnected = _event("connection.connected"), _event("connection.reconnected")
    assert connected.actor_user == ws_admin
    assert connected.connection == connection
    assert connected.crm == crm_setup.provider
    assert connected.scope == WORKSPACE
    assert connected.before is None
    assert connected.after["crm_account_id"] == crm_setup.account.external_id
    assert reconnected.before == connected.after
    assert token not in _text(connected) + _text(reconnected)


def test_a_refused_token_is_audited_as_a_failed_connect(crm_setup, workspace, ws_admin, login):
    data = {
        "workspace": workspace.pk,
        "provider": crm_setup.provider,
        "access_token": "pat-na1-not-a-real-token",
        "instance_url": crm_setup.base_url,
    }

    login(ws_admin).post(reverse("connections:token"), data)

    event = _event("connection.connect_failed")
    assert (event.outcome, event.actor_user, event.connection) == ("failed", ws_admin, None)
    assert "was not connected" in event.reason
    assert "pat-na1-not-a-real-token" not in _text(event)


def _start_oauth(client, workspace) -> str:
    started = client.post(
        reverse("connections:start"),
        {"workspace": workspace.pk, "provider": "salesforce", "scope": USER},
    )
    return parse_qs(urlparse(started["Location"]).query)["state"][0]


@pytest.mark.django_db
def test_an_oauth_connect_is_audited(workspace, rep, login, monkeypatch):
    identity = oauth.Identity("00Dorg", "005user", "riley@acme.example", "https://sf.example")
    monkeypatch.setattr(
        oauth, "exchange_code", lambda *a, **k: (Credentials(ACCESS_TOKEN, REFRESH_TOKEN), identity)
    )
    client = login(rep)
    state = _start_oauth(client, workspace)

    client.get(reverse("connections:callback", args=["salesforce"]), {"state": state, "code": "c"})

    event = _event("connection.connected")
    assert (event.actor_user, event.scope, event.crm) == (rep, USER, "salesforce")
    assert event.connection == Connection.objects.get(user=rep)
    assert ACCESS_TOKEN not in _text(event)
    assert REFRESH_TOKEN not in _text(event)


@pytest.mark.django_db
def test_a_failed_oauth_connect_is_audited_without_the_token_in_a_url(
    workspace, rep, login, monkeypatch
):
    def refuse(*args, **kwargs):
        url = f"https://api.hubapi.com/oauth/v1/access-tokens/{ACCESS_TOKEN}"
        raise oauth.OAuthFailed(f"could not reach {url}: ConnectionError", permanent=False)

    monkeypatch.setattr(oauth, "exchange_code", refuse)
    client = login(rep)
    state = _start_oauth(client, workspace)

    client.get(reverse("connections:callback", args=["salesforce"]), {"state": state, "code": "c"})

    event = _event("connection.connect_failed")
    assert (event.outcome, event.actor_user) == ("failed", rep)
    assert "could not reach https://api.hubapi.com/…: ConnectionError" in event.reason
    assert ACCESS_TOKEN not in _text(event)
    assert not Connection.objects.exists()


@pytest.mark.django_db
def test_disconnecting_is_audited_once(workspace, ws_admin, login):
    connection = ConnectionFactory(workspace=workspace, token=ACCESS_TOKEN)
    client = login(ws_admin)

    client.post(reverse("connections:disconnect", args=[connection.pk]))
    client.post(reverse("connections:disconnect", args=[connection.pk]))

    event = _event("connection.disconnected")  # the second found it already revoked
    assert event.actor_user == ws_admin
    assert (event.before, event.after) == ({"status": "active"}, {"status": "revoked"})
    assert ACCESS_TOKEN not in _text(event)


def test_a_refused_refresh_is_audited_with_the_reason(crm_setup, workspace, rep_user):
    connection = crm_setup.connect(
        workspace, USER, crm_setup.rep, user=rep_user, oauth_expires_in=timedelta(seconds=30)
    )
    credentials = connection.credentials
    SandboxToken.objects.filter(account=crm_setup.account).update(revoked=True, refresh_token=None)

    with pytest.raises(ConnectionExpired):
        resolve_connection(workspace, crm_setup.provider, Purpose.CHAT, rep_user)

    event = _event("connection.refresh_failed")
    assert (event.outcome, event.actor_kind, event.connection) == ("failed", "system", connection)
    assert event.reason.startswith("refresh refused:")
    assert (event.before, event.after) == ({"status": "active"}, {"status": "expired"})
    assert credentials.access_token not in _text(event)
    assert credentials.refresh_token not in _text(event)


@pytest.fixture
def expiring(workspace):
    connection = ConnectionFactory(workspace=workspace)
    soon = (timezone.now() + timedelta(seconds=5)).isoformat()
    connection.set_credentials(Credentials(ACCESS_TOKEN, REFRESH_TOKEN, soon))
    connection.save()
    return connection


@pytest.mark.django_db
def test_a_refresh_that_cannot_reach_the_crm_is_audited_without_a_token(expiring, monkeypatch):
    def unreachable(provider, refresh_token):
        raise oauth.OAuthFailed(
            f"could not reach https://crm.example/tokens/{refresh_token}?a={ACCESS_TOKEN}",
            permanent=False,
        )

    monkeypatch.setattr(oauth, "refresh", unreachable)

    with pytest.raises(ConnectionFailed):
        refresh_connection(expiring)

    event = _event("connection.refresh_failed")
    assert event.reason == "refresh failed, will retry: could not reach https://crm.example/…"
    assert (event.before, event.after) == ({"status": "active"}, {"status": "active"})
    assert REFRESH_TOKEN not in _text(event)
    assert ACCESS_TOKEN not in _text(event)
    expiring.refresh_from_db()
    assert expiring.status == ConnectionStatus.ACTIVE
    assert REFRESH_TOKEN not in expiring.last_error


@pytest.mark.django_db
def test_an_expired_token_without_a_refresh_token_is_audited(workspace):
    connection = ConnectionFactory(workspace=workspace)
    past = (timezone.now() - timedelta(minutes=1)).isoformat()
    connection.set_credentials(Credentials(ACCESS_TOKEN, None, past))
    connection.save()

    with pytest.raises(ConnectionExpired):
        refresh_connection(connection)

    event = _event("connection.refresh_failed")
    assert event.reason == "the access token expired and there is no refresh token"
    assert event.after == {"status": "expired"}


def test_a_token_the_crm_refuses_expires_the_connection_once_audited(
    crm_setup, workspace, ws_admin
):
    from integrations.crm.errors import AuthExpired
    from integrations.crm.types import ObjectType, SearchQuery

    connection = crm_setup.connect(workspace, WORKSPACE, crm_setup.admin, acting_user=ws_admin)
    token = connection.credentials.access_token
    SandboxToken.objects.filter(access_token=token).update(revoked=True)
    client = resolve_connection(workspace, crm_setup.provider, Purpose.WORKFLOW).client()

    for _ in range(2):  # the second refusal changes nothing and is not audited again
        with pytest.raises(AuthExpired):
            client.search(SearchQuery(ObjectType.DEAL))

    event = _event("connection.expired")
    assert (event.outcome, event.actor_kind, event.connection) == ("failed", "system", connection)
    assert (event.before, event.after) == ({"status": "active"}, {"status": "expired"})
    assert event.reason.startswith("the CRM refused the token:")
    assert token not in _text(event)
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.EXPIRED
    assert connection.last_error == event.reason
