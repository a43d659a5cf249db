"""Salesforce REST resources: versions, describes, sObject rows, queries and limits.

Every view runs as the token's user (gateway.endpoint) through an Org, which applies that
user's sharing and field-level security, as Salesforce does on a user's token. Paths are
those simple-salesforce builds (PART B1 of reference/crm-apis.md), for any API version.
"""

from django.db import transaction
from django.http import HttpRequest

from integrations.sandbox import store
from integrations.sandbox.gateway import Call, Reply, SandboxError, endpoint
from integrations.sandbox.models import RequestKind
from integrations.sandbox.salesforce import describe, query
from integrations.sandbox.salesforce.http import (
    SALESFORCE,
    check_write_preconditions,
    etag,
    host_of,
    not_modified,
    org_of,
    versions,
)
from integrations.sandbox.salesforce.org import Org, not_found
from integrations.sandbox.salesforce.writes import Writer

_NO_COLUMN = (
    "No such column '{field}' on entity '{entity}'. If you are attempting to use a custom field, "
    "be sure to append the '__c' after the custom field name. Please reference your WSDL or the "
    "describe call for the appropriate names."
)
_RESOURCES = ("composite", "limits", "query", "queryAll", "sobjects")
# Org limits besides the daily API requests, as a fresh Developer Edition org reports them.
_STATIC_LIMITS = {
    "DailyAsyncApexExecutions": 250000,
    "DailyBulkApiBatches": 15000,
    "DailyBulkV2QueryJobs": 10000,
    "DataStorageMB": 5,
    "FileStorageMB": 20,
    "HourlyODataCallout": 20000,
    "SingleEmail": 15,
}


@endpoint(SALESFORCE, RequestKind.META, authenticate=False)
def version_list(request: HttpRequest, call: Call) -> Reply:
    return Reply(versions())


@endpoint(SALESFORCE, RequestKind.META)
def resources(request: HttpRequest, call: Call, version: str) -> Reply:
    return Reply({name: f"/services/data/v{version}/{name}" for name in _RESOURCES})


@endpoint(SALESFORCE, RequestKind.META)
def limits(request: HttpRequest, call: Call, version: str) -> Reply:
    assert call.account is not None
    used = getattr(request, "sandbox_usage", (0, 0))[0]
    maximum = call.account.daily_limit
    body = {"DailyApiRequests": {"Max": maximum, "Remaining": max(maximum - used, 0)}}
    body.update({name: {"Max": top, "Remaining": top} for name, top in _STATIC_LIMITS.items()})
    return Reply(dict(sorted(body.items())))


@endpoint(SALESFORCE, RequestKind.META)
def global_describe(request: HttpRequest, call: Call, version: str) -> Reply:
    return Reply(describe.global_describe(org_of(call, version), host_of(request)))


@endpoint(SALESFORCE, RequestKind.META)
def object_describe(request: HttpRequest, call: Call, version: str, sobject: str) -> Reply:
    org = org_of(call, version)
    object_name = org.require_object(sobject)
    call.object_name = object_name
    return Reply(describe.object_describe(org, object_name, host_of(request)))


@endpoint(SALESFORCE, RequestKind.META)
def object_metadata(request: HttpRequest, call: Call, version: str, sobject: str) -> Reply:
    org = org_of(call, version)
    object_name = org.require_object(sobject)
    call.object_name = object_name
    return Reply(describe.object_metadata(org, object_name, host_of(request)))


@endpoint(SALESFORCE, RequestKind.WRITE)
def create_record(request: HttpRequest, call: Call, version: str, sobject: str) -> Reply:
    org = org_of(call, version)
    object_name = org.require_object(sobject)
    body = call.json_body()
    with transaction.atomic():
        record = Writer(org, call).create(object_name, body)
    return Reply({"id": record.crm_id, "success": True, "errors": []}, 201)


