"""What happens to connections, told to the layers above (DESIGN.md invariant 10).

integrations sits below audit and imports nothing of it: a connection's state changes send
``connection_event`` instead, and governance/signals.py writes the audit event. The signal
is sent inside the transaction that made the change, so the event commits with it or not
at all. Nothing sent here ever carries a credential.
"""

import re

from django.contrib.auth.models import AbstractBaseUser
from django.dispatch import Signal

from governance.models import Workspace
from integrations.models import Connection

# Keyword arguments: workspace, provider, scope, connection (None for a refused connect),
# action, outcome ("ok" or "failed"), acting_user (None: the system), before, after, reason.
connection_event = Signal()

# A URL's user info, path and query, up to the punctuation that ends a sentence around it.
_URL_PATH = re.compile(r"(https?://)(?:[^@/?#\s]*@)?([^/?#\s]+)\S*?([.,:;)]?)(?=\s|$)")


def send_connection_event(
    workspace: Workspace,
    provider: str,
    *,
    action: str,
    scope: str = "",
    connection: Connection | None = None,
    outcome: str = "ok",
    acting_user: AbstractBaseUser | None = None,
    before: dict | None = None,
    after: dict | None = None,
    reason: str = "",
) -> None:
    connection_event.send(
        sender=Connection,
        workspace=workspace,
        provider=provider,
        scope=scope or (connection.scope if connection is not None else ""),
        connection=connection,
        action=action,
        outcome=outcome,
        acting_user=acting_user,
        before=before,
        after=after,
        reason=reason,
    )


def without_secrets(text: str, *secrets: str | None) -> str:
    """``text`` with the given secrets and every URL's path (a HubSpot token can be one)
    taken out, for a reason that is stored and shown."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _URL_PATH.sub(r"\1\2/…\3", text)


def connection_snapshot(connection: Connection) -> dict[str, object]:
    """Who and where a connection acts, for an event's before/after: never its credentials."""
    return {
        "status": connection.status,
        "auth_kind": connection.auth_kind,
        "crm_account_id": connection.crm_account_id,
        "api_base_url": connection.api_base_url,
        "crm_user_id": connection.crm_user_id,
        "crm_user_email": connection.crm_user_email,
    }
