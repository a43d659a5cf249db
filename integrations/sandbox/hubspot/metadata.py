"""Properties (``/crm/v3/properties``), owners (``/crm/v3/owners/``) and deal pipelines
(``/crm/v3/pipelines/deals``)."""

import zlib

from django.http import HttpRequest

from integrations.sandbox.gateway import Call, Reply, SandboxError, endpoint
from integrations.sandbox.hubspot import writes
from integrations.sandbox.hubspot.common import (
    PROVIDER,
    ObjectContext,
    next_page,
    not_found,
    object_name_of,
    offset,
    query_flag,
    query_int,
    query_list,
    require_any_scope,
)
from integrations.sandbox.hubspot.values import format_datetime
from integrations.sandbox.models import RequestKind, SandboxAccount, SandboxProperty, SandboxUser

OWNERS_LIMIT = 500


def property_body(prop: SandboxProperty) -> dict:
    """HubSpot's Property; ``description`` and ``options`` are always there (the SDK needs them)."""
    extra = prop.extra
    body: dict = {
        "updatedAt": format_datetime(prop.updated_at),
        "createdAt": format_datetime(prop.created_at),
        "name": prop.name,
        "label": prop.label,
        "type": prop.type,
        "fieldType": prop.field_type,
        "description": prop.description,
        "groupName": prop.group_name,
        "options": [
            {
                "label": option["label"],
                "value": option["value"],
                "description": option.get("description", ""),
                "displayOrder": option.get("displayOrder", -1),
                "hidden": option.get("hidden", False),
            }
            for option in prop.options
        ],
        "displayOrder": prop.display_order,
        "calculated": bool(extra.get("calculated")),
        "externalOptions": bool(extra.get("externalOptions")),
        "hasUniqueValue": bool(extra.get("hasUniqueValue")),
        "hidden": False,
        "formField": not prop.read_only and prop.object_name == "contacts",
        "archived": False,
        "modificationMetadata": {
            "archivable": prop.custom,
            "readOnlyDefinition": not prop.custom,
            "readOnlyValue": prop.read_only,
            "readOnlyOptions": not prop.custom or prop.type != "enumeration",
        },
        "dataSensitivity": "non_sensitive",
    }
    if not prop.custom:
        body["hubspotDefined"] = True
    for key in ("referencedObjectType", "showCurrencySymbol"):
        if key in extra:
            body[key] = extra[key]
    return body


@endpoint(PROVIDER, RequestKind.META)
def list_properties(request: HttpRequest, call: Call, object_type: str) -> Reply:
    ctx = ObjectContext.load(call, object_type, "schema")
    if query_flag(request, "archived"):
        return Reply({"results": []})  # the sandbox archives no property
    wanted = query_list(request, "properties")
    props = [prop for name, prop in ctx.properties.items() if not wanted or name in wanted]
    props.sort(key=lambda prop: (prop.display_order, prop.name))
    return Reply({"results": [property_body(prop) for prop in props]})


@endpoint(PROVIDER, RequestKind.META)
def get_property(request: HttpRequest, call: Call, object_type: str, property_name: str) -> Reply:
    ctx = ObjectContext.load(call, object_type, "schema")
    prop = ctx.properties.get(property_name)
    if prop is None or query_flag(request, "archived"):
        raise SandboxError(
            404,
            f"Unable to find property {property_name} for object type {ctx.type_id}",
            "OBJECT_NOT_FOUND",
        )
    return Reply(property_body(prop))


def team_id(account: SandboxAccount, team: str) -> str:
    """A stable numeric id for a team name (the sandbox keeps teams as names on users)."""
    return str(1_000_000 + zlib.crc32(f"{account.pk}:{team}".encode()) % 9_000_000)


def owner_body(user: SandboxUser) -> dict:
    user_id = int(user.crm_user_id) if user.crm_user_id.isdigit() else None
    teams = (
        [{"id": team_id(user.account, user.team), "name": user.team, "primary": True}]
        if user.team
        else []
    )
    return {
        "id": user.owner_id,
        "email": user.email,
        "type": "PERSON",
        "firstName": user.first_name,
        "lastName": user.last_name,
        "userId": user_id if user.is_active else None,
        "userIdIncludingInactive": user_id,
        "createdAt": format_datetime(user.created_at),
        "updatedAt": format_datetime(user.created_at),
        "archived": not user.is_active,
        "teams": teams,
    }


