"""sObject Collections: ``composite/sobjects`` create, update and delete, and GET by ids.

A well-formed request answers 200 with one SaveResult per record, in input order:
``{"id", "success": true, "errors": []}`` or ``{"success": false, "errors": [{"statusCode",
"message", "fields"}]}``; per-record errors carry ``statusCode`` where every other
Salesforce error says ``errorCode``. At most 200 records per request. With ``allOrNone``
one failure rolls everything back: the failing records keep their own errors, the others
answer ``ALL_OR_NONE_OPERATION_ROLLED_BACK``.
"""

from collections.abc import Callable

from django.db import transaction
from django.http import HttpRequest

from integrations.sandbox import store
from integrations.sandbox.gateway import Call, Reply, SandboxError, endpoint
from integrations.sandbox.models import RequestKind, SandboxRecord
from integrations.sandbox.salesforce import metadata
from integrations.sandbox.salesforce.http import SALESFORCE, org_of
from integrations.sandbox.salesforce.org import Org, read_only
from integrations.sandbox.salesforce.values import is_id
from integrations.sandbox.salesforce.views import requested_fields
from integrations.sandbox.salesforce.writes import Writer

MAX_RECORDS = 200
MAX_READ_IDS = 2000
_ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was "
    "using AllOrNone header",
    "fields": [],
}


def _failure(error: SandboxError, record_id: str | None = None) -> dict:
    result: dict = {"id": record_id} if record_id else {}
    result["success"] = False
    result["errors"] = [
        {"statusCode": error.code, "message": error.message, "fields": error.fields or []}
    ]
    return result


def _record_type(org: Org, item: dict) -> str:
    attributes = item.get("attributes")
    name = attributes.get("type") if isinstance(attributes, dict) else None
    if not name:
        raise SandboxError(400, "Must send a concrete entity type.", "INVALID_TYPE", fields=[])
    object_name = org.object_name(str(name))
    if object_name is None:
        raise SandboxError(
            400, f"sObject type '{name}' is not supported.", "INVALID_TYPE", fields=[]
        )
    return object_name


def _target(org: Org, object_name: str, record_id: object) -> SandboxRecord:
    """The record a collection item names, with the DML errors Salesforce gives per record."""
    if record_id is None:
        raise SandboxError(400, "Id not specified in an update call", "MISSING_ARGUMENT", fields=[])
    prefix = metadata.global_entry(object_name)["keyPrefix"]
    if not is_id(record_id) or str(record_id)[:3] != prefix:
        label = metadata.global_entry(object_name)["label"]
        raise SandboxError(
            400,
            f"{label} ID: id value of incorrect type: {record_id}",
            "MALFORMED_ID",
            fields=["Id"],
        )
    record = org.find(object_name, str(record_id))
    if record is None:
        raise SandboxError(
            400, "invalid cross reference id", "INVALID_CROSS_REFERENCE_KEY", fields=[]
        )
    if record.deleted_at is not None:
        raise SandboxError(400, "entity is deleted", "ENTITY_IS_DELETED", fields=[])
    if not org.can_edit(record):
        raise read_only()
    return record


def _records_of(call: Call) -> tuple[list[object], bool]:
    body = call.json_body()
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise SandboxError(
            400, "Cannot deserialize instance of collection request", "JSON_PARSER_ERROR"
        )
    if len(body["records"]) > MAX_RECORDS:
        raise SandboxError(
            400,
            "record limit reached. cannot submit more than 200 records into this call",
            "EXCEEDED_ID_LIMIT",
        )
    return body["records"], bool(body.get("allOrNone", False))


def _named_ids(items: list[object]) -> list[str]:
    """The 18-character ids of the existing records a collection names."""
    ids = (
        next((value for key, value in item.items() if key.lower() == "id"), None)
        if isinstance(item, dict)
        else item
        for item in items
    )
    return [store.full_salesforce_id(record_id) for record_id in ids if is_id(record_id)]


