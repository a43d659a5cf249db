"""audit_verify against changes made directly in the database, past the ORM's guards."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection as db

from audit.models import AuditEvent, AuditHead
from audit.services import record_event, verify_chain
from tests.factories import AuditEventFactory

pytestmark = pytest.mark.django_db


def _sql(sql: str, *params: object) -> None:
    """Run ``sql`` with ``{events}`` and ``{heads}`` as the quoted table names."""
    tables = {
        "events": db.ops.quote_name(AuditEvent._meta.db_table),
        "heads": db.ops.quote_name(AuditHead._meta.db_table),
    }
    with db.cursor() as cursor:
        cursor.execute(sql.format(**tables), list(params))


def _verify(*args: str) -> tuple[str, list[str], int]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit_verify", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), err.getvalue().splitlines(), exc.returncode
    return out.getvalue(), err.getvalue().splitlines(), 0


@pytest.fixture
def chain(workspace) -> list[AuditEvent]:
    return [AuditEventFactory(workspace=workspace, reason=f"step {n}") for n in range(1, 6)]


def test_it_passes_an_intact_chain(chain, other_workspace):
    AuditEventFactory(workspace=other_workspace)

    out, err, code = _verify()

    assert code == 0
    assert err == []
    assert "acme-sales: OK (5 events)" in out
    assert "globex-sales: OK (1 events)" in out


def test_it_moves_the_head_with_every_append(workspace, chain):
    head = AuditHead.objects.get(workspace=workspace)

    assert (head.sequence, head.hash) == (5, chain[-1].hash)


def test_it_names_an_event_edited_in_the_database(chain):
    _sql("UPDATE {events} SET after = %s WHERE id = %s", '"Closed Won"', chain[2].pk)

    _, err, code = _verify()

    assert code == 1
    assert err == ["acme-sales #3: hash mismatch, the event was changed after it was written"]


def test_it_finds_an_event_deleted_from_the_middle(chain):
    _sql("DELETE FROM {events} WHERE id = %s", chain[1].pk)

    _, err, code = _verify("--workspace", "acme-sales")

    assert code == 1
    assert err == [
        "acme-sales #3: sequence gap, #2 missing (deleted?)",
        "acme-sales #3: previous_hash does not match the preceding event's hash",
    ]


def test_it_finds_the_newest_events_deleted(chain):
    _sql("DELETE FROM {events} WHERE id IN (%s, %s)", chain[3].pk, chain[4].pk)

    _, err, code = _verify()

    assert code == 1
    assert err == [
        "acme-sales: the newest events were deleted: the head says #5, the chain ends at #3"
    ]


def test_it_finds_every_event_deleted(chain):
    _sql("DELETE FROM {events}")

    _, err, code = _verify()

    assert code == 1
    assert err == [
        "acme-sales: the newest events were deleted: the head says #5, the chain ends at "
        "no event at all"
    ]


def test_the_next_event_still_shows_deleted_newest_ones(workspace, chain):
    _sql("DELETE FROM {events} WHERE id = %s", chain[4].pk)

    appended = record_event(workspace, action="crm.read", outcome="ok")

    assert appended.sequence == 6
    assert verify_chain(workspace) == [
        "acme-sales #6: sequence gap, #5 missing (deleted?)",
        "acme-sales #6: previous_hash does not match the preceding event's hash",
    ]


def test_it_finds_the_newest_event_replaced(chain):
    # A rewritten newest event with a freshly computed hash: the chain alone looks intact.
    forged = AuditEvent.objects.get(pk=chain[4].pk)
    forged.reason = "nothing happened"
    forged.hash = forged.compute_hash()
    _sql(
        "UPDATE {events} SET reason = %s, hash = %s WHERE id = %s",
        forged.reason,
        forged.hash,
        forged.pk,
    )

    _, err, code = _verify()

    assert code == 1
    assert err == ["acme-sales #5: hash differs from the head's, the newest event was replaced"]


def test_it_finds_a_deleted_head(chain):
    _sql("DELETE FROM {heads}")

    _, err, code = _verify()

    assert code == 1
    assert err == ["acme-sales: no chain head, so deleted newest events cannot be ruled out"]


def test_an_exported_head_catches_a_chain_rewritten_with_its_head(chain):
    out, _, _ = _verify("--workspace", "acme-sales", "--print-head")
    exported = out.splitlines()[-1]
    assert exported == f"head acme-sales 5:{chain[4].hash}"
    anchor = exported.split()[-1]
    # Truncate the chain and move the head back with it: nothing inside the database
    # contradicts that any more.
    _sql("DELETE FROM {events} WHERE id = %s", chain[4].pk)
    _sql("UPDATE {heads} SET sequence = 4, hash = %s", chain[3].hash)

    _, unanchored, unanchored_code = _verify("--workspace", "acme-sales")
    _, err, code = _verify("--workspace", "acme-sales", "--anchor", anchor)

    assert (unanchored, unanchored_code) == ([], 0)
    assert code == 1
    assert err == [
        "acme-sales #5: does not match the anchored head (missing), the chain was rewritten"
    ]


def test_an_anchor_needs_a_workspace(chain):
    with pytest.raises(CommandError, match="needs --workspace"):
        call_command("audit_verify", "--anchor", f"5:{chain[4].hash}")
