"""Associations v4: list a record's associations, create (labelled or default), delete, and
batch read (``/crm/v4/objects/...`` and ``/crm/v4/associations/...``).

Associated records are listed in the order they were created (their ids), each with every
association type between the two; ``toObjectId`` is a number, as HubSpot answers it."""

from collections import defaultdict

from django.db import transaction
from django.http import HttpRequest

from integrations.sandbox import store
from integrations.sandbox.gateway import Call, Reply, endpoint
from integrations.sandbox.hubspot import bodies, schema, writes
from integrations.sandbox.hubspot.common import (
    ASSOCIATION_TYPES,
    DEFAULT_TYPES,
    PROVIDER,
    SINGULAR,
    next_page,
    not_found,
    not_numeric,
    object_name_of,
    offset,
    query_int,
    require_object_scope,
)
from integrations.sandbox.hubspot.objects import by_method
from integrations.sandbox.hubspot.values import format_datetime
from integrations.sandbox.models import (
    RequestKind,
    SandboxAccount,
    SandboxAssociation,
    SandboxRecord,
)

PAGE_LIMIT = 500
BATCH_READ_LIMIT = 1000


def _pair(call: Call, from_type: str, to_type: str, access: str) -> tuple[str, str]:
    """Both object names, once the token holds the ``access`` scope of each."""
    names = object_name_of(from_type), object_name_of(to_type)
    for name in names:
        require_object_scope(call, name, access)
    return names


def _record(account: SandboxAccount, object_name: str, object_id: str) -> SandboxRecord:
    if not object_id.isdigit():
        raise not_numeric(object_id)
    record = store.live_records(account, object_name).filter(crm_id=object_id).first()
    if record is None:
        raise not_found()
    return record


def _grouped(records: list[SandboxRecord], to_name: str) -> dict[int, list[dict]]:
    """For each record (pk), its associated ``to_name`` records with their types."""
    links = (
        SandboxAssociation.objects.filter(
            from_record__in=records,
            to_record__object_name=to_name,
            to_record__deleted_at__isnull=True,
        )
        .select_related("to_record")
        .order_by("from_record_id", "to_record_id", "type_id")
    )
    grouped: dict[int, dict[str, list[dict]]] = defaultdict(dict)
    for link in links:
        types = grouped[link.from_record_id].setdefault(link.to_record.crm_id, [])
        types.append(
            {"category": link.category, "typeId": link.type_id, "label": link.label or None}
        )
    return {
        # HubSpot answers the associated ids as numbers (``from.id`` stays a string).
        pk: [
            {"toObjectId": int(to_id), "associationTypes": types}
            for to_id, types in targets.items()
        ]
        for pk, targets in grouped.items()
    }


@endpoint(PROVIDER, RequestKind.READ)
def list_associations(
    request: HttpRequest, call: Call, object_type: str, object_id: str, to_object_type: str
) -> Reply:
    source, target = _pair(call, object_type, to_object_type, "read")
    record = store.live_records(call.account, source).filter(crm_id=object_id).first()
    found = _grouped([record], target).get(record.pk, []) if record else []
    limit = query_int(request, "limit", PAGE_LIMIT, PAGE_LIMIT)
    start = offset(request.GET.get("after"))
    page = found[start : start + limit]
    data: dict = {"results": page}
    if start + limit < len(found):
        data["paging"] = next_page(request, str(start + limit))
    call.note_read(source, [object_id] if record else [])
    return Reply(data)


@endpoint(PROVIDER, RequestKind.WRITE)
def create_labelled(
    request: HttpRequest,
    call: Call,
    object_type: str,
    object_id: str,
    to_object_type: str,
    to_object_id: str,
) -> Reply:
    source_name, target_name = _pair(call, object_type, to_object_type, "write")
    source = _record(call.account, source_name, object_id)
    target = _record(call.account, target_name, to_object_id)
    specs = bodies.read(call, bodies.AssociationSpecs)
    if not specs:
        raise writes.invalid_input("Invalid input JSON: expected an array of association types")
    kinds = [writes.association_kind(source_name, target_name, spec) for spec in specs]
    with transaction.atomic():
        for kind, category in kinds:
            writes.link(source, target, kind, category)
    call.note_write(source_name, source.crm_id, {f"associations.{target_name}": target.crm_id})
    labels = sorted(
        {
            link.label
            for link in SandboxAssociation.objects.filter(from_record=source, to_record=target)
            if link.label
        }
    )
    location = f"/crm/v4/objects/{object_type}/{object_id}/associations/{to_object_type}"
    return Reply(
        {
            "fromObjectTypeId": schema.OBJECT_TYPE_IDS[source_name],
            "fromObjectId": source.crm_id,
            "toObjectTypeId": schema.OBJECT_TYPE_IDS[target_name],
            "toObjectId": target.crm_id,
            "labels": labels,
        },
        201,
        {"Location": location},
    )


