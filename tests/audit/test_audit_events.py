"""The audit trail: append-only, hash-chained per workspace, verified by audit_verify."""

import csv
import io
import json
import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection as db
from django.db import connections as db_connections
from django.urls import reverse

from audit.models import GENESIS_HASH, AppendOnlyError, AuditEvent
from audit.services import REDACTED, record_event, verify_chain
from integrations.models import Connection
from tests.factories import AuditEventFactory, ConnectionFactory

pytestmark = pytest.mark.django_db


def _raw_sql(sql: str, params: list[object]) -> None:
    """Change the table behind the ORM's back, as someone with database access could."""
    table = db.ops.quote_name(AuditEvent._meta.db_table)
    with db.cursor() as cursor:
        cursor.execute(sql.format(table=table), params)


def _verify(*args: str) -> tuple[str, str, CommandError | None]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit_verify", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), err.getvalue(), exc
    return out.getvalue(), err.getvalue(), None


# --- appending ---------------------------------------------------------------------------


def test_it_appends_events_in_a_chain(workspace):
    events = [AuditEventFactory(workspace=workspace) for _ in range(3)]

    stored = list(AuditEvent.objects.filter(workspace=workspace).order_by("sequence"))
    assert [event.sequence for event in stored] == [1, 2, 3]
    assert stored[0].previous_hash == GENESIS_HASH
    assert stored[1].previous_hash == events[0].hash
    assert stored[2].previous_hash == events[1].hash
    assert all(event.hash == event.compute_hash() for event in stored)
    assert len({event.hash for event in stored}) == 3
    assert verify_chain(workspace) == []


def test_it_numbers_each_workspace_on_its_own(workspace, other_workspace):
    AuditEventFactory(workspace=workspace)
    AuditEventFactory(workspace=workspace)
    first_elsewhere = AuditEventFactory(workspace=other_workspace)

    assert first_elsewhere.sequence == 1
    assert first_elsewhere.previous_hash == GENESIS_HASH
    assert AuditEventFactory(workspace=workspace).sequence == 3


def test_it_records_who_did_what_through_which_connection(workspace, revops):
    connection = ConnectionFactory(workspace=workspace, provider="salesforce")

    event = record_event(
        workspace,
        action="crm.write.denied",
        outcome="denied",
        actor_kind="user",
        actor_user=revops,
        object_type="deal",
        record_id=6001,
        field="stage",
        before="Discovery",
        after="Closed Won",
        connection=connection,
        reason="stage changes are off in the policy",
        workflow_label="Deal hygiene",
    )

    event = AuditEvent.objects.get(pk=event.pk)
    assert event.actor_label == revops.username
    assert event.crm == "salesforce"
    assert event.scope == connection.scope
    assert event.connection_label == str(connection)
    assert event.record_id == "6001"
    assert (event.before, event.after) == ("Discovery", "Closed Won")
    assert event.hash == event.compute_hash()


