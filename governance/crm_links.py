"""Links from the admin to a record in the CRM's own UI."""

from collections.abc import Iterable

from governance.models import CrmProvider
from governance.review_models import ChangeSet
from integrations.models import Connection, ConnectionScope

# HubSpot's object type ids in record URLs.
HUBSPOT_OBJECT_IDS = {"contact": "0-1", "company": "0-2", "deal": "0-3"}
SALESFORCE_OBJECTS = {"contact": "Contact", "company": "Account", "deal": "Opportunity"}


def record_url(
    provider: str, object_type: str, record_id: str, *, account_id: str, base_url: str
) -> str | None:
    """The record's page in the CRM, or None when it cannot be built (no record yet, an
    unknown object type, no connection to say which portal or instance)."""
    if not record_id:
        return None
    if provider == CrmProvider.HUBSPOT and account_id and object_type in HUBSPOT_OBJECT_IDS:
        kind = HUBSPOT_OBJECT_IDS[object_type]
        return f"https://app.hubspot.com/contacts/{account_id}/record/{kind}/{record_id}"
    if provider == CrmProvider.SALESFORCE and base_url and object_type in SALESFORCE_OBJECTS:
        kind = SALESFORCE_OBJECTS[object_type]
        return f"{base_url.rstrip('/')}/lightning/r/{kind}/{record_id}/view"
    return None


def connections_by_account(change_sets: Iterable[ChangeSet]) -> dict[tuple[int, str], Connection]:
    """The connection that names each (workspace, provider)'s CRM account, in one query;
    the workspace connection is preferred to a rep's own (both reach the same account)."""
    pairs = {(c.workspace_id, c.provider) for c in change_sets}
    if not pairs:
        return {}
    rows = Connection.objects.filter(
        workspace_id__in={workspace for workspace, _ in pairs},
        provider__in={provider for _, provider in pairs},
    ).only("workspace_id", "provider", "scope", "crm_account_id", "api_base_url")
    found: dict[tuple[int, str], Connection] = {}
    for connection in rows.order_by("pk"):
        key = (connection.workspace_id, connection.provider)
        current = found.get(key)
        if current is None or (
            connection.scope == ConnectionScope.WORKSPACE
            and current.scope != ConnectionScope.WORKSPACE
        ):
            found[key] = connection
    return found


def attach_record_urls(change_sets: Iterable[ChangeSet]) -> None:
    """Set ``crm_url`` on each change set, with one query for all of them."""
    change_sets = list(change_sets)
    connections = connections_by_account(change_sets)
    for change_set in change_sets:
        connection = connections.get((change_set.workspace_id, change_set.provider))
        change_set.crm_url = (
            record_url(
                change_set.provider,
                change_set.object_type,
                change_set.record_id,
                account_id=connection.crm_account_id,
                base_url=connection.api_base_url,
            )
            if connection is not None
            else None
        )
