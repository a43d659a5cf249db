"""No credential reaches a log, an error message, an audit event, a recorded CRM call or a
page, whatever fails: the network, a token the CRM refuses mid-call, a refresh, an OAuth
connect. Each test provokes one failure against the sandbox on both CRMs, then scans
everything the product kept or showed for every token the sandbox ever issued."""

import html
import json
import logging
import re
import socket
import traceback
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.db.models.signals import post_save
from django.urls import reverse

from audit.models import AuditEvent
from integrations import oauth
from integrations.connections import ConnectionProblem, Purpose, resolve_connection
from integrations.crm.errors import CrmError
from integrations.crm.types import ObjectType, SearchQuery
from integrations.models import Connection, ConnectionScope, CrmCall
from integrations.sandbox import seed
from integrations.sandbox.models import SandboxToken

USER, WORKSPACE = ConnectionScope.USER, ConnectionScope.WORKSPACE
CLIENT_SECRETS = {"hubspot": "hs-client-SECRET-4b1d9e", "salesforce": "sf-client-SECRET-77c2aa"}


@pytest.fixture
def closed_url() -> str:
    """A loopback URL nothing listens on: every request to it fails to connect."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def scan(crm_settings, caplog):
    """``scan(*shown)`` asserts that no known secret is in ``shown`` nor in anything the
    product logged or stored; logs are captured at DEBUG from every logger."""
    crm_settings.HUBSPOT_CLIENT_SECRET = CLIENT_SECRETS["hubspot"]
    crm_settings.SALESFORCE_CLIENT_SECRET = CLIENT_SECRETS["salesforce"]
    # Every logger at DEBUG, each on its own: hubspot-api-client sets "urllib3" to WARNING
    # whenever a client is made, which would hide urllib3's request lines.
    caplog.set_level(logging.DEBUG)
    for name in [*logging.root.manager.loggerDict, "urllib3.connectionpool"]:
        caplog.set_level(logging.DEBUG, logger=name)
    # Every token the sandbox issues, kept here: a revoked grant's rows are deleted.
    issued: set[str] = set()

    def remember(sender, instance: SandboxToken, **kwargs) -> None:
        issued.update(token for token in (instance.access_token, instance.refresh_token) if token)

    post_save.connect(remember, sender=SandboxToken, weak=False)

    def _scan(*shown: object) -> None:
        secrets = {*CLIENT_SECRETS.values(), *issued}
        for access, refresh in SandboxToken.objects.values_list("access_token", "refresh_token"):
            secrets |= {access, refresh} - {None, ""}
        places = {
            "shown": [str(item) for item in shown],
            "log": [_logged(record) for record in caplog.records],
            "audit": [
                json.dumps([event.reason, event.context, event.before, event.after], default=str)
                for event in AuditEvent.objects.all()
            ],
            "crm call": list(CrmCall.objects.values_list("error", flat=True)),
            "connection": list(Connection.objects.values_list("last_error", flat=True)),
        }
        leaks = [
            f"{place}: {text[:300]}"
            for place, texts in places.items()
            for text in texts
            if any(secret in text or secret in html.unescape(text) for secret in secrets)
        ]
        assert not leaks, "\n".join(leaks)

    yield _scan
    post_save.disconnect(remember, sender=SandboxToken)


def _logged(record: logging.LogRecord) -> str:
    text = record.getMessage()
    if record.exc_info:
        text += "".join(traceback.format_exception(*record.exc_info))
    return text


def _failure(call) -> str:
    """The message and chain of the exception ``call`` raises, as a log would show them."""
    with pytest.raises((CrmError, ConnectionProblem, oauth.OAuthFailed)) as caught:
        call()
    return "".join(traceback.format_exception(caught.value))


def _search(workspace, provider: str, purpose=Purpose.WORKFLOW, user=None):
    client = resolve_connection(workspace, provider, purpose, user).client()
    return client.search(SearchQuery(ObjectType.DEAL))


# --- the CRM cannot be reached, or refuses the token mid-call ------------------------------


def test_a_crm_that_cannot_be_reached(crm_setup, workspace, ws_admin, scan, closed_url):
    connection = crm_setup.connect(workspace, WORKSPACE, crm_setup.admin, acting_user=ws_admin)
    Connection.objects.filter(pk=connection.pk).update(api_base_url=closed_url)

    failure = _failure(lambda: _search(workspace, crm_setup.provider))

    scan(failure)


def test_a_token_the_crm_refuses_mid_call(crm_setup, workspace, ws_admin, scan):
    crm_setup.connect(workspace, WORKSPACE, crm_setup.admin, acting_user=ws_admin)
    SandboxToken.objects.filter(account=crm_setup.account).update(revoked=True)

    failure = _failure(lambda: _search(workspace, crm_setup.provider))

    assert "AuthExpired" in failure
    scan(failure)


# --- refreshing an OAuth token fails ---------------------------------------------------------


def _expiring(crm_setup, workspace, rep_user) -> Connection:
    return crm_setup.connect(
        workspace, USER, crm_setup.rep, user=rep_user, oauth_expires_in=timedelta(seconds=30)
    )


def test_a_refresh_that_cannot_reach_the_crm(
    crm_setup, workspace, rep_user, scan, crm_settings, closed_url
):
    _expiring(crm_setup, workspace, rep_user)
    crm_settings.HUBSPOT_API_URL = crm_settings.SALESFORCE_LOGIN_URL = closed_url

    failure = _failure(lambda: _search(workspace, crm_setup.provider, Purpose.CHAT, rep_user))

    scan(failure)


def test_a_refresh_the_crm_refuses(crm_setup, workspace, rep_user, scan):
    _expiring(crm_setup, workspace, rep_user)
    SandboxToken.objects.filter(account=crm_setup.account).update(revoked=True)

    failure = _failure(lambda: _search(workspace, crm_setup.provider, Purpose.CHAT, rep_user))

    scan(failure)


def test_a_token_that_expires_mid_call_and_cannot_be_refreshed(
    crm_setup, workspace, rep_user, scan
):
    connection = crm_setup.connect(workspace, USER, crm_setup.rep, user=rep_user)
    SandboxToken.objects.filter(access_token=connection.credentials.access_token).update(
        expires_at="2000-01-01T00:00:00Z", refresh_token=None
    )

    failure = _failure(lambda: _search(workspace, crm_setup.provider, Purpose.CHAT, rep_user))

    scan(failure)


# --- connecting by OAuth or with a token ----------------------------------------------------


def _authorize(client, workspace, provider: str) -> str:
    """Start the connect, and allow it on the sandbox's consent screen: the callback URL."""
    started = client.post(
        reverse("connections:start"),
        {"workspace": workspace.pk, "provider": provider, "scope": USER},
    )
    consent = requests.get(started["Location"], timeout=10)
    action = html.unescape(re.search(r'<form method="post" action="([^"]*)"', consent.text)[1])
    signed = re.search(r'name="consent" value="([^"]+)"', consent.text)[1]
    user = re.search(r'<option value="(\d+)">', consent.text)[1]
    base = "{0.scheme}://{0.netloc}".format(urlsplit(started["Location"]))
    allowed = requests.post(
        base + action,
        data={"consent": signed, "decision": "allow", "user": user},
        timeout=10,
        allow_redirects=False,
    )
    return allowed.headers["Location"]


