"""Workspace API keys and personal tokens: hashed at rest, shown once, revocable; a key
acts with the RevOps role in its own workspace and nowhere else."""

import io

import pytest
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

from audit.models import AuditEvent
from crm_agents.models import Call
from governance.api_auth import ApiKey, ApiToken, hash_secret
from governance.api_keys import do_revoke_api_key
from governance.review_models import ProposalStatus
from tests.factories import (
    ApiKeyFactory,
    ApiTokenFactory,
    CallFactory,
    ChangeProposalFactory,
    CrmPropertyFactory,
)

pytestmark = pytest.mark.django_db


def _client(header: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    return client


def test_a_key_is_stored_only_as_a_hash(api_key):
    stored = ApiKey.objects.get(pk=api_key.pk)

    assert len(api_key.secret) >= 40
    assert stored.key_hash == hash_secret(api_key.secret)
    assert stored.key_hash != api_key.secret
    assert api_key.secret not in str(stored.__dict__.values())
    assert stored.prefix == api_key.secret[:8]


def test_a_key_submits_calls_to_its_workspace(key_client, api_key, workflow, call_payload):
    response = key_client.post("/api/v1/calls/", call_payload(), format="json")

    assert response.status_code == 202
    call = Call.objects.get()
    assert call.workspace == api_key.workspace
    event = AuditEvent.objects.get(action="call.received")
    assert event.actor_label == api_key.actor.username
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_a_key_decides_like_revops(key_client, api_key, workspace):
    CrmPropertyFactory(workspace=workspace, name="amount", type="number")
    proposal = ChangeProposalFactory(workspace=workspace)

    response = key_client.post(
        f"/api/v1/proposals/{proposal.pk}/decide/", {"decision": "approve"}, format="json"
    )

    assert response.status_code == 200
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.APPROVED
    assert proposal.decided_by == api_key.actor


def test_a_key_sees_nothing_of_another_workspace(key_client, other_workspace, call_payload):
    call = CallFactory(workspace=other_workspace)

    assert key_client.get(f"/api/v1/calls/{call.pk}/").status_code == 404
    assert key_client.get("/api/v1/calls/").json()["results"] == []
    posted = key_client.post(
        "/api/v1/calls/", call_payload(workspace=other_workspace.pk), format="json"
    )
    assert posted.status_code == 404


@pytest.mark.parametrize(
    "header",
    ["Api-Key wrong-key-0123456789", "Api-Key", "Api-Key a b", "Token wrong-token-0123456789"],
)
def test_a_wrong_credential_gets_401(header, api_key):
    response = _client(header).get("/api/v1/calls/")

    assert response.status_code == 401


def test_a_wrong_key_with_a_real_prefix_gets_401(api_key):
    forged = api_key.secret[:8] + "x" * 35

    assert _client(f"Api-Key {forged}").get("/api/v1/calls/").status_code == 401


def test_a_revoked_key_gets_401(api_key, key_client, ws_admin):
    assert key_client.get("/api/v1/calls/").status_code == 200

    assert do_revoke_api_key(api_key, acting_user=ws_admin) is True

    response = key_client.get("/api/v1/calls/")
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid or revoked API key."
    assert AuditEvent.objects.filter(action="api_key.revoked").exists()


def test_a_key_cannot_mint_personal_tokens(key_client):
    response = key_client.post("/api/v1/tokens/", {"name": "sneaky"}, format="json")

    assert response.status_code == 403
    assert ApiToken.objects.count() == 0


def test_the_admin_shows_a_new_key_once(login, revops, workspace):
    client = login(revops)

    response = client.post(
        reverse("admin:governance_apikey_add"),
        {"workspace": workspace.pk, "name": "Zapier"},
        follow=True,
    )

    api_key = ApiKey.objects.get(name="Zapier")
    shown = [str(m) for m in response.context["messages"]]
    secret = next(
        word for message in shown for word in message.split() if word.startswith(api_key.prefix)
    )
    assert api_key.key_hash == hash_secret(secret)
    assert api_key.created_by == revops
    page = client.get(reverse("admin:governance_apikey_change", args=[api_key.pk]))
    assert page.status_code == 200
    assert secret not in page.content.decode()
    assert api_key.key_hash not in page.content.decode()
    assert _client(f"Api-Key {secret}").get("/api/v1/calls/").status_code == 200


def test_the_admin_revokes_keys(login, revops, api_key, key_client):
    login(revops).post(
        reverse("admin:governance_apikey_changelist"),
        {"action": "revoke", "_selected_action": [api_key.pk]},
    )

    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert key_client.get("/api/v1/calls/").status_code == 401


def test_a_rep_cannot_see_keys_in_the_admin(login, rep, api_key):
    response = login(rep).get(reverse("admin:governance_apikey_changelist"))

    assert response.status_code == 403


def test_the_command_prints_a_key_once(workspace):
    out, err = io.StringIO(), io.StringIO()

    call_command("create_api_key", workspace.slug, "Gong", stdout=out, stderr=err)

    secret = out.getvalue().strip()
    api_key = ApiKey.objects.get(name="Gong")
    assert api_key.key_hash == hash_secret(secret)
    assert secret not in err.getvalue()


def test_a_person_creates_lists_and_revokes_a_token(api_as, rep, workflow):
    created = api_as(rep).post("/api/v1/tokens/", {"name": "my script"}, format="json")
    assert created.status_code == 201
    secret = created.json()["token"]
    token = ApiToken.objects.get(pk=created.json()["id"])
    assert token.key_hash == hash_secret(secret) != secret
    client = _client(f"Token {secret}")

    assert client.get("/api/v1/calls/").status_code == 200
    listed = client.get("/api/v1/tokens/").json()["results"]
    assert [t["id"] for t in listed] == [token.pk]
    assert "token" not in listed[0]
    assert "key_hash" not in listed[0]

    assert client.delete(f"/api/v1/tokens/{token.pk}/").status_code == 204
    assert client.get("/api/v1/calls/").status_code == 401


def test_a_token_has_its_owners_role(rep, workspace):
    token = ApiTokenFactory(user=rep)
    proposal = ChangeProposalFactory(workspace=workspace)
    client = _client(f"Token {token.secret}")

    assert client.get(f"/api/v1/proposals/{proposal.pk}/").status_code == 200
    decided = client.post(
        f"/api/v1/proposals/{proposal.pk}/decide/", {"decision": "approve"}, format="json"
    )
    assert decided.status_code == 403


def test_nobody_sees_another_persons_tokens(api_as, rep, revops):
    token = ApiTokenFactory(user=revops)

    assert api_as(rep).get("/api/v1/tokens/").json()["results"] == []
    assert api_as(rep).delete(f"/api/v1/tokens/{token.pk}/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_an_inactive_persons_token_gets_401(rep):
    token = ApiTokenFactory(user=rep)
    rep.is_active = False
    rep.save(update_fields=["is_active"])

    assert _client(f"Token {token.secret}").get("/api/v1/calls/").status_code == 401


def test_each_key_has_its_own_actor(workspace):
    first, second = ApiKeyFactory(workspace=workspace), ApiKeyFactory(workspace=workspace)

    assert first.actor != second.actor
    assert not first.actor.has_usable_password()
    assert not first.actor.is_staff
