"""A CRM client bound to a resolved connection.

It takes a slot in the CRM account's rate limits before every call (integrations/throttle.py;
a call refused there is recorded as RateLimited), records every call (CrmCall: which
connection and scope served it, what it touched, how it ended, and how long the CRM took),
refreshes an OAuth token the CRM reports expired and retries that call once, and for a rep's
own HubSpot connection applies the rep's record access, which HubSpot's API does not
(integrations/record_access.py).
"""

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from governance.models import CrmProvider, Membership, Policy
from integrations.crm import errors
from integrations.crm.clients import build_client
from integrations.crm.profiles import PROFILES
from integrations.crm.types import Provider
from integrations.models import AuthKind, Connection, ConnectionScope, ConnectionStatus, CrmCall
from integrations.record_access import HubSpotRecordAccess, allowed_owner_ids
from integrations.signals import send_connection_event, without_secrets
from integrations.throttle import throttle_crm_call

if TYPE_CHECKING:
    from integrations.connections import ResolvedConnection

MAX_RECORDED_IDS = 200


class ConnectedClient:
    def __init__(self, resolved: "ResolvedConnection") -> None:
        self.resolved = resolved
        self.connection = resolved.connection
        self.profile = PROFILES[Provider(self.connection.provider)]
        self._inner = None

    # The protocol's methods, each recorded. ---------------------------------------------------
    def describe(self, object_type):
        return self._call("describe", object_type, lambda c: c.describe(object_type))

    def search(self, query):
        return self._call("search", query.object_type, lambda c: c.search(query))

    def get(self, object_type, record_id, properties):
        return self._call(
            "get", object_type, lambda c: c.get(object_type, record_id, properties), ids=[record_id]
        )

    def get_many(self, object_type, record_ids, properties):
        return self._call(
            "get_many",
            object_type,
            lambda c: c.get_many(object_type, record_ids, properties),
            ids=record_ids,
        )

    def associated_ids(self, object_type, record_id, to_type):
        return self._call(
            "associated_ids",
            object_type,
            lambda c: c.associated_ids(object_type, record_id, to_type),
            ids=[record_id],
        )

    def associations_many(self, object_type, record_ids, to_type):
        return self._call(
            "associations_many",
            object_type,
            lambda c: c.associations_many(object_type, record_ids, to_type),
            ids=record_ids,
        )

    def update(self, object_type, record_id, properties, *, precondition=None):
        return self._call(
            "update",
            object_type,
            lambda c: c.update(object_type, record_id, properties, precondition=precondition),
            ids=[record_id],
        )

    def update_many(self, object_type, updates):
        return self._call(
            "update_many",
            object_type,
            lambda c: c.update_many(object_type, updates),
            ids=list(updates),
        )

    def create(self, object_type, properties, *, associations=None):
        return self._call(
            "create",
            object_type,
            lambda c: c.create(object_type, properties, associations=associations),
        )

    def owners(self):
        return self._call("owners", "", lambda c: c.owners())

    def deal_stages(self):
        return self._call("deal_stages", "deal", lambda c: c.deal_stages())

    # ---------------------------------------------------------------------------------------
    def _client(self):
        if self._inner is None:
            connection = self.connection
            base = build_client(
                connection.provider,
                base_url=connection.api_base_url,
                access_token=connection.credentials.access_token,
            )
            self._inner = self._with_record_access(base)
        return self._inner

    def _with_record_access(self, client):
        connection = self.connection
        if connection.provider != CrmProvider.HUBSPOT or connection.scope != ConnectionScope.USER:
            return client
        level = _hubspot_level(connection)
        owners = allowed_owner_ids(client, level, connection.crm_owner_id, connection.crm_teams)
        return HubSpotRecordAccess(
            client, allowed_owners=owners, own_owner_id=connection.crm_owner_id
        )

    def _call(
        self, operation: str, object_type: Any, run: Callable, *, ids: Iterable[str] = ()
    ) -> Any:
        from integrations.connections import refresh_connection

        started = time.monotonic()
        try:
            try:
                # The client is built before the slot is taken, so the slot is taken just
                # before the request leaves, and the recorded duration is the CRM's time.
                client = self._client()
                self._throttle(operation)
                started = time.monotonic()
                result = run(client)
            except errors.AuthExpired:
                if not self._refreshable():
                    raise
                refresh_connection(self.connection, force=True)
                self._inner = None
                client = self._client()
                self._throttle(operation)
                result = run(client)
        except errors.CrmError as exc:
            if isinstance(exc, errors.AuthExpired):
                self._mark_expired(exc)
            self._record(operation, object_type, ids, started, type(exc).__name__, str(exc))
            raise
        self._record(operation, object_type, ids, started, "ok", "")
        return result

    def _throttle(self, operation: str) -> None:
        connection = self.connection
        throttle_crm_call(connection.provider, connection.crm_account_id, operation)

    def _refreshable(self) -> bool:
        return self.connection.auth_kind == AuthKind.OAUTH and bool(
            self.connection.credentials.refresh_token
        )

    def _mark_expired(self, exc: errors.CrmError) -> None:
        """The CRM refused the token and it cannot be refreshed: the connection is expired,
        audited once (by connection_event) when its status changes."""
        connection = self.connection
        error = without_secrets(
            f"the CRM refused the token: {exc.message}", connection.credentials.access_token
        )
        with transaction.atomic():
            before = (
                Connection.objects.select_for_update()
                .filter(pk=connection.pk)
                .values_list("status", flat=True)
                .first()
            )
            Connection.objects.filter(pk=connection.pk).update(
                status=ConnectionStatus.EXPIRED, last_error=error, updated_at=timezone.now()
            )
            if before is not None and before != ConnectionStatus.EXPIRED:
                send_connection_event(
                    connection.workspace,
                    connection.provider,
                    action="connection.expired",
                    connection=connection,
                    outcome="failed",
                    before={"status": before},
                    after={"status": ConnectionStatus.EXPIRED},
                    reason=error,
                )

    def _record(
        self,
        operation: str,
        object_type: Any,
        ids: Iterable[str],
        started: float,
        outcome: str,
        error: str,
    ) -> None:
        connection = self.connection
        CrmCall.objects.create(
            workspace_id=connection.workspace_id,
            connection=connection,
            connection_label=str(connection),
            provider=connection.provider,
            scope=connection.scope,
            purpose=self.resolved.purpose,
            acting_user=self.resolved.acting_user,
            operation=operation,
            object_type=str(object_type or ""),
            record_ids=[str(i) for i in list(ids)[:MAX_RECORDED_IDS]],
            outcome=outcome,
            error=error[:2000],
            duration_ms=round((time.monotonic() - started) * 1000, 2),
        )
        Connection.objects.filter(pk=connection.pk).update(
            last_used_at=timezone.now(), updated_at=F("updated_at")
        )


def _hubspot_level(connection: Connection) -> str:
    # No policy yet means the defaults, which are the safest levels.
    policy = Policy.objects.filter(
        workspace_id=connection.workspace_id, provider=connection.provider
    ).first() or Policy(provider=connection.provider)
    role = (
        Membership.objects.filter(workspace_id=connection.workspace_id, user=connection.user)
        .values_list("role", flat=True)
        .first()
    )
    return policy.hubspot_access_for(role or "member")