def test_it_stores_values_as_json_that_hash_the_same_when_read_back(workspace):
    event = record_event(
        workspace,
        action="crm.write",
        outcome="ok",
        before=Decimal("1000.50"),
        after={"amount": 2.0, "huge": 1e300, "ratio": 0.1, "tags": {"b", "a"}},
        context={"read_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "prompt_tokens": 12},
    )

    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.before == "1000.50"
    assert stored.after == {"amount": 2, "huge": "1e+300", "ratio": 0.1, "tags": ["a", "b"]}
    assert stored.context == {"read_at": "2026-01-02T03:04:05Z", "prompt_tokens": 12}
    assert stored.hash == stored.compute_hash()


def test_it_refuses_values_that_are_not_json(workspace):
    with pytest.raises(TypeError, match="context must be JSON-serialisable"):
        record_event(workspace, action="crm.read", outcome="ok", context={"client": object()})

    assert not AuditEvent.objects.exists()


def test_it_never_stores_credentials(workspace):
    event = record_event(
        workspace,
        action="crm.read",
        outcome="failed",
        context={"request": {"headers": {"Authorization": "Bearer pat-na1-secret"}}},
        after={"refresh_token": "abc", "name": "Acme"},
    )

    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.context == {"request": {"headers": {"Authorization": REDACTED}}}
    assert stored.after == {"refresh_token": REDACTED, "name": "Acme"}
    assert "secret" not in json.dumps([stored.context, stored.after])


def test_it_refuses_a_connection_of_another_workspace(workspace, other_workspace):
    foreign = ConnectionFactory(workspace=other_workspace)

    with pytest.raises(ValueError, match="does not belong"):
        record_event(workspace, action="crm.read", outcome="ok", connection=foreign)


@pytest.mark.parametrize(
    ("field", "value"), [("outcome", "maybe"), ("actor_kind", "robot"), ("scope", "team")]
)
def test_it_refuses_unknown_kinds(workspace, field, value):
    fields = {"action": "crm.read", "outcome": "ok", field: value}

    with pytest.raises(ValueError, match="Unknown"):
        record_event(workspace, **fields)


# --- append-only ------------------------------------------------------------------------


def test_an_event_cannot_be_saved_again(workspace):
    event = AuditEventFactory(workspace=workspace)
    event.reason = "nothing to see here"

    with pytest.raises(AppendOnlyError, match="cannot be changed"):
        event.save()


def test_an_event_cannot_be_deleted(workspace):
    event = AuditEventFactory(workspace=workspace)

    with pytest.raises(AppendOnlyError, match="cannot be deleted"):
        event.delete()

    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda events: events.update(reason="x"), id="update"),
        pytest.param(lambda events: events.delete(), id="delete"),
        pytest.param(lambda events: events.bulk_update(list(events), ["reason"]), id="bulk_update"),
        pytest.param(lambda events: events.bulk_create([AuditEvent()]), id="bulk_create"),
    ],
)
def test_querysets_refuse_changes(workspace, change):
    AuditEventFactory(workspace=workspace)

    with pytest.raises(AppendOnlyError, match="append"):
        change(AuditEvent.objects.filter(workspace=workspace))

    assert verify_chain(workspace) == []


def test_an_event_cannot_skip_the_chain(workspace):
    with pytest.raises(AppendOnlyError, match="record_event"):
        AuditEvent.objects.create(workspace=workspace, sequence=1, action="crm.read", outcome="ok")


def test_events_survive_the_deletion_of_their_user_and_connection(workspace, revops):
    connection = ConnectionFactory(workspace=workspace)
    event = record_event(
        workspace, action="crm.read", outcome="ok", actor_user=revops, connection=connection
    )
    label = event.connection_label

    Connection.objects.filter(pk=connection.pk).delete()
    get_user_model().objects.filter(pk=revops.pk).delete()

    event = AuditEvent.objects.get(pk=event.pk)
    assert (event.actor_user, event.connection) == (None, None)
    assert (event.actor_label, event.connection_label) == ("robin@acme.example", label)
    assert verify_chain(workspace) == []


# --- audit_verify -----------------------------------------------------------------------


def test_audit_verify_passes_an_intact_chain(workspace, other_workspace):
    for _ in range(3):
        AuditEventFactory(workspace=workspace)

    out, err, error = _verify()

    assert error is None
    assert "acme-sales: OK (3 events)" in out
    assert "globex-sales: OK (0 events)" in out
    assert err == ""


def test_audit_verify_finds_an_edited_event(workspace, other_workspace):
    events = [AuditEventFactory(workspace=workspace, reason="policy") for _ in range(3)]
    AuditEventFactory(workspace=other_workspace)
    _raw_sql("UPDATE {table} SET reason = %s WHERE id = %s", ["edited", events[1].pk])

    out, err, error = _verify()

    assert error is not None
    assert error.returncode == 1
    assert err.splitlines() == [
        "acme-sales #2: hash mismatch, the event was changed after it was written"
    ]
    assert "globex-sales: OK (1 events)" in out


def test_audit_verify_finds_a_deleted_event(workspace):
    events = [AuditEventFactory(workspace=workspace) for _ in range(4)]
    _raw_sql("DELETE FROM {table} WHERE id = %s", [events[1].pk])

    _, err, error = _verify("--workspace", workspace.slug)

    assert error is not None
    assert error.returncode == 1
    assert err.splitlines() == [
        "acme-sales #3: sequence gap, #2 missing (deleted?)",
        "acme-sales #3: previous_hash does not match the preceding event's hash",
    ]


def test_audit_verify_names_an_unknown_workspace(workspace):
    _, _, error = _verify("--workspace", "nope")

    assert error is not None
    assert "No workspace" in str(error)