def _save_all(
    call: Call, items: list[object], all_or_none: bool, save: Callable[[object], str]
) -> list[dict]:
    """Run ``save`` per item (each in a savepoint); SaveResults in input order.

    The records the items name are locked first, all in one order, so two collections
    naming the same records in different orders queue instead of deadlocking; each item is
    then checked and written against its record as it is under the lock."""
    results: list[dict] = []
    with transaction.atomic():
        assert call.account is not None
        store.lock_records(call.account, _named_ids(items))
        for item in items:
            try:
                with transaction.atomic():
                    results.append({"id": save(item), "success": True, "errors": []})
            except SandboxError as error:
                known = item.get("id") if isinstance(item, dict) else None
                results.append(_failure(error, known if is_id(known) else None))
        if all_or_none and not all(result["success"] for result in results):
            transaction.set_rollback(True)
            call.written.clear()
            call.record_ids.clear()
            results = [
                result
                if not result["success"]
                else {
                    **({"id": result["id"]} if call.request.method != "POST" else {}),
                    "success": False,
                    "errors": [dict(_ROLLED_BACK)],
                }
                for result in results
            ]
    return results


def _create(request: HttpRequest, call: Call, version: str) -> Reply:
    org = org_of(call, version)
    writer = Writer(org, call)
    items, all_or_none = _records_of(call)

    def save(item: object) -> str:
        if not isinstance(item, dict):
            raise SandboxError(400, "Must send a concrete entity type.", "INVALID_TYPE", fields=[])
        object_name = _record_type(org, item)
        if any(key.lower() == "id" for key in item):
            raise SandboxError(
                400,
                "cannot specify Id in an insert call",
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                fields=["Id"],
            )
        return writer.create(object_name, item).crm_id

    return Reply(_save_all(call, items, all_or_none, save))


def _update(request: HttpRequest, call: Call, version: str) -> Reply:
    org = org_of(call, version)
    writer = Writer(org, call)
    items, all_or_none = _records_of(call)

    def save(item: object) -> str:
        if not isinstance(item, dict):
            raise SandboxError(400, "Must send a concrete entity type.", "INVALID_TYPE", fields=[])
        object_name = _record_type(org, item)
        record_id = next((value for key, value in item.items() if key.lower() == "id"), None)
        record = _target(org, object_name, record_id)
        writer.update(record, {k: v for k, v in item.items() if k.lower() != "id"})
        return record.crm_id

    return Reply(_save_all(call, items, all_or_none, save))


def _delete(request: HttpRequest, call: Call, version: str) -> Reply:
    org = org_of(call, version)
    writer = Writer(org, call)
    ids = [part for part in request.GET.get("ids", "").split(",") if part]
    if len(ids) > MAX_RECORDS:
        raise SandboxError(
            400,
            "record limit reached. cannot submit more than 200 records into this call",
            "EXCEEDED_ID_LIMIT",
        )
    all_or_none = request.GET.get("allOrNone", "false").lower() == "true"
    prefixes = {metadata.global_entry(name)["keyPrefix"]: name for name in org.objects()}

    def save(record_id: object) -> str:
        object_name = prefixes.get(str(record_id)[:3])
        if object_name is None or not is_id(record_id):
            raise SandboxError(400, f"malformed id {record_id}", "MALFORMED_ID", fields=[])
        record = _target(org, object_name, record_id)
        writer.delete(record)
        return record.crm_id

    return Reply(_save_all(call, ids, all_or_none, save))


create = endpoint(SALESFORCE, RequestKind.WRITE)(_create)
update = endpoint(SALESFORCE, RequestKind.WRITE)(_update)
delete = endpoint(SALESFORCE, RequestKind.WRITE)(_delete)


@endpoint(SALESFORCE, RequestKind.READ)
def retrieve(request: HttpRequest, call: Call, version: str, sobject: str) -> Reply:
    """``GET composite/sobjects/{Type}?ids=…&fields=…``: records in the order asked, null for
    an id that does not exist or that the user may not see."""
    org = org_of(call, version)
    object_name = org.require_object(sobject)
    fields = requested_fields(org, object_name, request.GET.get("fields"))
    if fields is None:
        raise SandboxError(400, "The fields parameter is required", "MISSING_ARGUMENT")
    ids = [part for part in request.GET.get("ids", "").split(",") if part]
    if len(ids) > MAX_READ_IDS:
        raise SandboxError(
            400, f"cannot retrieve more than {MAX_READ_IDS} records", "EXCEEDED_ID_LIMIT"
        )
    found = {row["Id"]: row for row in org.rows_with_ids(object_name, ids)}
    call.note_read(object_name, list(found))
    return Reply(
        [
            org.render(object_name, found[record_id], fields) if record_id in found else None
            for record_id in ids
        ]
    )
