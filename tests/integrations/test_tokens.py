"""Token refresh under a lock, and tokens that nobody can read: not the database dump, the
admin, the logs, nor an error message."""

import io
import json
import logging
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection as db
from django.db import connections as db_connections
from django.urls import reverse

from integrations import crypto
from integrations.connections import (
    ConnectionExpired,
    Purpose,
    refresh_connection,
    resolve_connection,
)
from integrations.crm.errors import CrmError
from integrations.crm.types import ObjectType, SearchQuery
from integrations.models import Connection, ConnectionScope, ConnectionStatus
from integrations.sandbox.models import SandboxRequest, SandboxToken

USER, WORKSPACE = ConnectionScope.USER, ConnectionScope.WORKSPACE


def test_a_token_about_to_expire_is_refreshed_before_use(crm_setup, workspace, rep_user):
    connection = crm_setup.connect(
        workspace, USER, crm_setup.rep, user=rep_user, oauth_expires_in=timedelta(seconds=30)
    )
    old_token = connection.credentials.access_token

    resolved = resolve_connection(workspace, crm_setup.provider, Purpose.CHAT, rep_user)
    resolved.client().search(SearchQuery(ObjectType.DEAL))

    connection.refresh_from_db()
    assert connection.credentials.access_token != old_token
    assert connection.status == ConnectionStatus.ACTIVE
    assert SandboxToken.objects.filter(access_token=connection.credentials.access_token).exists()


def test_a_token_the_crm_expired_early_is_refreshed_and_the_call_retried(
    crm_setup, workspace, rep_user
):
    connection = crm_setup.connect(workspace, USER, crm_setup.rep, user=rep_user)
    # The CRM ends the session although CRM Steward believed it still valid.
    SandboxToken.objects.filter(access_token=connection.credentials.access_token).update(
        expires_at="2000-01-01T00:00:00Z"
    )

    client = resolve_connection(workspace, crm_setup.provider, Purpose.CHAT, rep_user).client()
    page = client.search(SearchQuery(ObjectType.DEAL))

    assert page.total == 0
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.ACTIVE
    assert list(connection.calls.values_list("outcome", flat=True)) == ["ok"]


def test_a_refused_refresh_marks_the_connection_expired_and_says_so(crm_setup, workspace, rep_user):
    connection = crm_setup.connect(
        workspace, USER, crm_setup.rep, user=rep_user, oauth_expires_in=timedelta(seconds=30)
    )
    SandboxToken.objects.filter(account=crm_setup.account).update(revoked=True, refresh_token=None)

    with pytest.raises(ConnectionExpired) as caught:
        resolve_connection(workspace, crm_setup.provider, Purpose.CHAT, rep_user)

    assert "could not be refreshed" in caught.value.message
    assert "reconnect it at http://127.0.0.1:8000/connections/" in caught.value.message
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.EXPIRED
    assert connection.last_error.startswith("refresh refused:")


SECRET = "pat-na1-THIS-IS-THE-SECRET-0123456789"


@pytest.fixture
def secret_connection(workspace, ws_admin):
    from tests.factories import ConnectionFactory

    return ConnectionFactory(workspace=workspace, token=SECRET)


@pytest.mark.django_db
def test_tokens_are_encrypted_in_the_database(secret_connection):
    with db.cursor() as cursor:
        cursor.execute("SELECT * FROM integrations_connection")
        rows = cursor.fetchall()

    assert SECRET not in repr(rows)
    assert secret_connection.credentials.access_token == SECRET


@pytest.mark.django_db
def test_tokens_are_not_in_a_database_dump(secret_connection):
    dump = io.StringIO()
    # The sandbox app stands in for the CRMs themselves; it keeps their side of the tokens.
    call_command("dumpdata", exclude=["sandbox"], stdout=dump)

    assert SECRET not in dump.getvalue()
    assert "encrypted_credentials" in dump.getvalue()


