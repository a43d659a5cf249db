"""The upgrade to the keyed chain re-signs what plain SHA-256 chained, and keeps its breaks."""

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from audit.models import GENESIS_HASH, AuditEvent, AuditHead
from audit.services import record_event, verify_chain

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("audit", "0004_outcome_unknown")
KEYED = ("audit", "0005_keyed_chain")


def _migrate(target: tuple[str, str]):
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


@pytest.fixture
def legacy_apps():
    """The schema as it was before the chain was keyed; back to the newest afterwards."""
    apps = _migrate(BEFORE)
    yield apps
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def _legacy_digest(fields: dict[str, object]) -> str:
    payload = {"v": 1, **fields}
    payload["at"] = fields["at"].astimezone(UTC).isoformat(timespec="microseconds")
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _legacy_chain(apps, workspace, reasons: list[str]) -> list[str]:
    """Events as the unkeyed chain wrote them; returns their hashes."""
    Event = apps.get_model("audit", "AuditEvent")
    Head = apps.get_model("audit", "AuditHead")
    previous, hashes = GENESIS_HASH, []
    start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    for sequence, reason in enumerate(reasons, start=1):
        fields = dict.fromkeys(AuditEvent.HASHED_FIELDS, "")
        fields.update(
            workspace_id=workspace.pk,
            sequence=sequence,
            at=start + timedelta(minutes=sequence),
            actor_kind="agent",
            actor_label="agent",
            action="crm.write",
            outcome="ok",
            before={"stage": "Discovery"},
            after={"stage": "Closed Won", "amount": 12000},
            reason=reason,
            context={"latency_ms": 120},
            previous_hash=previous,
        )
        digest = _legacy_digest(fields)
        Event.objects.create(**fields, hash=digest)
        previous = digest
        hashes.append(digest)
    Head.objects.create(
        workspace_id=workspace.pk, sequence=len(reasons), hash=previous, updated_at=start
    )
    return hashes


def test_the_upgrade_re_signs_a_legacy_chain_with_the_first_key(
    legacy_apps, workspace, other_workspace, settings
):
    settings.AUDIT_KEYS = ["audit-key-for-the-upgrade-7c1d9e"]
    legacy = _legacy_chain(legacy_apps, workspace, ["a", "b", "c", "d"])
    _legacy_chain(legacy_apps, other_workspace, ["x"])

    _migrate(KEYED)

    stored = list(AuditEvent.objects.filter(workspace=workspace).order_by("sequence"))
    from audit.models import AuditKey

    assert {event.key_id for event in stored} == {AuditKey.from_secret(settings.AUDIT_KEYS[0]).id}
    assert not {event.hash for event in stored} & set(legacy)
    assert AuditHead.objects.get(workspace=workspace).hash == stored[-1].hash
    assert verify_chain(workspace) == []
    assert verify_chain(other_workspace) == []


def test_the_upgrade_keeps_what_the_legacy_chain_showed_broken(
    legacy_apps, workspace, other_workspace
):
    _legacy_chain(legacy_apps, workspace, ["a", "b", "c", "d", "e"])
    _legacy_chain(legacy_apps, other_workspace, ["x", "y", "z"])
    Event = legacy_apps.get_model("audit", "AuditEvent")
    # Edited in place (hash left as it was), and one deleted from the middle, before the
    # upgrade: re-signing them must not make them look intact.
    Event.objects.filter(workspace_id=workspace.pk, sequence=2).update(reason="edited")
    Event.objects.filter(workspace_id=other_workspace.pk, sequence=2).delete()

    _migrate(KEYED)

    assert verify_chain(workspace) == [
        "acme-sales #2: hash mismatch, the event was changed after it was written"
    ]
    assert verify_chain(other_workspace) == [
        "globex-sales #3: sequence gap, #2 missing (deleted?)",
        "globex-sales #3: previous_hash does not match the preceding event's hash",
    ]


def test_going_back_restores_the_legacy_hashes(legacy_apps, workspace):
    legacy = _legacy_chain(legacy_apps, workspace, ["a", "b", "c"])
    _migrate(KEYED)

    apps = _migrate(BEFORE)

    Event = apps.get_model("audit", "AuditEvent")
    Head = apps.get_model("audit", "AuditHead")
    hashes = list(
        Event.objects.filter(workspace_id=workspace.pk)
        .order_by("sequence")
        .values_list("hash", flat=True)
    )
    assert hashes == legacy
    assert Head.objects.get(workspace_id=workspace.pk).hash == legacy[-1]


def test_events_the_old_code_wrote_after_the_upgrade_are_named_then_signed_by_a_round_trip(
    legacy_apps, workspace
):
    _legacy_chain(legacy_apps, workspace, ["a", "b"])
    _migrate(KEYED)
    # An old process, not yet restarted, appends as it always did: no key id, plain SHA-256.
    late = record_event(workspace, action="crm.read", outcome="ok")
    fields = {name: getattr(late, name) for name in AuditEvent.HASHED_FIELDS}
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET key_id = '', hash = %s WHERE id = %s",
            [_legacy_digest(fields), late.pk],
        )
    AuditHead.objects.filter(workspace=workspace).update(hash=_legacy_digest(fields))
    assert verify_chain(workspace) == [
        "acme-sales #3: no key id, so not signed with an audit key (written by code from "
        "before the keyed chain, or past record_event)"
    ]

    _migrate(BEFORE)
    _migrate(KEYED)

    assert verify_chain(workspace) == []