def requested_fields(org: Org, object_name: str, fields_param: str | None) -> list[str] | None:
    """The canonical names in a ``fields=`` parameter (with Id, which is always answered)."""
    if fields_param is None:
        return None
    names: list[str] = []
    for raw in filter(None, (part.strip() for part in fields_param.split(","))):
        prop = org.visible_field(object_name, raw)
        if prop is None:
            raise SandboxError(
                400, _NO_COLUMN.format(field=raw, entity=object_name), "INVALID_FIELD"
            )
        if prop.name not in names:
            names.append(prop.name)
    return [*names, "Id"] if "Id" not in names else names


@endpoint(SALESFORCE, RequestKind.READ)
def get_record(
    request: HttpRequest, call: Call, version: str, sobject: str, record_id: str
) -> Reply:
    org = org_of(call, version)
    object_name = org.require_object(sobject)
    fields = requested_fields(org, object_name, request.GET.get("fields"))
    if object_name == "User":
        user = org.find_user(record_id)
        if user is None:
            raise not_found()
        call.note_read(object_name, [user.crm_user_id])
        return Reply(org.render(object_name, org.user_row(user), fields))
    record = org.locate(object_name, record_id, for_write=False)
    headers = {"ETag": etag(record)} if object_name == "Account" else {}
    call.note_read(object_name, [record.crm_id])
    if not_modified(request, record):
        return Reply(None, 304, headers)
    return Reply(org.render(object_name, org.row(record), fields), headers=headers)


@endpoint(SALESFORCE, RequestKind.WRITE)
def update_record(
    request: HttpRequest, call: Call, version: str, sobject: str, record_id: str
) -> Reply:
    org = org_of(call, version)
    object_name = org.require_object(sobject)
    record = org.locate(object_name, record_id, for_write=True)
    body = call.json_body()
    with transaction.atomic():
        # The precondition and the write see the record as it is under its lock, not as
        # located above: another write may have landed, or deleted it, in between.
        store.lock_record(record)
        if record.deleted_at is not None:
            raise SandboxError(404, "entity is deleted", "ENTITY_IS_DELETED", fields=[])
        check_write_preconditions(request, record)
        Writer(org, call).update(record, body)
    headers = {"ETag": etag(record)} if object_name == "Account" else {}
    return Reply(None, 204, headers)


@endpoint(SALESFORCE, RequestKind.WRITE)
def delete_record(
    request: HttpRequest, call: Call, version: str, sobject: str, record_id: str
) -> Reply:
    org = org_of(call, version)
    object_name = org.require_object(sobject)
    record = org.locate(object_name, record_id, for_write=True)
    with transaction.atomic():
        Writer(org, call).delete(record)
    return Reply(None, 204)


def _query(request: HttpRequest, call: Call, version: str, *, include_deleted: bool) -> Reply:
    soql = request.GET.get("q")
    if not soql:
        raise SandboxError(400, "A query string has to be specified", "MALFORMED_QUERY")
    org = org_of(call, version)
    body = query.run(
        org, call, soql, include_deleted=include_deleted, batch=query.batch_size(request)
    )
    return Reply(body)


@endpoint(SALESFORCE, RequestKind.SEARCH)
def run_query(request: HttpRequest, call: Call, version: str) -> Reply:
    return _query(request, call, version, include_deleted=False)


@endpoint(SALESFORCE, RequestKind.SEARCH)
def run_query_all(request: HttpRequest, call: Call, version: str) -> Reply:
    return _query(request, call, version, include_deleted=True)


@endpoint(SALESFORCE, RequestKind.SEARCH)
def query_more(request: HttpRequest, call: Call, version: str, locator: str) -> Reply:
    org = org_of(call, version)
    return Reply(query.more(org, call, locator, query.batch_size(request)))


@endpoint(SALESFORCE, RequestKind.META)
def unknown_resource(request: HttpRequest, call: Call, **_: str) -> Reply:
    raise not_found()
