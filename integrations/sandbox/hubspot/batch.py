"""``/crm/v3/objects/{objectType}/batch/{read,update,create}``.

Batches take at most 100 inputs (50 when property history is asked for). Inputs naming
records that do not exist make the answer a 207 with ``numErrors`` and ``errors``; an
invalid property anywhere refuses the whole batch with a 400.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime

from django.db import transaction
from django.http import HttpRequest

from integrations.sandbox import store
from integrations.sandbox.gateway import Call, Reply, endpoint
from integrations.sandbox.hubspot import bodies, schema, writes
from integrations.sandbox.hubspot.common import PROVIDER, SINGULAR, ObjectContext, query_flag
from integrations.sandbox.hubspot.objects import written_object
from integrations.sandbox.hubspot.values import format_datetime
from integrations.sandbox.models import RequestKind, SandboxRecord
from integrations.sandbox.record_cache import CACHE, CachedRecord

BATCH_LIMIT = 100
HISTORY_BATCH_LIMIT = 50


def _check_size(inputs: Sequence[object], *, history: bool) -> None:
    if history and len(inputs) > HISTORY_BATCH_LIMIT:
        raise writes.invalid_input(
            "The maximum number of inputs supported in a batch request for property histories "
            f"is {HISTORY_BATCH_LIMIT}. Please reduce the number of items and try again"
        )
    if len(inputs) > BATCH_LIMIT:
        raise writes.invalid_input(
            "The maximum number of inputs supported in a batch request is "
            f"{BATCH_LIMIT}. Please reduce the number of items and try again"
        )


def _records_by_key(
    ctx: ObjectContext, keys: Sequence[str], id_property: str | None, *, archived: bool = False
) -> dict[str, SandboxRecord]:
    records = ctx.archived() if archived else ctx.live()
    if id_property and id_property != "hs_object_id":
        if id_property not in schema.UNIQUE_PROPERTIES[ctx.object_name]:
            raise writes.invalid_input(f"{id_property} is not a unique identifier property")
        wanted = {
            key.strip().lower() if id_property == "email" else key: key
            for key in keys
            if "\x00" not in key  # no stored value holds one; PostgreSQL refuses it in a query
        }
        found = {}
        for record in records.filter(**{f"values__{id_property}__in": list(wanted)}):
            found[wanted[record.values[id_property]]] = record
        return found
    numeric = [key for key in keys if key.isdigit()]
    # Naming only the account and the ids lets the database look them up through the
    # (account, crm_id) index; with object and deletion in the query too, SQLite scans the
    # object's whole (account, object_name, deleted_at) index instead. Both are checked here.
    by_id = SandboxRecord.objects.filter(account=ctx.account, crm_id__in=numeric)
    return {
        record.crm_id: record
        for record in by_id
        if record.object_name == ctx.object_name and (record.deleted_at is not None) == archived
    }


def _locked(ctx: ObjectContext, found: Mapping[str, SandboxRecord]) -> dict[str, SandboxRecord]:
    """``found`` as the records are under their row locks, all taken before any record is
    written and in one order, so two batches naming the same records in different orders
    queue instead of deadlocking. Records deleted meanwhile are left out."""
    locked = store.lock_records(ctx.account, [record.crm_id for record in found.values()])
    return {
        key: locked[record.crm_id]
        for key, record in found.items()
        if record.crm_id in locked and locked[record.crm_id].deleted_at is None
    }


def _read_by_key(
    ctx: ObjectContext, keys: Sequence[str], id_property: str | None, *, archived: bool
) -> Mapping[str, SandboxRecord | CachedRecord]:
    """``_records_by_key`` for reading: records by id come from the record cache when its
    copy is current (see record_cache.by_ids), without decoding them again."""
    if id_property and id_property != "hs_object_id":
        return _records_by_key(ctx, keys, id_property, archived=archived)
    numeric = [key for key in keys if key.isdigit()]
    return {
        record.crm_id: record
        for record in CACHE.by_ids(ctx.account.pk, numeric)
        if record.object_name == ctx.object_name and (record.deleted_at is not None) == archived
    }


def _batch_reply(
    ctx: ObjectContext, results: list[dict], missing: list[str], started: datetime, status: int
) -> Reply:
    data: dict = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": format_datetime(started),
        "completedAt": format_datetime(store.now()),
    }
    if not missing:
        return Reply(data, status)
    noun = SINGULAR[ctx.object_name].upper()
    data["numErrors"] = 1
    data["errors"] = [
        {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": f"Could not get some {noun} objects, they may be deleted or not exist. "
            "Check that ids are valid.",
            "context": {"ids": missing},
            "errors": [],
            "links": {},
        }
    ]
    return Reply(data, 207)


def _input_ids(inputs: Sequence[bodies.ObjectId | bodies.BatchUpdateInput]) -> list[str]:
    ids = [item.id or "" for item in inputs]
    if "" in ids:
        raise writes.invalid_input("Invalid input JSON: every input needs an id")
    return ids


@endpoint(PROVIDER, RequestKind.READ)
def batch_read(request: HttpRequest, call: Call, object_type: str) -> Reply:
    started = store.now()
    ctx = ObjectContext.load(call, object_type, "read")
    body = bodies.read(call, bodies.BatchRead)
    inputs = body.inputs or []
    history = body.properties_with_history or []
    _check_size(inputs, history=bool(history))
    keys = list(dict.fromkeys(_input_ids(inputs)))
    found = _read_by_key(ctx, keys, body.id_property, archived=query_flag(request, "archived"))
    records = [found[key] for key in keys if key in found]
    results = ctx.render_many(records, body.properties or [], history)
    call.note_read(ctx.object_name, [record.crm_id for record in records])
    return _batch_reply(ctx, results, [key for key in keys if key not in found], started, 200)


@endpoint(PROVIDER, RequestKind.WRITE)
def batch_update(request: HttpRequest, call: Call, object_type: str) -> Reply:
    started = store.now()
    ctx = ObjectContext.load(call, object_type, "write")
    inputs = bodies.read(call, bodies.BatchUpdate).inputs or []
    _check_size(inputs, history=False)
    keys = _input_ids(inputs)
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise writes.invalid_input(
            f"Duplicate IDs found in batch input: [{', '.join(duplicates)}]. IDs must be unique"
        )
    by_id_property: dict[str | None, list[str]] = {}
    for item, key in zip(inputs, keys, strict=True):
        by_id_property.setdefault(item.id_property, []).append(key)
    found: dict[str, SandboxRecord] = {}
    for id_property, group in by_id_property.items():
        found.update(_records_by_key(ctx, group, id_property))
    results = []
    with transaction.atomic():
        # Checked and merged against the records as they are under their locks, not as
        # found above: another write may have landed in between.
        found = _locked(ctx, found)
        planned = []
        problems: list[writes.Problem] = []
        for item, key in zip(inputs, keys, strict=True):
            record = found.get(key)
            clean, wrong = writes.check_properties(ctx, item.properties or {}, record)
            problems.extend(wrong)
            if record is not None:
                planned.append((record, clean))
        if problems:
            raise writes.validation_error(ctx, problems)
        for record, clean in planned:
            writes.check_unique_email(ctx, clean, record)
        for record, clean in planned:
            writes.update(ctx, call, record, clean)
            results.append(written_object(ctx, record, clean))
    return _batch_reply(ctx, results, [key for key in keys if key not in found], started, 200)


@endpoint(PROVIDER, RequestKind.WRITE)
def batch_create(request: HttpRequest, call: Call, object_type: str) -> Reply:
    started = store.now()
    ctx = ObjectContext.load(call, object_type, "write")
    inputs = bodies.read(call, bodies.BatchCreate).inputs or []
    _check_size(inputs, history=False)
    planned = []
    problems: list[writes.Problem] = []
    for item in inputs:
        clean, wrong = writes.check_properties(ctx, item.properties or {})
        problems.extend(wrong)
        planned.append((clean, writes.planned_links(ctx, item.associations or [])))
    if problems:
        raise writes.validation_error(ctx, problems)
    emails = [clean.get("email") for clean, _ in planned if clean.get("email")]
    if ctx.object_name == "contacts" and len(emails) != len(set(emails)):
        raise writes.invalid_input("Duplicate email addresses found in batch input")
    results = []
    with transaction.atomic():
        for clean, _ in planned:
            writes.check_unique_email(ctx, clean)
        for clean, links in planned:
            record = writes.create(ctx, call, clean)
            for target, kind, category in links:
                writes.link(record, target, kind, category)
            names = ctx.selected([name for name, value in clean.items() if value is not None])
            results.append(ctx.render(record, names))
    return _batch_reply(ctx, results, [], started, 201)
