"""Scoped reads of workspaces: the only way views and admin find out what a user may see."""

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.http import Http404

from governance.models import ALL_ROLES, Membership, Role, Workspace

AnyUser = AbstractBaseUser | AnonymousUser


def workspaces_for_user(user: AnyUser, roles: Iterable[Role] = ALL_ROLES) -> QuerySet[Workspace]:
    """Workspaces in which ``user`` holds one of ``roles``; superusers hold every role."""
    if not user.is_authenticated or not user.is_active:
        return Workspace.objects.none()
    if user.is_superuser:
        return Workspace.objects.all()
    return Workspace.objects.filter(
        memberships__user=user, memberships__role__in=list(roles)
    ).distinct()


def role_in_workspace(user: AnyUser, workspace: Workspace) -> Role | None:
    if not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return Role.ADMIN
    role = (
        Membership.objects.filter(user=user, workspace=workspace)
        .values_list("role", flat=True)
        .first()
    )
    return Role(role) if role else None


def access_workspace_by_id(
    user: AnyUser, workspace_id: int, roles: Iterable[Role] = ALL_ROLES
) -> Workspace:
    """The workspace, or 404 when it does not exist or ``user`` has no such role in it.

    Outsiders get the same 404 as for a missing id, so ids reveal nothing.
    """
    try:
        return workspaces_for_user(user, roles).get(pk=workspace_id)
    except Workspace.DoesNotExist:
        raise Http404("No such workspace.") from None
