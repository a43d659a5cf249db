"""The keyed audit chain: HMAC under AUDIT_KEYS, key ids, rotation, and a forger without the key.

The attacker here has the database (raw SQL, past the ORM's append-only guards) and the
source code, but not the keys in settings.
"""

import hashlib
import io
import json
import re
from collections.abc import Callable
from datetime import UTC

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection as db

from audit.models import GENESIS_HASH, AuditEvent, AuditHead
from audit.services import record_event, verify_chain
from tests.factories import AuditEventFactory

pytestmark = pytest.mark.django_db

OLD = "audit-key-2026-6f1c0e9a4b7d2c8e5a3f1b0d9c7e6a5b"
NEW = "audit-key-2027-0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d"
GUESS = "an-attackers-guess-at-the-key"


@pytest.fixture(autouse=True)
def old_key(settings) -> None:
    settings.AUDIT_KEYS = [OLD]


@pytest.fixture
def chain(workspace) -> list[AuditEvent]:
    return [AuditEventFactory(workspace=workspace, reason=f"step {n}") for n in range(1, 6)]


def _key_id(secret: str) -> str:
    from audit.models import AuditKey  # new with the keyed chain

    return AuditKey.from_secret(secret).id


def _sql(sql: str, *params: object) -> None:
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


def _plain_sha256(event: AuditEvent) -> str:
    """The unkeyed digest the chain used before it was keyed: anyone can compute it."""
    payload: dict[str, object] = {"v": 1}
    for name in AuditEvent.HASHED_FIELDS:
        payload[name] = getattr(event, name)
    payload["at"] = event.at.astimezone(UTC).isoformat(timespec="microseconds")
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _forge(workspace, sequence: int, reason: str, digest: Callable[[AuditEvent], None]) -> None:
    """Edit event ``sequence`` and recompute every later link, hash and the head, in SQL.

    ``digest`` sets the forged event's ``hash`` (and, for a forger who signs with a key of
    their own, its ``key_id``).
    """
    previous = (
        AuditEvent.objects.get(workspace=workspace, sequence=sequence - 1).hash
        if sequence > 1
        else GENESIS_HASH
    )
    later = AuditEvent.objects.filter(workspace=workspace, sequence__gte=sequence)
    for event in later.order_by("sequence"):
        if event.sequence == sequence:
            event.reason = reason
        event.previous_hash = previous
        digest(event)
        columns = {"reason": event.reason, "previous_hash": previous, "hash": event.hash}
        if "key_id" in {field.name for field in AuditEvent._meta.fields}:
            columns["key_id"] = event.key_id
        assignments = ", ".join(f"{db.ops.quote_name(name)} = %s" for name in columns)
        _sql(f"UPDATE {{events}} SET {assignments} WHERE id = %s", *columns.values(), event.pk)
        previous = event.hash
    _sql("UPDATE {heads} SET hash = %s WHERE workspace_id = %s", previous, workspace.pk)


# --- a forger without the key ---------------------------------------------------------------


def test_a_chain_recomputed_with_plain_sha256_fails(workspace, chain):
    def sha256(event: AuditEvent) -> None:
        event.hash = _plain_sha256(event)

    _forge(workspace, 3, "nothing was written", sha256)

    _, err, code = _verify()

    assert code == 1
    assert err == [
        f"acme-sales #{n}: hash mismatch, the event was changed after it was written"
        for n in (3, 4, 5)
    ]


def test_a_chain_recomputed_under_a_guessed_key_fails(workspace, chain):
    from audit.models import AuditKey

    guessed = AuditKey.from_secret(GUESS)

    def hmac_under_a_guess(event: AuditEvent) -> None:
        event.hash = event.compute_hash(guessed)  # keeps the real key id

    _forge(workspace, 3, "nothing was written", hmac_under_a_guess)

    _, err, code = _verify()

    assert code == 1
    assert err == [
        f"acme-sales #{n}: hash mismatch, the event was changed after it was written"
        for n in (3, 4, 5)
    ]


def test_a_chain_re_signed_with_the_forgers_own_key_names_the_unknown_key(
    workspace, chain, settings
):
    def sign_with_own_key(event: AuditEvent) -> None:
        settings.AUDIT_KEYS = [GUESS]
        event.sign()
        settings.AUDIT_KEYS = [OLD]

    _forge(workspace, 3, "nothing was written", sign_with_own_key)

    _, err, code = _verify()

    assert code == 1
    assert err == [
        f"acme-sales #3: signed with key id {_key_id(GUESS)}, which AUDIT_KEYS does not list "
        "(was the key removed?), so its hash cannot be checked; 2 later event(s) carry it too"
    ]


# --- key ids ---------------------------------------------------------------------------------


def test_each_event_records_the_key_id_that_signed_it_never_the_key(workspace, chain):
    stored = AuditEvent.objects.get(pk=chain[0].pk)
    row = json.dumps(
        list(AuditEvent.objects.filter(pk=stored.pk).values().get().values()), default=str
    )

    assert re.fullmatch(r"[0-9a-f]{8}", stored.key_id)
    assert stored.key_id == _key_id(OLD)
    assert OLD not in row
    assert stored.hash == stored.compute_hash()


def test_a_key_id_reveals_nothing_of_other_keys(settings):
    assert _key_id(OLD) != _key_id(NEW)
    assert _key_id(OLD) == _key_id(OLD)
    assert _key_id(OLD) not in OLD