@pytest.mark.django_db
def test_tokens_are_not_shown_in_the_admin(secret_connection, ws_admin, login):
    client = login(ws_admin)
    pages = [
        client.get(reverse("admin:integrations_connection_changelist")),
        client.get(reverse("admin:integrations_connection_change", args=[secret_connection.pk])),
        client.get(reverse("connections:list")),
    ]

    for page in pages:
        assert page.status_code == 200
        assert SECRET not in page.content.decode()
    assert "encrypted_credentials" not in pages[1].content.decode()


def test_tokens_are_not_logged_or_put_in_errors(crm_setup, workspace, ws_admin, caplog):
    caplog.set_level(logging.DEBUG)
    connection = crm_setup.connect(workspace, WORKSPACE, crm_setup.admin, acting_user=ws_admin)
    token = connection.credentials.access_token
    client = resolve_connection(workspace, crm_setup.provider, Purpose.WORKFLOW).client()
    client.search(SearchQuery(ObjectType.DEAL))
    with pytest.raises(CrmError) as caught:
        client.get(
            ObjectType.DEAL,
            "0060000000000000AAA" if crm_setup.provider == "salesforce" else "999999",
            ["name"],
        )

    product_logs = [
        r
        for r in caplog.records
        if not r.name.startswith(("django.request", "integrations.sandbox"))
    ]
    assert token not in "\n".join(r.getMessage() for r in product_logs)
    assert token not in str(caught.value)
    assert token not in repr(connection.credentials)
    assert token not in json.dumps(list(connection.calls.values("error", "connection_label")))


@pytest.mark.django_db
def test_tokens_are_not_in_the_api(secret_connection, ws_admin, outsider, login):
    listed = login(ws_admin).get("/api/v1/connections/")
    detail = login(ws_admin).get(f"/api/v1/connections/{secret_connection.pk}/")

    assert listed.status_code == 200
    assert [row["id"] for row in listed.json()["results"]] == [secret_connection.pk]
    assert SECRET not in listed.content.decode() + detail.content.decode()
    assert login(outsider).get(f"/api/v1/connections/{secret_connection.pk}/").status_code == 404


@pytest.mark.django_db
def test_keys_rotate_without_losing_credentials(secret_connection, settings):
    settings.FIELD_ENCRYPTION_KEYS = ["a-brand-new-key-for-2027", *settings.FIELD_ENCRYPTION_KEYS]
    call_command("rotate_encryption_keys", stdout=io.StringIO())
    settings.FIELD_ENCRYPTION_KEYS = ["a-brand-new-key-for-2027"]  # the old key is retired

    assert Connection.objects.get().credentials.access_token == SECRET


@pytest.mark.django_db
def test_a_missing_key_is_a_clear_error(secret_connection, settings):
    settings.FIELD_ENCRYPTION_KEYS = ["some-other-key"]

    with pytest.raises(crypto.DecryptionFailed, match="rotate_encryption_keys"):
        Connection.objects.get().credentials  # noqa: B018


@pytest.mark.parametrize("lock", ["row lease", "redis"])
def test_concurrent_workers_refresh_a_token_once(crm_setup, workspace, rep_user, settings, lock):
    if db.vendor == "sqlite":
        pytest.skip(
            "needs concurrent writers: the in-memory SQLite test database locks whole "
            "tables between threads (the PostgreSQL run covers this)"
        )
    if lock == "redis":
        from tests.test_celery_redis import REDIS_URL, _redis_reachable

        if not _redis_reachable():
            pytest.skip(f"Redis is unreachable at {REDIS_URL}")
        settings.REDIS_URL = REDIS_URL
    connection = crm_setup.connect(
        workspace, USER, crm_setup.rep, user=rep_user, oauth_expires_in=timedelta(seconds=30)
    )
    barrier = threading.Barrier(3)
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            refresh_connection(Connection.objects.get(pk=connection.pk))
        except BaseException as exc:  # collected for the assertion below
            failures.append(exc)
        finally:
            db_connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    token_calls = SandboxRequest.objects.filter(
        account=crm_setup.account, path__in=["/oauth/v1/token", "/services/oauth2/token"]
    )
    assert token_calls.count() == 1
    connection.refresh_from_db()
    assert connection.refresh_lease_until is None
