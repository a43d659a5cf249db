"""The rows of an object that a user may see, read for queries and for reads by id.

Queries scan whole objects, so their rows come from the process's record cache
(integrations/sandbox/record_cache.py), checked against the database on every call. The
rows themselves (rows.RecordRow) are kept with the cached records too, for as long as
nothing they are computed from changes: the records, the object's field types, the
opportunity stages and the default user. Building ten thousand rows per query, and
collecting them as garbage afterwards, cost more than answering it.

Sharing is applied per call, as ``store.visible_to`` does in SQL: to the owner ids
``store.visible_owner_ids`` lists, and contact roles follow their opportunities.
"""

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from integrations.sandbox import store
from integrations.sandbox.models import SandboxRecord
from integrations.sandbox.record_cache import CACHE, Snapshot
from integrations.sandbox.salesforce import metadata
from integrations.sandbox.salesforce.pushdown import Narrowing
from integrations.sandbox.salesforce.rows import RecordRow, plain_fields

if TYPE_CHECKING:
    from integrations.sandbox.salesforce.org import Org

# Records the database is asked about at once (pk IN …).
_CHUNK = 500


def visible_rows(
    org: "Org", object_name: str, *, include_deleted: bool, narrowed: Narrowing | None
) -> list[RecordRow]:
    snapshot, key, rows = _all_rows(org, object_name, include_deleted=include_deleted)
    if narrowed is not None:
        # What a filter keeps depends only on the records: queries that repeat it reuse it.
        narrowing = narrowed
        rows = snapshot.derived(
            ("salesforce.narrowed", key, narrowing.key), lambda: _narrowed(rows, narrowing)
        )
    if object_name in metadata.SHARED_OBJECTS:
        owners = store.visible_owner_ids(org.user)
        if owners is not None:
            rows = [row for row in rows if row.record.owner_id in owners]
    allowed = org.allowed_parents(object_name)
    if allowed is not None:
        rows = [row for row in rows if row.record.values.get("OpportunityId") in allowed]
    return list(rows)


def _all_rows(
    org: "Org", object_name: str, *, include_deleted: bool
) -> tuple[Snapshot, tuple, Sequence[RecordRow]]:
    """Every row of the object, deleted ones too if asked, before sharing; with the
    snapshot they come from and the key they are kept under there."""
    snapshot = CACHE.snapshot(org.account.pk, object_name)
    fields = org.all_fields(object_name)
    # Everything a RecordRow's answers depend on besides its record (see rows.py).
    context = json.dumps(
        {
            "fields": [[name, prop.type] for name, prop in fields.items()],
            "default_user": org.default_user_id,
            "stages": org.stages if object_name == "Opportunity" else None,
        },
        sort_keys=True,
        default=str,
    )
    records = snapshot.everything if include_deleted else snapshot.live

    def build() -> list[RecordRow]:
        plain = plain_fields(object_name, fields)
        return [RecordRow(org, record, fields, plain) for record in records]

    key = ("salesforce.rows", include_deleted, context)
    return snapshot, key, snapshot.derived(key, build)


def _narrowed(rows: Sequence[RecordRow], narrowing: Narrowing) -> list[RecordRow]:
    """The rows the query's database filter would have kept."""
    verdicts = [narrowing.verdict(row.record.values, row.record.crm_id) for row in rows]
    unsure = [row.record.pk for row, verdict in zip(rows, verdicts, strict=True) if verdict is None]
    kept: set[int] = set()
    for start in range(0, len(unsure), _CHUNK):
        # Only the database can say how it would have compared these values.
        chunk = SandboxRecord.objects.filter(pk__in=unsure[start : start + _CHUNK])
        kept.update(chunk.filter(narrowing.q).values_list("pk", flat=True))
    return [
        row
        for row, verdict in zip(rows, verdicts, strict=True)
        if verdict or (verdict is None and row.record.pk in kept)
    ]


def rows_with_ids(org: "Org", object_name: str, ids: list[str]) -> list[RecordRow]:
    """Visible live rows among ``ids``, in pk order (the order the database's scan of the
    object answered them in when it was asked directly)."""
    records = [
        record
        for record in CACHE.by_ids(org.account.pk, ids)
        if record.object_name == object_name and record.deleted_at is None
    ]
    if object_name in metadata.SHARED_OBJECTS:
        owners = store.visible_owner_ids(org.user)
        if owners is not None:
            records = [record for record in records if record.owner_id in owners]
    allowed = org.allowed_parents(object_name)
    if allowed is not None:
        records = [r for r in records if r.values.get("OpportunityId") in allowed]
    fields = org.all_fields(object_name)
    plain = plain_fields(object_name, fields)
    return [RecordRow(org, record, fields, plain) for record in records]