def test_audit_verify_says_which_keys_sign_and_never_prints_one(workspace, chain, settings):
    settings.AUDIT_KEYS = [NEW, OLD]
    AuditEventFactory(workspace=workspace)

    out, err, code = _verify("--print-head")

    assert code == 0
    assert f"AUDIT_KEYS: {_key_id(NEW)} (signs new events), {_key_id(OLD)}" in out
    assert f"acme-sales: OK (6 events), key ids: {_key_id(OLD)} on 5, {_key_id(NEW)} on 1" in out
    assert OLD not in out + "".join(err)
    assert NEW not in out + "".join(err)


# --- rotation ----------------------------------------------------------------------------------


def test_a_new_key_put_first_signs_new_events_and_the_old_one_still_verifies(
    workspace, chain, settings
):
    settings.AUDIT_KEYS = [NEW, OLD]

    later = [AuditEventFactory(workspace=workspace) for _ in range(2)]

    stored = AuditEvent.objects.filter(workspace=workspace).order_by("sequence")
    assert [event.key_id for event in stored] == [_key_id(OLD)] * 5 + [_key_id(NEW)] * 2
    assert later[0].previous_hash == chain[-1].hash
    assert verify_chain(workspace) == []
    assert _verify()[2] == 0


def test_a_removed_key_fails_naming_the_first_event_it_signed(workspace, chain, settings):
    settings.AUDIT_KEYS = [NEW, OLD]
    AuditEventFactory(workspace=workspace)
    settings.AUDIT_KEYS = [NEW]  # the old key dropped without re-signing

    _, err, code = _verify()

    assert code == 1
    assert err == [
        f"acme-sales #1: signed with key id {_key_id(OLD)}, which AUDIT_KEYS does not list "
        "(was the key removed?), so its hash cannot be checked; 4 later event(s) carry it too"
    ]


def test_an_event_with_no_key_id_is_named(workspace, chain):
    _sql("UPDATE {events} SET key_id = '' WHERE id = %s", chain[1].pk)

    _, err, code = _verify()

    assert code == 1
    assert err == [
        "acme-sales #2: no key id, so not signed with an audit key (written by code from "
        "before the keyed chain, or past record_event)"
    ]


def test_rotate_audit_keys_re_signs_old_events_so_the_old_key_can_go(workspace, chain, settings):
    settings.AUDIT_KEYS = [NEW, OLD]
    AuditEventFactory(workspace=workspace)
    out = io.StringIO()

    call_command("rotate_audit_keys", stdout=out)

    head = AuditHead.objects.get(workspace=workspace)
    stored = list(AuditEvent.objects.filter(workspace=workspace).order_by("sequence"))
    assert {event.key_id for event in stored} == {_key_id(NEW)}
    assert (head.sequence, head.hash) == (6, stored[-1].hash)
    assert f"acme-sales: re-signed 6 event(s) with key id {_key_id(NEW)}" in out.getvalue()
    assert f"head acme-sales 6:{head.hash}" in out.getvalue()
    settings.AUDIT_KEYS = [NEW]
    assert verify_chain(workspace) == []


def test_rotate_audit_keys_leaves_a_current_chain_alone(workspace, chain):
    hashes = list(AuditEvent.objects.order_by("sequence").values_list("hash", flat=True))
    out = io.StringIO()

    call_command("rotate_audit_keys", stdout=out)

    assert list(AuditEvent.objects.order_by("sequence").values_list("hash", flat=True)) == hashes
    assert "acme-sales: every event is signed with the first key already" in out.getvalue()


def test_rotate_audit_keys_refuses_a_chain_that_does_not_verify(workspace, chain, settings):
    _sql("UPDATE {events} SET reason = %s WHERE id = %s", "edited", chain[2].pk)
    hashes = list(AuditEvent.objects.order_by("sequence").values_list("hash", flat=True))
    settings.AUDIT_KEYS = [NEW, OLD]
    err = io.StringIO()

    with pytest.raises(CommandError, match="1 workspace"):
        call_command("rotate_audit_keys", stderr=err)

    # Re-signing would bless the edit: the chain is left as it was, and says so.
    assert list(AuditEvent.objects.order_by("sequence").values_list("hash", flat=True)) == hashes
    assert "acme-sales #3: hash mismatch" in err.getvalue()
    assert "acme-sales: not re-signed" in err.getvalue()


# --- the head, as before ---------------------------------------------------------------------


def test_the_exported_head_still_catches_a_rewrite_after_rotation(workspace, chain, settings):
    settings.AUDIT_KEYS = [NEW, OLD]
    newest = AuditEventFactory(workspace=workspace)
    out, _, _ = _verify("--workspace", "acme-sales", "--print-head")
    anchor = out.splitlines()[-1].split()[-1]
    assert anchor == f"6:{newest.hash}"
    assert _verify("--workspace", "acme-sales", "--anchor", anchor)[2] == 0
    _sql("DELETE FROM {events} WHERE id = %s", newest.pk)
    _sql("UPDATE {heads} SET sequence = 5, hash = %s", chain[4].hash)

    _, err, code = _verify("--workspace", "acme-sales", "--anchor", anchor)

    assert code == 1
    assert err == [
        "acme-sales #6: does not match the anchored head (missing), the chain was rewritten"
    ]


# --- cost ----------------------------------------------------------------------------------------


def test_appending_costs_no_extra_query(workspace, chain, settings, django_assert_num_queries):
    settings.AUDIT_KEYS = [NEW, OLD]

    # savepoint, workspace lock, head, insert, head update, release
    with django_assert_num_queries(6):
        record_event(workspace, action="crm.read", outcome="ok")
