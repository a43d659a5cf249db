"""State changes of connections. Views, admin actions and commands call these.

Each connect and disconnect sends ``connection_event`` (integrations/signals.py) in its
transaction, which audits it.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from governance.models import CrmProvider, Workspace
from integrations import oauth
from integrations.crm.clients import build_client
from integrations.crm.errors import CrmError
from integrations.models import (
    AuthKind,
    Connection,
    ConnectionScope,
    ConnectionStatus,
    Credentials,
)
from integrations.signals import connection_snapshot, send_connection_event, without_secrets


def do_connect(
    workspace: Workspace,
    provider: str,
    scope: str,
    *,
    credentials: Credentials,
    identity: oauth.Identity,
    auth_kind: str,
    acting_user: AbstractBaseUser,
    user: AbstractBaseUser | None = None,
) -> Connection:
    """Store (or replace) the connection in its slot: one per workspace and CRM, or one per
    user, workspace and CRM."""
    if scope == ConnectionScope.USER and user is None:
        raise ValueError("a user connection needs its user")
    # Ask the CRM first: no database transaction stays open during a call to it.
    owner_id, teams = _hubspot_owner(provider, identity, credentials)
    slot = {"workspace": workspace, "provider": provider, "scope": scope}
    if scope == ConnectionScope.USER:
        slot["user"] = user
    with transaction.atomic():
        connection = Connection.objects.select_for_update().filter(**slot).first() or Connection(
            **slot, created_by=acting_user
        )
        before = connection_snapshot(connection) if connection.pk else None
        connection.auth_kind = auth_kind
        connection.crm_account_id = identity.account_id
        connection.api_base_url = identity.api_base_url.rstrip("/")
        connection.crm_user_id = identity.user_id
        connection.crm_user_email = identity.email
        connection.crm_owner_id, connection.crm_teams = owner_id, teams
        connection.status = ConnectionStatus.ACTIVE
        connection.last_error = ""
        connection.set_credentials(credentials)
        connection.save()
        send_connection_event(
            workspace,
            provider,
            action="connection.reconnected" if before else "connection.connected",
            connection=connection,
            acting_user=acting_user,
            before=before,
            after=connection_snapshot(connection),
            reason=f"connected {connection} ({AuthKind(auth_kind).label})",
        )
    return connection


def _hubspot_owner(
    provider: str, identity: oauth.Identity, credentials: Credentials
) -> tuple[str, list[str]]:
    """The HubSpot owner the connected user is, with their teams (record access needs them)."""
    if provider != CrmProvider.HUBSPOT or not identity.email:
        return "", []
    client = build_client(
        provider, base_url=identity.api_base_url, access_token=credentials.access_token
    )
    email = identity.email.lower()
    for owner in client.owners():
        if owner.email.lower() == email or (owner.user_id and owner.user_id == identity.user_id):
            return owner.id, list(owner.teams)
    return "", []


def connect_with_token(
    workspace: Workspace,
    provider: str,
    scope: str,
    *,
    access_token: str,
    instance_url: str | None,
    acting_user: AbstractBaseUser,
    user: AbstractBaseUser | None = None,
) -> Connection:
    """An admin's alternative to OAuth: a HubSpot private-app token or a Salesforce session."""
    identity = oauth.identify(provider, access_token, api_base_url=instance_url)
    kind = AuthKind.PRIVATE_APP if provider == CrmProvider.HUBSPOT else AuthKind.SESSION
    return do_connect(
        workspace,
        provider,
        scope,
        credentials=Credentials(access_token),
        identity=identity,
        auth_kind=kind,
        acting_user=acting_user,
        user=user,
    )


def connect_with_oauth_grant(
    workspace: Workspace,
    provider: str,
    scope: str,
    *,
    credentials: Credentials,
    instance_url: str | None,
    acting_user: AbstractBaseUser,
    user: AbstractBaseUser | None = None,
) -> Connection:
    """An OAuth grant obtained outside the callback (the demo's, a test's): identified and
    stored as the callback stores one, so the connection knows whose it is (a HubSpot
    private-app token acts as nobody in particular)."""
    identity = oauth.identify(provider, credentials.access_token, api_base_url=instance_url)
    return do_connect(
        workspace,
        provider,
        scope,
        credentials=credentials,
        identity=identity,
        auth_kind=AuthKind.OAUTH,
        acting_user=acting_user,
        user=user,
    )


@transaction.atomic
def do_disconnect(connection: Connection, *, acting_user: AbstractBaseUser) -> None:
    """Revoke the grant at the CRM and keep the row as revoked, so anything that tries to
    use it is told it was disconnected rather than that it never existed."""
    connection = Connection.objects.select_for_update().get(pk=connection.pk)
    if connection.status == ConnectionStatus.REVOKED:
        return
    transaction.on_commit(
        lambda credentials=connection.credentials, base=connection.api_base_url: oauth.revoke(
            connection.provider, credentials, base
        )
    )
    before = {"status": connection.status}
    connection.status = ConnectionStatus.REVOKED
    connection.last_error = f"disconnected by {acting_user}"
    connection.set_credentials(Credentials(access_token=""))
    connection.expires_at = None
    connection.save(
        update_fields=["status", "last_error", "encrypted_credentials", "expires_at", "updated_at"]
    )
    send_connection_event(
        connection.workspace,
        connection.provider,
        action="connection.disconnected",
        connection=connection,
        acting_user=acting_user,
        before=before,
        after={"status": connection.status},
        reason=f"disconnected {connection}",
    )


def do_test_connection(connection: Connection, *, acting_user: AbstractBaseUser) -> str:
    """Make one harmless CRM call through the connection; returns what was found.

    Raises ConnectionProblem or CrmError with the reason; the connection's status and last
    error are updated either way.
    """
    from integrations.connections import Purpose, ResolvedConnection, ensure_usable

    ensure_usable(connection)
    resolved = ResolvedConnection(
        connection,
        Purpose.WORKFLOW if connection.scope == ConnectionScope.WORKSPACE else Purpose.CHAT,
        acting_user,
        "a connection test",
    )
    try:
        owners = resolved.client().owners()
    except CrmError as exc:
        _tested(connection, acting_user, error=without_secrets(str(exc)))
        raise
    found = f"{connection} works: the CRM lists {len(owners)} users."
    _tested(connection, acting_user, error="", found=found)
    return found


def _tested(
    connection: Connection, acting_user: AbstractBaseUser, *, error: str, found: str = ""
) -> None:
    """Keep the test's result on the connection and in the audit trail, together."""
    with transaction.atomic():
        before = connection.last_error
        connection.last_error = error
        connection.save(update_fields=["last_error", "updated_at"])
        send_connection_event(
            connection.workspace,
            connection.provider,
            action="connection.tested",
            connection=connection,
            outcome="failed" if error else "ok",
            acting_user=acting_user,
            before={"last_error": before} if before != error else None,
            after={"last_error": error} if before != error else None,
            reason=error or found,
        )
