"""``/crm/v3/objects/{objectType}``: list, create, read, update and archive one record."""

from collections.abc import Callable

from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt

from integrations.sandbox import store
from integrations.sandbox.gateway import Call, Reply, endpoint
from integrations.sandbox.hubspot import bodies, schema, writes
from integrations.sandbox.hubspot.common import (
    OBJECT_NAMES,
    PROVIDER,
    ObjectContext,
    by_numeric_id,
    next_page,
    not_found,
    not_numeric,
    offset,
    query_flag,
    query_int,
    query_list,
)
from integrations.sandbox.models import RequestKind, SandboxRecord

LIST_LIMIT = 100
HISTORY_LIST_LIMIT = 50


def by_method(**views: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """One URL served by a view per HTTP method (each view logs its own request kind)."""

    @csrf_exempt
    def dispatch(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        view = views.get((request.method or "").lower())
        if view is None:
            return HttpResponseNotAllowed([method.upper() for method in views])
        return view(request, *args, **kwargs)

    return dispatch


def find_record(
    ctx: ObjectContext, object_id: str, *, id_property: str | None = None, archived: bool = False
) -> SandboxRecord:
    records = ctx.archived() if archived else ctx.live()
    if id_property and id_property != "hs_object_id":
        if id_property not in ctx.properties:
            raise writes.invalid_input(f'Property "{id_property}" does not exist')
        if id_property not in schema.UNIQUE_PROPERTIES[ctx.object_name]:
            raise writes.invalid_input(f"{id_property} is not a unique identifier property")
        value = object_id.strip().lower() if id_property == "email" else object_id
        # No stored value holds a NUL, and PostgreSQL refuses one in a query.
        record = (
            None if "\x00" in value else records.filter(**{f"values__{id_property}": value}).first()
        )
    else:
        if not object_id.isdigit():
            raise not_numeric(object_id)
        record = records.filter(crm_id=object_id).first()
    if record is None:
        raise not_found()
    return record


def _association_names(request: HttpRequest) -> list[str]:
    names = [OBJECT_NAMES.get(name.lower()) for name in query_list(request, "associations")]
    return [name for name in dict.fromkeys(names) if name]


@endpoint(PROVIDER, RequestKind.READ)
def list_objects(request: HttpRequest, call: Call, object_type: str) -> Reply:
    ctx = ObjectContext.load(call, object_type, "read")
    history = query_list(request, "propertiesWithHistory")
    limit = query_int(request, "limit", 10, HISTORY_LIST_LIMIT if history else LIST_LIMIT)
    records = by_numeric_id(ctx.archived() if query_flag(request, "archived") else ctx.live())
    if request.GET.get("after", "").strip():
        records = records.filter(number__gte=offset(request.GET["after"]))
    page = list(records[: limit + 1])
    shown = page[:limit]
    results = ctx.render_many(shown, query_list(request, "properties"), history)
    associations = _association_names(request)
    if associations:
        for record, body in zip(shown, results, strict=True):
            body.update(_associations_of(ctx, record, associations))
    call.note_read(ctx.object_name, [record.crm_id for record in shown])
    data: dict = {"results": results}
    if len(page) > limit:
        data["paging"] = next_page(request, page[limit].crm_id)
    return Reply(data)


def _associations_of(ctx: ObjectContext, record: SandboxRecord, names: list[str]) -> dict:
    found = ctx.associations(record, names)
    return {"associations": found} if found else {}


@endpoint(PROVIDER, RequestKind.WRITE)
def create_object(request: HttpRequest, call: Call, object_type: str) -> Reply:
    ctx = ObjectContext.load(call, object_type, "write")
    body = bodies.read(call, bodies.ObjectCreate)
    clean = writes.validated(ctx, body.properties or {})
    links = writes.planned_links(ctx, body.associations or [])
    with transaction.atomic():
        writes.check_unique_email(ctx, clean)
        record = writes.create(ctx, call, clean)
        for target, kind, category in links:
            writes.link(record, target, kind, category)
    names = ctx.selected([name for name, value in clean.items() if value is not None])
    return Reply(ctx.render(record, names), 201)


@endpoint(PROVIDER, RequestKind.READ)
def get_object(request: HttpRequest, call: Call, object_type: str, object_id: str) -> Reply:
    ctx = ObjectContext.load(call, object_type, "read")
    record = find_record(
        ctx,
        object_id,
        id_property=request.GET.get("idProperty"),
        archived=query_flag(request, "archived"),
    )
    data = ctx.render_many(
        [record], query_list(request, "properties"), query_list(request, "propertiesWithHistory")
    )[0]
    data.update(_associations_of(ctx, record, _association_names(request)))
    call.note_read(ctx.object_name, [record.crm_id])
    return Reply(data)


@endpoint(PROVIDER, RequestKind.WRITE)
def update_object(request: HttpRequest, call: Call, object_type: str, object_id: str) -> Reply:
    ctx = ObjectContext.load(call, object_type, "write")
    record = find_record(ctx, object_id, id_property=request.GET.get("idProperty"))
    properties = bodies.read(call, bodies.ObjectInput).properties or {}
    with transaction.atomic():
        # Checked and merged against the record as it is under its lock, not as found above:
        # a write to another field may have landed in between.
        store.lock_record(record)
        if record.deleted_at is not None:
            raise not_found()
        clean = writes.validated(ctx, properties, record)
        writes.check_unique_email(ctx, clean, record)
        writes.update(ctx, call, record, clean)
    return Reply(written_object(ctx, record, clean))


def written_object(ctx: ObjectContext, record: SandboxRecord, clean: dict) -> dict:
    """HubSpot answers a write with the properties written (a cleared one as "")."""
    data = ctx.render(record, ctx.selected(list(clean)))
    for name in clean:
        if data["properties"].get(name) is None:
            data["properties"][name] = ""
    return data


@endpoint(PROVIDER, RequestKind.WRITE)
def archive_object(request: HttpRequest, call: Call, object_type: str, object_id: str) -> Reply:
    ctx = ObjectContext.load(call, object_type, "write")
    record = find_record(ctx, object_id)
    store.delete_record(record)
    call.note_write(ctx.object_name, record.crm_id, {})
    return Reply(None, 204)


collection = by_method(get=list_objects, post=create_object)
item = by_method(get=get_object, patch=update_object, delete=archive_object)
