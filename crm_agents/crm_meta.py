"""CRM metadata the pipeline needs on every run, without asking the CRM on every run.

Property types and options come from the workspace's CrmProperty cache (refreshed from the
CRM's describe when it is empty). Deal stages and owners are asked once per connection and
kept for a few minutes: they change rarely, and asking on every run would double the CRM
requests of a run.
"""

from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache

from governance.guard import Guard
from governance.models import CrmProperty
from integrations.crm.base import StageInfo
from integrations.crm.types import ObjectType, Owner, PropertyOption, PropertySpec, PropertyType
from integrations.models import Connection, ConnectionScope

METADATA_TTL = 300  # seconds
T = TypeVar("T")


def property_specs(connection, object_type: str) -> dict[str, PropertySpec]:
    """The object's properties by native name, as the workspace connection described them.

    Property metadata is cached from the workspace connection only; a rep's own connection
    to the same CRM account uses that (types and options are the account's, not the rep's).
    """
    if connection.scope != ConnectionScope.WORKSPACE:
        workspace_connection = Connection.objects.filter(
            workspace_id=connection.workspace_id,
            provider=connection.provider,
            scope=ConnectionScope.WORKSPACE,
        ).first()
        if workspace_connection is None:
            return {}
        connection = workspace_connection
    rows = CrmProperty.objects.filter(connection=connection, object_type=object_type, missing=False)
    if not rows.exists():
        from governance.services import do_refresh_properties

        do_refresh_properties(connection, acting_user=None)
    return {
        row.name: PropertySpec(
            name=row.name,
            label=row.label,
            type=_type_of(row.type),
            options=tuple(
                PropertyOption(str(option.get("value")), str(option.get("label", "")))
                for option in row.options or []
            ),
            read_only=row.read_only,
            custom=row.custom,
            description=row.description,
            max_length=row.max_length,
        )
        for row in rows
    }


def same_as(specs: dict[str, PropertySpec], native: str, a: str | None, b: str | None) -> bool:
    """Whether two values of the property ``native`` mean the same, by its type when the
    metadata knows it (84000 == 84000.00), else compared exactly."""
    from crm_agents.coerce import same_value

    spec = specs.get(native)
    return same_value(a, b, spec) if spec else a == b


def _type_of(name: str) -> PropertyType:
    try:
        return PropertyType(name)
    except ValueError:
        return PropertyType.STRING


def _per_connection(connection, what: str, ask: Callable[[], T]) -> T:
    """``ask()``'s answer, kept for METADATA_TTL per connection (a reconnected slot is a
    new connection row, so it never sees the old one's answers)."""
    key = f"crm-steward:{what}:{connection.pk}:{connection.created_at.timestamp()}"
    found = cache.get(key)
    if found is None:
        found = ask()
        cache.set(key, found, METADATA_TTL)
    return found


def deal_stages(guard: Guard, connection) -> list[StageInfo]:
    stages = _per_connection(connection, "stages", guard.deal_stages)
    guard.prime_stages(stages)
    return stages


def described(guard: Guard, connection, object_type: str) -> list[PropertySpec]:
    """The object's properties as this connection's describe gives them (on Salesforce with
    the connection user's field-level security), through the guard and kept for a few
    minutes. Callers filter by the current policy again: the guard filtered these by the
    policy of the moment they were asked."""
    specs = _per_connection(
        connection, f"described:{object_type}", lambda: guard.describe(ObjectType(object_type))
    )
    return [spec for spec in specs if guard.policy.may_read(object_type, spec.name)]


def owners(guard: Guard, connection) -> list[Owner]:
    return _per_connection(connection, "owners", guard.owners)


def owner_id_for_email(guard: Guard, connection, email: str) -> str | None:
    email = email.strip().lower()
    if not email:
        return None
    for owner in owners(guard, connection):
        if owner.email.strip().lower() == email:
            return owner.id
    return None


def closed_stage_values(stages: list[StageInfo]) -> set[str]:
    return {stage.value for stage in stages if stage.closed}


def stage_rank(stages: list[StageInfo], value: str | None) -> float:
    """How far along the pipeline a stage is, from 0 to 1 (unknown stages count as 0)."""
    open_stages = [stage.value for stage in stages if not stage.closed]
    if value not in open_stages or len(open_stages) < 2:
        return 0.0
    return open_stages.index(value) / (len(open_stages) - 1)


__all__ = ["ObjectType", "deal_stages", "owners", "property_specs"]
