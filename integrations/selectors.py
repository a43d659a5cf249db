"""Scoped reads of connections."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet
from django.http import Http404

from governance.models import ADMIN_ROLES, CONFIGURE_ROLES
from governance.selectors import workspaces_for_user
from integrations.models import Connection, ConnectionScope


def connections_visible_to(user: AbstractBaseUser) -> QuerySet[Connection]:
    """A user's own connections, plus the workspace connections of workspaces they configure.

    Other people's user connections stay private to them (credentials are never shown to
    anyone, but whose CRM account is connected is theirs to know).
    """
    if user.is_superuser:
        return Connection.objects.all()
    configured = workspaces_for_user(user, CONFIGURE_ROLES)
    return Connection.objects.filter(
        Q(scope=ConnectionScope.USER, user=user, workspace__in=workspaces_for_user(user))
        | Q(scope=ConnectionScope.WORKSPACE, workspace__in=configured)
    )


def connection_manageable_by(connection: Connection, user: AbstractBaseUser) -> bool:
    if user.is_superuser:
        return True
    if connection.scope == ConnectionScope.USER:
        return connection.user_id == user.pk
    return workspaces_for_user(user, ADMIN_ROLES).filter(pk=connection.workspace_id).exists()


def access_connection_by_id(user: AbstractBaseUser, connection_id: int) -> Connection:
    try:
        return connections_visible_to(user).get(pk=connection_id)
    except Connection.DoesNotExist:
        raise Http404("No such connection.") from None
