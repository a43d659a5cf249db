"""State changes of workspaces, memberships and CRM property metadata. Views, admin and
commands call these."""

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from audit.services import record_event
from governance.models import CrmProperty, Membership, Role, Workspace

if TYPE_CHECKING:  # integrations imports governance.models, so import it lazily at run time
    from integrations.crm.types import PropertySpec
    from integrations.models import Connection

User = get_user_model()


@transaction.atomic
def do_create_workspace(
    name: str,
    *,
    acting_user: AbstractBaseUser | None,
    slug: str | None = None,
    add_as_admin: bool = True,
) -> Workspace:
    """Create a workspace; the acting user (if any) becomes its first admin unless
    ``add_as_admin`` is False (a platform superuser setting it up for a customer)."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A workspace needs a name."})
    slug = slug or slugify(name)[:64]
    if not slug:
        raise ValidationError({"slug": "The name gives no usable slug; give one explicitly."})
    if Workspace.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"A workspace with the slug {slug!r} already exists."})
    workspace = Workspace(name=name, slug=slug)
    workspace._history_user = acting_user
    workspace.save()
    _audit(
        workspace,
        "workspace.created",
        acting_user,
        after={"name": name, "slug": slug},
        reason=f"created {name}",
    )
    if acting_user is not None and add_as_admin:
        do_set_membership(workspace, acting_user, Role.ADMIN, acting_user=acting_user)
    return workspace


WORKSPACE_FIELDS = ("name", "slug")


@transaction.atomic
def do_update_workspace(
    workspace: Workspace, changes: dict[str, object], *, acting_user: AbstractBaseUser | None
) -> list[str]:
    """Rename a workspace (name, slug); the fields that changed, empty when none did."""
    unknown = set(changes) - set(WORKSPACE_FIELDS)
    if unknown:
        raise ValueError(f"Not changeable here: {', '.join(sorted(unknown))}.")
    locked = Workspace.objects.select_for_update().get(pk=workspace.pk)
    after = {name: value for name, value in changes.items() if getattr(locked, name) != value}
    if not after:
        return []
    before = {name: getattr(locked, name) for name in after}
    taken = Workspace.objects.filter(slug=after.get("slug")).exclude(pk=locked.pk)
    if "slug" in after and taken.exists():
        raise ValidationError({"slug": f"A workspace with the slug {after['slug']!r} exists."})
    for name, value in after.items():
        setattr(locked, name, value)
    locked._history_user = acting_user
    locked.save(update_fields=list(after))
    _audit(
        locked,
        "workspace.changed",
        acting_user,
        before=before,
        after=after,
        reason=f"changed {', '.join(sorted(after))}",
    )
    for name, value in after.items():
        setattr(workspace, name, value)
    return sorted(after)


@transaction.atomic
def do_set_membership(
    workspace: Workspace,
    user: AbstractBaseUser,
    role: Role,
    *,
    acting_user: AbstractBaseUser | None,
) -> Membership:
    """Give ``user`` ``role`` in ``workspace``, adding them if needed.

    Members log in through the admin, so they are made staff; what they may see and do
    there is decided by their roles (governance.admin_scoping), not by Django permissions.
    """
    membership = (
        Membership.objects.select_for_update().filter(workspace=workspace, user=user).first()
    )
    if membership is not None and membership.role == role:
        return membership
    previous = membership.role if membership is not None else None
    if membership is not None:
        check_role_change(membership, role)
    else:
        membership = Membership(workspace=workspace, user=user)
    membership.role = role
    membership._history_user = acting_user
    if previous is None:
        membership.save()
    else:
        membership.save(update_fields=["role"])
    made_staff = not user.is_staff
    if made_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    who = user.get_username()
    if previous is None:
        _audit(
            workspace,
            "membership.added",
            acting_user,
            after={"user": who, "role": role},
            reason=f"added {who} as {Role(role).label}",
            context={"membership": membership.pk, "user": user.pk, "made_staff": made_staff},
        )
    else:
        _audit(
            workspace,
            "membership.role_changed",
            acting_user,
            before={"role": previous},
            after={"role": role},
            reason=f"{who}: {Role(previous).label} -> {Role(role).label}",
            context={"membership": membership.pk, "user": user.pk},
        )
    return membership


@transaction.atomic
def do_remove_membership(membership: Membership, *, acting_user: AbstractBaseUser | None) -> None:
    membership = (
        Membership.objects.select_for_update()
        .select_related("user", "workspace")
        .filter(pk=membership.pk)
        .first()
    )
    if membership is None:
        return
    if membership.role == Role.ADMIN:
        _ensure_another_admin(membership.workspace, excluding=membership)
    who = membership.user.get_username()
    _audit(
        membership.workspace,
        "membership.removed",
        acting_user,
        before={"user": who, "role": membership.role},
        reason=f"removed {who} ({Role(membership.role).label})",
        context={"membership": membership.pk, "user": membership.user_id},
    )
    membership._history_user = acting_user
    membership.delete()


def _audit(
    workspace: Workspace,
    action: str,
    acting_user: AbstractBaseUser | None,
    *,
    before: object = None,
    after: object = None,
    reason: str = "",
    context: dict | None = None,
) -> None:
    record_event(
        workspace,
        action=action,
        outcome="ok",
        actor_kind="user" if acting_user else "system",
        actor_user=acting_user,
        before=before,
        after=after,
        reason=reason,
        context=context,
    )


def get_or_create_user(email: str, *, password: str | None) -> tuple[AbstractBaseUser, bool]:
    """The account for ``email``; a new one needs an initial password."""
    email = User.objects.normalize_email(email.strip()).lower()
    existing = User.objects.filter(email__iexact=email).order_by("pk").first()
    if existing is not None:
        return existing, False
    if not password:
        raise ValidationError(
            {"password": f"No account uses {email} yet: give an initial password for it."}
        )
    user = User(username=email, email=email, is_staff=True)
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    return user, True


def check_role_change(membership: Membership, role: Role) -> None:
    """Refuse to leave a workspace without an admin."""
    if membership.pk and membership.role == Role.ADMIN and role != Role.ADMIN:
        _ensure_another_admin(membership.workspace, excluding=membership)


def _ensure_another_admin(workspace: Workspace, *, excluding: Membership) -> None:
    others = Membership.objects.filter(workspace=workspace, role=Role.ADMIN).exclude(
        pk=excluding.pk
    )
    if not others.exists():
        raise ValidationError(
            f"{excluding.user} is the last admin of {workspace}; make someone else admin first."
        )


@dataclass(frozen=True)
class RefreshSummary:
    added: int
    updated: int
    missing: int  # rows the CRM did not return this time (kept, flagged missing)

    def __str__(self) -> str:
        return f"{self.added} added, {self.updated} updated, {self.missing} no longer in the CRM"


def do_refresh_properties_for(
    workspace: Workspace, provider: str, *, acting_user: AbstractBaseUser | None
) -> RefreshSummary:
    """Refresh from the workspace connection of ``provider``; a missing one raises
    ConnectionMissing with the words that say who must connect what."""
    from integrations.connections import Purpose, resolve_connection

    resolved = resolve_connection(workspace, provider, Purpose.WORKFLOW, acting_user)
    return do_refresh_properties(resolved.connection, acting_user=acting_user)


def do_refresh_properties(
    connection: "Connection", *, acting_user: AbstractBaseUser | None
) -> RefreshSummary:
    """Cache the CRM's property metadata of every object type for ``connection``.

    Policies are enforced on the workspace connection, so only its describe counts: a
    rep's describe reflects that rep's field-level security. Every describe happens before
    the database transaction opens, so no transaction waits on the CRM; ConnectionProblem
    and CrmError propagate with the CRM's message.
    """
    from integrations.connections import Purpose, resolve_connection
    from integrations.crm.types import ObjectType
    from integrations.models import ConnectionScope

    if connection.scope != ConnectionScope.WORKSPACE:
        raise ValueError("CRM properties are cached from workspace connections only")
    resolved = resolve_connection(
        connection.workspace, connection.provider, Purpose.WORKFLOW, acting_user
    )
    if resolved.connection.pk != connection.pk:  # the slot was reconnected meanwhile
        raise ValueError(f"{connection} is no longer the workspace connection")
    client = resolved.client()
    described = {object_type: client.describe(object_type) for object_type in ObjectType}
    return _store_properties(connection, described, seen_at=timezone.now())


@transaction.atomic
def _store_properties(
    connection: "Connection",
    described: "dict[str, list[PropertySpec]]",
    *,
    seen_at: datetime,
) -> RefreshSummary:
    existing = {
        (prop.object_type, prop.name): prop
        for prop in CrmProperty.objects.select_for_update().filter(connection=connection)
    }
    added: list[CrmProperty] = []
    changed: list[CrmProperty] = []
    seen: set[tuple[str, str]] = set()
    for object_type, specs in described.items():
        for spec in specs:
            key = (str(object_type), spec.name)
            seen.add(key)
            values = _metadata(spec)
            row = existing.get(key)
            if row is None:
                added.append(
                    CrmProperty(
                        workspace_id=connection.workspace_id,
                        connection=connection,
                        provider=connection.provider,
                        object_type=key[0],
                        name=spec.name,
                        last_seen_at=seen_at,
                        **values,
                    )
                )
            elif row.missing or any(getattr(row, k) != v for k, v in values.items()):
                for field, value in values.items():
                    setattr(row, field, value)
                row.missing = False
                changed.append(row)
    CrmProperty.objects.bulk_create(added)
    CrmProperty.objects.bulk_update(changed, [*_METADATA_FIELDS, "missing"])
    seen_pks = [row.pk for key, row in existing.items() if key in seen]
    CrmProperty.objects.filter(pk__in=seen_pks).update(last_seen_at=seen_at)
    gone = [row.pk for key, row in existing.items() if key not in seen]
    CrmProperty.objects.filter(pk__in=gone).update(missing=True)
    return RefreshSummary(added=len(added), updated=len(changed), missing=len(gone))


_METADATA_FIELDS = ("label", "type", "options", "read_only", "custom", "description", "max_length")


def _metadata(spec: "PropertySpec") -> dict[str, object]:
    return {
        "label": spec.label,
        "type": str(spec.type),
        "options": [{"value": option.value, "label": option.label} for option in spec.options],
        "read_only": spec.read_only,
        "custom": spec.custom,
        "description": spec.description,
        "max_length": spec.max_length,
    }
