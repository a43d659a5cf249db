"""Checking and applying HubSpot object writes (create, update, associate).

Every invalid property of a write is reported at once, in HubSpot's VALIDATION_ERROR body
(``Property values were not valid: [...]`` plus ``errors[].context.propertyName``).
"""

import json
from collections.abc import Mapping, Sequence

from integrations.sandbox import store
from integrations.sandbox.gateway import Call, SandboxError
from integrations.sandbox.hubspot import bodies
from integrations.sandbox.hubspot.common import (
    ASSOCIATION_TYPES,
    DEFAULT_TYPES,
    AssociationType,
    ObjectContext,
)
from integrations.sandbox.hubspot.values import ValueProblem, normalise
from integrations.sandbox.models import SandboxRecord

Problem = tuple[str, str, str]  # property name, HubSpot error code, message


def validation_error(ctx: ObjectContext, problems: list[Problem]) -> SandboxError:
    portal = int(ctx.account.external_id) if ctx.account.external_id.isdigit() else 0
    results = [
        {
            "isValid": False,
            "message": message,
            "error": code,
            "name": name,
            "localizedErrorMessage": message,
            "portalId": portal,
        }
        for name, code, message in problems
    ]
    errors = [
        {"message": message, "code": code, "context": {"propertyName": [name]}}
        for name, code, message in problems
    ]
    return SandboxError(
        400,
        "Property values were not valid: " + json.dumps(results, separators=(",", ":")),
        "VALIDATION_ERROR",
        extra={"errors": errors},
    )


def invalid_input(message: str) -> SandboxError:
    return SandboxError(400, message, "VALIDATION_ERROR")