def _callback(client, location: str):
    query = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
    return client.get(urlsplit(location).path, query, follow=True)


def test_an_oauth_connect_whose_identity_lookup_cannot_reach_the_crm(
    crm_setup, workspace, rep, login, scan, monkeypatch, closed_url
):
    real_get = requests.get

    def identity_unreachable(url, *args, **kwargs):
        # The token exchange works; asking who the token is fails on the network.
        if "/access-tokens/" in url or "/oauth2/userinfo" in url or "/id/" in url:
            url = closed_url + urlsplit(url).path
        return real_get(url, *args, **kwargs)

    client = login(rep)
    location = _authorize(client, workspace, crm_setup.provider)
    monkeypatch.setattr(oauth.requests, "get", identity_unreachable)

    page = _callback(client, location)

    assert "was not connected" in page.content.decode()
    scan(page.content.decode())


def test_an_oauth_connect_and_disconnect_that_work(crm_setup, workspace, rep, login, scan):
    client = login(rep)
    location = _authorize(client, workspace, crm_setup.provider)

    page = _callback(client, location)
    connection = Connection.objects.get(user=rep)
    _search(workspace, crm_setup.provider, Purpose.CHAT, rep)
    ended = client.post(reverse("connections:disconnect", args=[connection.pk]), follow=True)

    assert "Connected" in page.content.decode()
    scan(page.content.decode(), ended.content.decode())


def test_a_pasted_token_the_crm_cannot_be_asked_about(
    crm_setup, workspace, ws_admin, login, scan, crm_settings, closed_url
):
    # An OAuth access token pasted in the form: HubSpot looks it up by putting it in a URL.
    token = seed.issue_token(crm_setup.admin, expires_in=timedelta(minutes=30), refresh=True)
    crm_settings.HUBSPOT_API_URL = closed_url
    page = login(ws_admin).post(
        reverse("connections:token"),
        {
            "workspace": workspace.pk,
            "provider": crm_setup.provider,
            "access_token": token.access_token,
            "instance_url": closed_url,
        },
    )

    assert "The CRM refused it" in page.content.decode()
    scan(page.content.decode())