@endpoint(PROVIDER, RequestKind.WRITE)
def archive_associations(
    request: HttpRequest,
    call: Call,
    object_type: str,
    object_id: str,
    to_object_type: str,
    to_object_id: str,
) -> Reply:
    source_name, target_name = _pair(call, object_type, to_object_type, "write")
    source = _record(call.account, source_name, object_id)
    target = _record(call.account, target_name, to_object_id)
    if store.dissociate(source, target):
        call.note_write(source_name, source.crm_id, {f"associations.{target_name}": None})
    return Reply(None, 204)


@endpoint(PROVIDER, RequestKind.WRITE)
def create_default(
    request: HttpRequest,
    call: Call,
    object_type: str,
    object_id: str,
    to_object_type: str,
    to_object_id: str,
) -> Reply:
    started = store.now()
    source_name, target_name = _pair(call, object_type, to_object_type, "write")
    source = _record(call.account, source_name, object_id)
    target = _record(call.account, target_name, to_object_id)
    type_id = DEFAULT_TYPES.get((source_name, target_name))
    if type_id is None:
        raise writes.invalid_input(
            f"There is no default association type between {source_name} and {target_name}"
        )
    kind = ASSOCIATION_TYPES[type_id]
    writes.link(source, target, kind, "HUBSPOT_DEFINED")
    call.note_write(source_name, source.crm_id, {f"associations.{target_name}": target.crm_id})
    results = [
        {
            "from": {"id": from_id},
            "to": {"id": to_id},
            "associationSpec": {
                "associationCategory": "HUBSPOT_DEFINED",
                "associationTypeId": type_id,
            },
        }
        for from_id, to_id, type_id in (
            (source.crm_id, target.crm_id, kind.type_id),
            (target.crm_id, source.crm_id, kind.reverse),
        )
    ]
    return Reply(
        {
            "status": "COMPLETE",
            "results": results,
            "startedAt": format_datetime(started),
            "completedAt": format_datetime(store.now()),
        }
    )


def _batch_inputs(call: Call) -> list[tuple[str, int]]:
    """``(id, offset)`` per input, once each; ``after`` is the offset a result's paging gave."""
    inputs = bodies.read(call, bodies.AssociationBatchRead).inputs or []
    if len(inputs) > BATCH_READ_LIMIT:
        raise writes.invalid_input(
            f"The maximum number of inputs supported in a batch request is {BATCH_READ_LIMIT}. "
            "Please reduce the number of items and try again"
        )
    parsed = []
    for item in inputs:
        if not item.id:
            raise writes.invalid_input("Invalid input JSON: every input needs an id")
        parsed.append((item.id, offset(item.after)))
    return list(dict.fromkeys(parsed))


def _no_associations(source_name: str, target_name: str, crm_id: str) -> dict:
    return {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
        "message": f"No {SINGULAR[target_name]} is associated with "
        f"{SINGULAR[source_name]} {crm_id}.",
        "context": {"fromObjectId": [crm_id]},
        "errors": [],
        "links": {},
    }


@endpoint(PROVIDER, RequestKind.READ)
def batch_read(
    request: HttpRequest, call: Call, from_object_type: str, to_object_type: str
) -> Reply:
    """Each input's associations, a page of ``PAGE_LIMIT`` at a time (``paging`` only when
    more remain); inputs with none are a 207's ``errors``, not a failure."""
    started = store.now()
    source_name, target_name = _pair(call, from_object_type, to_object_type, "read")
    inputs = _batch_inputs(call)
    records = {
        record.crm_id: record
        for record in store.live_records(call.account, source_name).filter(
            crm_id__in=[crm_id for crm_id, _ in inputs if crm_id.isdigit()]
        )
    }
    grouped = _grouped(list(records.values()), target_name)
    results, errors = [], []
    for crm_id, start in inputs:
        record = records.get(crm_id)
        targets = grouped.get(record.pk, []) if record else []
        page = targets[start : start + PAGE_LIMIT]
        if not page:
            errors.append(_no_associations(source_name, target_name, crm_id))
            continue
        result: dict = {"from": {"id": crm_id}, "to": page}
        if start + PAGE_LIMIT < len(targets):
            result["paging"] = {"next": {"after": str(start + PAGE_LIMIT)}}
        results.append(result)
    call.note_read(source_name, list(records))
    data: dict = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": format_datetime(started),
        "completedAt": format_datetime(store.now()),
    }
    if errors:
        data["numErrors"] = len(errors)
        data["errors"] = errors
        return Reply(data, 207)
    return Reply(data)


pair = by_method(put=create_labelled, delete=archive_associations)