@endpoint(PROVIDER, RequestKind.META)
def list_owners(request: HttpRequest, call: Call) -> Reply:
    require_any_scope(call, "crm.objects.owners.read")
    users = SandboxUser.objects.filter(
        account=call.account, is_active=not query_flag(request, "archived")
    ).order_by("pk")
    email = request.GET.get("email", "").strip().lower()
    if email:
        users = users.filter(email=email)
    limit = query_int(request, "limit", 100, OWNERS_LIMIT)
    start = offset(request.GET.get("after"))
    page = list(users[start : start + limit + 1])
    data: dict = {"results": [owner_body(user) for user in page[:limit]]}
    if len(page) > limit:
        data["paging"] = next_page(request, str(start + limit))
    return Reply(data)


@endpoint(PROVIDER, RequestKind.META)
def get_owner(request: HttpRequest, call: Call, owner_id: str) -> Reply:
    require_any_scope(call, "crm.objects.owners.read")
    id_property = request.GET.get("idProperty", "id")
    if id_property not in {"id", "userId"}:
        raise writes.invalid_input(f"idProperty must be id or userId, got {id_property}")
    field = "owner_id" if id_property == "id" else "crm_user_id"
    user = SandboxUser.objects.filter(
        account=call.account, is_active=not query_flag(request, "archived"), **{field: owner_id}
    ).first()
    if user is None:
        raise not_found()
    return Reply(owner_body(user))


def _pipelines(call: Call, object_type: str) -> tuple[list[dict], str]:
    object_name = object_name_of(object_type)
    if object_name != "deals":
        raise writes.invalid_input(f"Object type {object_type} does not have pipelines")
    require_any_scope(call, "crm.objects.deals.read", "crm.schemas.deals.read")
    stage_property = SandboxProperty.objects.get(
        account=call.account, object_name="deals", name="dealstage"
    )
    return stage_property.extra.get("pipelines", []), format_datetime(stage_property.created_at)


def _stage_body(stage: dict, at: str) -> dict:
    return {
        "label": stage["label"],
        "displayOrder": stage["displayOrder"],
        "metadata": stage["metadata"],
        "id": stage["id"],
        "createdAt": at,
        "updatedAt": at,
        "archived": False,
        "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
    }


def _pipeline_body(pipeline: dict, at: str) -> dict:
    return {
        "label": pipeline["label"],
        "displayOrder": pipeline["displayOrder"],
        "id": pipeline["id"],
        "stages": [_stage_body(stage, at) for stage in pipeline["stages"]],
        "createdAt": at,
        "updatedAt": at,
        "archived": False,
    }


def _pipeline(call: Call, object_type: str, pipeline_id: str) -> tuple[dict, str]:
    pipelines, at = _pipelines(call, object_type)
    for pipeline in pipelines:
        if pipeline["id"] == pipeline_id:
            return pipeline, at
    raise SandboxError(
        404, f"Unable to find pipeline {pipeline_id} for object type 0-3", "OBJECT_NOT_FOUND"
    )


@endpoint(PROVIDER, RequestKind.META)
def list_pipelines(request: HttpRequest, call: Call, object_type: str) -> Reply:
    pipelines, at = _pipelines(call, object_type)
    return Reply({"results": [_pipeline_body(pipeline, at) for pipeline in pipelines]})


@endpoint(PROVIDER, RequestKind.META)
def get_pipeline(request: HttpRequest, call: Call, object_type: str, pipeline_id: str) -> Reply:
    pipeline, at = _pipeline(call, object_type, pipeline_id)
    return Reply(_pipeline_body(pipeline, at))


@endpoint(PROVIDER, RequestKind.META)
def list_stages(request: HttpRequest, call: Call, object_type: str, pipeline_id: str) -> Reply:
    pipeline, at = _pipeline(call, object_type, pipeline_id)
    return Reply({"results": [_stage_body(stage, at) for stage in pipeline["stages"]]})