# --- concurrency ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_keep_the_chain_intact(workspace):
    if db.vendor == "sqlite":
        pytest.skip(
            "needs concurrent writers: the in-memory SQLite test database locks whole "
            "tables between threads (the PostgreSQL run covers this)"
        )
    workers, each = 4, 10
    barrier = threading.Barrier(workers)
    failures: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            barrier.wait()
            for index in range(each):
                record_event(workspace, action="crm.read", outcome="ok", reason=f"{number}.{index}")
        except BaseException as exc:  # collected for the assertion below
            failures.append(exc)
        finally:
            db_connections.close_all()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    sequences = AuditEvent.objects.filter(workspace=workspace).values_list("sequence", flat=True)
    assert sorted(sequences) == list(range(1, workers * each + 1))
    assert verify_chain(workspace) == []


# --- admin ------------------------------------------------------------------------------


def _admin_url(view: str, *args: object) -> str:
    return reverse(f"admin:audit_auditevent_{view}", args=args)


def test_revops_reads_the_trail_of_their_workspace_only(workspace, other_workspace, revops, login):
    own = AuditEventFactory(workspace=workspace)
    foreign = AuditEventFactory(workspace=other_workspace)
    client = login(revops)

    listed = client.get(_admin_url("changelist")).context["cl"].result_list

    assert [event.pk for event in listed] == [own.pk]
    assert client.get(_admin_url("change", own.pk)).status_code == 200
    assert client.get(_admin_url("history", own.pk)).status_code == 200
    assert client.get(_admin_url("change", foreign.pk)).status_code == 404
    assert client.get(_admin_url("history", foreign.pk)).status_code == 404


def test_reps_do_not_see_the_trail(workspace, rep, login):
    AuditEventFactory(workspace=workspace)

    assert login(rep).get(_admin_url("changelist")).status_code == 403


@pytest.mark.parametrize("user", ["revops", "superuser"])
def test_nobody_adds_changes_or_deletes_events_in_the_admin(workspace, user, login, request):
    event = AuditEventFactory(workspace=workspace, reason="as written")
    client = login(request.getfixturevalue(user))

    page = client.get(_admin_url("change", event.pk))
    posted = client.post(_admin_url("change", event.pk), {"reason": "rewritten"})

    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert b'name="_save"' not in page.content
    assert posted.status_code == 403
    assert client.get(_admin_url("add")).status_code == 403
    assert client.post(_admin_url("delete", event.pk), {"post": "yes"}).status_code == 403
    assert "delete_selected" not in page.context.get("actions", {})
    assert AuditEvent.objects.get(pk=event.pk).reason == "as written"
    assert verify_chain(workspace) == []


def test_it_exports_the_filtered_list_as_csv(workspace, other_workspace, revops, login):
    AuditEventFactory(workspace=workspace, action="crm.read")
    written = AuditEventFactory(
        workspace=workspace, action="crm.write", field="amount", reason="=HYPERLINK(evil)"
    )
    AuditEventFactory(workspace=other_workspace, action="crm.write")
    client = login(revops)

    changelist = client.get(_admin_url("changelist"), {"action__exact": "crm.write"})
    response = client.get(_admin_url("export", "csv"), {"action__exact": "crm.write"})

    assert b"Export CSV" in changelist.content
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(row["workspace"], row["sequence"]) for row in rows] == [
        ("acme-sales", str(written.sequence))
    ]
    assert rows[0]["field"] == "amount"
    assert rows[0]["reason"] == "'=HYPERLINK(evil)"  # a spreadsheet must not run it
    assert rows[0]["hash"] == written.hash


def test_it_exports_the_filtered_list_as_json(workspace, revops, login):
    AuditEventFactory(workspace=workspace, outcome="ok")
    denied = AuditEventFactory(
        workspace=workspace, action="crm.write.denied", outcome="denied", before={"a": 1}
    )

    response = login(revops).get(_admin_url("export", "json"), {"outcome__exact": "denied"})

    rows = json.loads(b"".join(response.streaming_content))
    assert [row["sequence"] for row in rows] == [denied.sequence]
    assert rows[0]["before"] == {"a": 1}
    assert rows[0]["action"] == "crm.write.denied"


def test_reps_cannot_export(workspace, rep, login):
    AuditEventFactory(workspace=workspace)

    assert login(rep).get(_admin_url("export", "csv")).status_code == 403
