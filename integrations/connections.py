"""Connection resolution: the only way any code obtains a CRM client.

Purpose ``workflow`` uses the workspace connection. Purpose ``chat`` uses the acting user's
own connection, or the workspace connection when the workspace's policy forces it. There
is never a fallback to a broader connection: a missing, expired or revoked connection is a
typed error whose message says exactly what to connect, or whom to ask.
"""

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from governance.models import CrmProvider, Policy, Workspace
from integrations import oauth
from integrations.models import Connection, ConnectionScope, ConnectionStatus
from integrations.signals import send_connection_event, without_secrets


class Purpose(StrEnum):
    WORKFLOW = "workflow"
    CHAT = "chat"


class ConnectionProblem(Exception):
    """Why no client can be had; ``message`` is meant for the person who asked."""

    def __init__(self, message: str, *, connection: Connection | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.connection = connection


class ConnectionMissing(ConnectionProblem):
    pass


class ConnectionExpired(ConnectionProblem):
    pass


class ConnectionRevoked(ConnectionProblem):
    pass


class ConnectionFailed(ConnectionProblem):
    """The connection is in error, or its CRM could not be reached to refresh it."""


@dataclass(frozen=True)
class ResolvedConnection:
    connection: Connection
    purpose: Purpose
    acting_user: AbstractBaseUser | None
    reason: str  # why this connection, in words (shown in run details and the audit)

    @property
    def scope(self) -> str:
        return self.connection.scope

    def client(self):
        """A CRM client acting through this connection (see integrations/connected.py)."""
        from integrations.connected import ConnectedClient

        return ConnectedClient(self)


def connect_url() -> str:
    return f"{settings.SITE_URL}{reverse('connections:list')}"


def provider_label(provider: str) -> str:
    return CrmProvider(provider).label


def resolve_connection(
    workspace: Workspace,
    provider: str,
    purpose: Purpose | str,
    user: AbstractBaseUser | None = None,
) -> ResolvedConnection:
    purpose = Purpose(purpose)
    name = provider_label(provider)
    if purpose is Purpose.WORKFLOW:
        connection = _workspace_connection(workspace, provider)
        if connection is None:
            raise ConnectionMissing(
                f"{name} is not connected for the workspace {workspace}: a workspace admin "
                f"must connect it at {connect_url()} ('Connect {name} for the workspace')."
            )
        reason = "the workspace connection, which serves workflows"
    else:
        if user is None:
            raise ValueError("chat needs the acting user to pick their connection")
        policy = Policy.objects.filter(workspace=workspace, provider=provider).first()
        if policy is not None and policy.force_workspace_connection_for_chat:
            connection = _workspace_connection(workspace, provider)
            if connection is None:
                raise ConnectionMissing(
                    f"{workspace} has chat use the workspace's {name} connection, and there is "
                    f"none: ask a workspace admin to connect {name} at {connect_url()}."
                )
            reason = "the workspace connection: a workspace admin made chat use it"
        else:
            connection = Connection.objects.filter(
                workspace=workspace, provider=provider, scope=ConnectionScope.USER, user=user
            ).first()
            if connection is None:
                raise ConnectionMissing(
                    f"You have not connected your own {name} account in {workspace}: connect "
                    f"it at {connect_url()}. Chat acts with your own {name} permissions and "
                    "does not use the workspace connection unless an admin turns that on."
                )
            reason = "your own connection, so your CRM permissions apply"
    ensure_usable(connection)
    return ResolvedConnection(connection, purpose, user, reason)


def _workspace_connection(workspace: Workspace, provider: str) -> Connection | None:
    return Connection.objects.filter(
        workspace=workspace, provider=provider, scope=ConnectionScope.WORKSPACE
    ).first()


def describe_owner(connection: Connection) -> tuple[str, str]:
    """(whose connection, who can fix it) in words."""
    name = provider_label(connection.provider)
    if connection.scope == ConnectionScope.USER:
        return f"Your {name} connection", "reconnect it"
    return f"The workspace's {name} connection", "a workspace admin must reconnect it"


def ensure_usable(connection: Connection) -> Connection:
    """Raise the right problem for a connection that cannot serve; refresh one about to expire."""
    whose, fix = describe_owner(connection)
    if connection.status == ConnectionStatus.REVOKED:
        raise ConnectionRevoked(
            f"{whose} was disconnected; {fix} at {connect_url()}.", connection=connection
        )
    if connection.status == ConnectionStatus.EXPIRED:
        raise ConnectionExpired(
            f"{whose} has expired ({connection.last_error or 'the CRM ended the grant'}); "
            f"{fix} at {connect_url()}.",
            connection=connection,
        )
    if connection.status == ConnectionStatus.ERROR:
        raise ConnectionFailed(
            f"{whose} is failing: {connection.last_error}; {fix} at {connect_url()}.",
            connection=connection,
        )
    if _due_for_refresh(connection):
        refresh_connection(connection)
    return connection


def _due_for_refresh(connection: Connection) -> bool:
    if connection.expires_at is None:
        return False
    margin = timedelta(seconds=settings.CRM_TOKEN_REFRESH_MARGIN)
    return connection.expires_at <= timezone.now() + margin


def refresh_connection(connection: Connection, *, force: bool = False) -> Connection:
    """Refresh the access token under a lock, so concurrent workers refresh it once.

    With Redis the lock is a Redis lock shared by every worker host; without, a lease on the
    connection's row taken by a conditional UPDATE. Either way no database transaction is
    open during the call to the CRM (on SQLite that would lock the whole database). Whoever
    gets the lock second finds the token already fresh and uses it.
    """
    whose, fix = describe_owner(connection)
    with _refresh_lock(connection):
        current = Connection.objects.get(pk=connection.pk)
        _copy(current, connection)
        if current.status != ConnectionStatus.ACTIVE:
            return ensure_usable(connection)  # raises the problem the status stands for
        if not force and not _due_for_refresh(current):
            return connection  # another worker refreshed it while this one waited
        problem = _refresh(current, whose, fix)
        _copy(current, connection)
    if problem is not None:
        problem.connection = connection
        raise problem
    return connection


def _refresh(current: Connection, whose: str, fix: str) -> ConnectionProblem | None:
    old = current.credentials
    refresh_token = old.refresh_token
    if not refresh_token:
        _refresh_failed(
            current,
            "the access token expired and there is no refresh token",
            status=ConnectionStatus.EXPIRED,
        )
        return ConnectionExpired(
            f"{whose} has expired and cannot be refreshed; {fix} at {connect_url()}."
        )
    try:
        credentials, instance_url = oauth.refresh(current.provider, refresh_token)
    except oauth.OAuthFailed as exc:
        said = without_secrets(exc.message, refresh_token, old.access_token)
        if exc.permanent:
            _refresh_failed(current, f"refresh refused: {said}", status=ConnectionStatus.EXPIRED)
            return ConnectionExpired(
                f"{whose} could not be refreshed ({exc.message}); {fix} at {connect_url()}."
            )
        _refresh_failed(current, f"refresh failed, will retry: {said}")
        return ConnectionFailed(
            f"{whose} could not be refreshed just now ({exc.message}); try again shortly."
        )
    current.set_credentials(credentials)
    if instance_url:
        current.api_base_url = instance_url.rstrip("/")
    current.last_error = ""
    current.save(
        update_fields=[
            "encrypted_credentials",
            "expires_at",
            "api_base_url",
            "last_error",
            "updated_at",
        ]
    )
    return None


def _refresh_failed(connection: Connection, error: str, *, status: str | None = None) -> None:
    """Keep why on the connection and in the audit trail (by connection_event), together.

    ``error`` holds no credential: the CRM's words have been through ``without_secrets``.
    """
    before = {"status": connection.status}
    connection.last_error = error
    if status is not None:
        connection.status = status
    with transaction.atomic():
        connection.save(update_fields=["status", "last_error", "updated_at"])
        send_connection_event(
            connection.workspace,
            connection.provider,
            action="connection.refresh_failed",
            connection=connection,
            outcome="failed",
            before=before,
            after={"status": connection.status},
            reason=error,
        )


def _copy(source: Connection, target: Connection) -> None:
    for field in ("status", "last_error", "encrypted_credentials", "expires_at", "api_base_url"):
        setattr(target, field, getattr(source, field))


@contextlib.contextmanager
def _refresh_lock(connection: Connection) -> Iterator[None]:
    if settings.REDIS_URL:
        with _redis_lock(connection):
            yield
    else:
        with _row_lease(connection):
            yield


LOCK_SECONDS = 60


@contextlib.contextmanager
def _redis_lock(connection: Connection) -> Iterator[None]:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    lock = client.lock(
        f"crm-steward:connection-refresh:{connection.pk}",
        timeout=LOCK_SECONDS,
        blocking_timeout=LOCK_SECONDS,
    )
    if not lock.acquire():
        raise ConnectionFailed("Another worker is still refreshing this connection; try again.")
    try:
        yield
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()


@contextlib.contextmanager
def _row_lease(connection: Connection) -> Iterator[None]:
    deadline = time.monotonic() + LOCK_SECONDS
    while True:
        now = timezone.now()
        taken = (
            Connection.objects.filter(pk=connection.pk)
            .filter(Q(refresh_lease_until__isnull=True) | Q(refresh_lease_until__lt=now))
            .update(refresh_lease_until=now + timedelta(seconds=LOCK_SECONDS))
        )
        if taken:
            break
        if time.monotonic() > deadline:
            raise ConnectionFailed("Another worker is still refreshing this connection; try again.")
        time.sleep(0.1)
    try:
        yield
    finally:
        Connection.objects.filter(pk=connection.pk).update(refresh_lease_until=None)


__all__ = [
    "ConnectionExpired",
    "ConnectionFailed",
    "ConnectionMissing",
    "ConnectionProblem",
    "ConnectionRevoked",
    "Purpose",
    "ResolvedConnection",
    "ensure_usable",
    "refresh_connection",
    "resolve_connection",
]