def check_properties(
    ctx: ObjectContext, properties: Mapping[str, str | None], record: SandboxRecord | None = None
) -> tuple[dict[str, str | None], list[Problem]]:
    """The stored form of each written value (None clears), and what is wrong with them."""
    clean: dict[str, str | None] = {}
    problems: list[Problem] = []
    for name, raw in properties.items():
        prop = ctx.properties.get(name)
        if prop is None:
            problems.append((name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
            continue
        if prop.read_only:
            kind = "calculated" if prop.extra.get("calculated") else "read only"
            message = f"{name} is a {kind} property; its value cannot be set."
            problems.append((name, "READ_ONLY_VALUE", message))
            continue
        if name == "dealstage":
            continue  # checked against the deal's pipeline below
        try:
            clean[name] = normalise(prop, raw, owners=set(ctx.owner_ids))
        except ValueProblem as problem:
            problems.append((name, problem.code, problem.message))
    if ctx.object_name == "deals" and "dealstage" in properties:
        _check_stage(ctx, properties["dealstage"], clean, record, problems)
    return clean, problems


def _check_stage(
    ctx: ObjectContext,
    raw: object,
    clean: dict[str, str | None],
    record: SandboxRecord | None,
    problems: list[Problem],
) -> None:
    stage = "" if raw is None else str(raw)
    if stage == "":
        clean["dealstage"] = None
        return
    pipeline_id = clean.get("pipeline") or (record.values.get("pipeline") if record else None)
    pipeline_id = pipeline_id or "default"
    stage_property = ctx.properties["dealstage"]
    pipeline = next(
        (p for p in stage_property.extra.get("pipelines", []) if p["id"] == pipeline_id), None
    )
    stages = pipeline["stages"] if pipeline else []
    if stage in {s["id"] for s in stages}:
        clean["dealstage"] = stage
        if record is None and "pipeline" not in clean:
            clean["pipeline"] = pipeline_id  # HubSpot files a new deal in its stage's pipeline
        return
    listing = ", ".join(
        f'label: "{s["label"]}"\nvalue: "{s["id"]}"\ndisplay_order: {s["displayOrder"]}\n'
        "hidden: false\nread_only: false\n"
        for s in stages
    )
    problems.append(
        ("dealstage", "INVALID_OPTION", f"{stage} was not one of the allowed options: [{listing}]")
    )


def validated(
    ctx: ObjectContext, properties: Mapping[str, str | None], record: SandboxRecord | None = None
) -> dict[str, str | None]:
    clean, problems = check_properties(ctx, properties, record)
    if problems:
        raise validation_error(ctx, problems)
    return clean


def check_unique_email(
    ctx: ObjectContext, clean: Mapping[str, str | None], record: SandboxRecord | None = None
) -> None:
    """Refuse a contact email another contact has. Call it in the write's transaction: the
    portal's row lock makes two writes claiming one address queue, so the second sees the
    first's contact instead of both finding the address free."""
    email = clean.get("email")
    if ctx.object_name != "contacts" or not email:
        return
    store.lock_account(ctx.account)
    existing = ctx.live().filter(values__email=email)
    if record is not None:
        existing = existing.exclude(pk=record.pk)
    other = existing.first()
    if other is not None:
        raise SandboxError(409, f"Contact already exists. Existing ID: {other.crm_id}", "CONFLICT")


def create(ctx: ObjectContext, call: Call, clean: Mapping[str, str | None]) -> SandboxRecord:
    stored = {name: value for name, value in clean.items() if value is not None}
    owner = ctx.owner_ids.get(stored.get("hubspot_owner_id", ""))
    record = store.create_record(ctx.account, ctx.object_name, stored, owner=owner)
    call.note_write(ctx.object_name, record.crm_id, stored)
    return record


def update(
    ctx: ObjectContext, call: Call, record: SandboxRecord, clean: Mapping[str, str | None]
) -> None:
    """Write ``clean`` into ``record``, which the caller locked (``store.lock_record``) before
    checking the write against it."""
    owner = (
        ctx.owner_ids.get(clean["hubspot_owner_id"] or "")
        if "hubspot_owner_id" in clean
        else store.UNCHANGED
    )
    store.update_record(record, clean, owner=owner)
    call.note_write(ctx.object_name, record.crm_id, dict(clean))


def association_kind(
    source: str, target: str | None, spec: bodies.AssociationSpec
) -> tuple[AssociationType, str]:
    """The association type an AssociationSpec names, checked against the objects it joins
    (``target`` None: any object the type leads to)."""
    category = spec.association_category or "HUBSPOT_DEFINED"
    type_id = spec.association_type_id
    kind = ASSOCIATION_TYPES.get(type_id) if type_id is not None else None
    if kind is None or kind.source != source or target not in (None, kind.target):
        between = f"{source} and {target}" if target else source
        raise invalid_input(f"{category} {type_id} is not a valid association type for {between}")
    return kind, category


def link(
    source: SandboxRecord, target: SandboxRecord, kind: AssociationType, category: str
) -> None:
    """Associate both ways; a labelled association also gets the unlabelled default."""
    store.associate(
        source,
        target,
        type_id=kind.type_id,
        reverse_type_id=kind.reverse,
        category=category,
        label=kind.label or "",
    )
    default = DEFAULT_TYPES.get((kind.source, kind.target))
    if default is not None and default != kind.type_id:
        store.associate(
            source, target, type_id=default, reverse_type_id=ASSOCIATION_TYPES[default].reverse
        )


def planned_links(
    ctx: ObjectContext, associations: Sequence[bodies.AssociationInput]
) -> list[tuple[SandboxRecord, AssociationType, str]]:
    """The ``associations`` of a create request, checked before anything is written."""
    planned = []
    for item in associations:
        # bodies.read has refused a missing ``to``, its id, or ``types``.
        target_id = item.to.id if item.to else ""
        if not target_id or not item.types:
            raise invalid_input("Invalid input JSON: each association needs to.id and types")
        for spec in item.types:
            kind, category = association_kind(ctx.object_name, None, spec)
            target = store.live_records(ctx.account, kind.target).filter(crm_id=target_id).first()
            if target is None:
                raise invalid_input(
                    f"Could not find {kind.target} object with id {target_id} to associate with"
                )
            planned.append((target, kind, category))
    return planned
