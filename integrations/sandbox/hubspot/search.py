"""``POST /crm/v3/objects/{objectType}/search``, answered by integrations/sandbox/hubspot_search.

HubSpot's search index lags behind writes: a record created or updated less than the
account's ``search_lag_seconds`` ago is not found yet. Archived records are never found.
"""

from dataclasses import replace
from datetime import timedelta

from django.http import HttpRequest

from integrations.sandbox import hubspot_search, store
from integrations.sandbox.gateway import Call, Reply, SandboxError, endpoint
from integrations.sandbox.hubspot.common import PROVIDER, ObjectContext
from integrations.sandbox.hubspot.values import format_datetime
from integrations.sandbox.models import RequestKind


@endpoint(PROVIDER, RequestKind.SEARCH)
def search_objects(request: HttpRequest, call: Call, object_type: str) -> Reply:
    ctx = ObjectContext.load(call, object_type, "read")
    try:
        search_request = hubspot_search.parse_search_request(request.body)
    except hubspot_search.HubSpotSearchError as error:
        raise SandboxError(
            error.status,
            error.message,
            error.category,
            body=error.to_response(call.correlation_id),
        ) from None
    rows = ctx.live()
    if call.account.search_lag_seconds:
        indexed_until = store.now() - timedelta(seconds=call.account.search_lag_seconds)
        rows = rows.filter(updated_at__lte=indexed_until)
    times = {}
    records = []
    for crm_id, values, created, updated in rows.values_list(
        "crm_id", "values", "created_at", "updated_at"
    ):
        times[crm_id] = (created, updated)
        records.append((crm_id, ctx.values(crm_id, values, created, updated)))
    profile = replace(
        hubspot_search.PROFILES[ctx.object_name], known_properties=frozenset(ctx.properties)
    )
    page = hubspot_search.search(search_request, records, profile=profile)

    def render(hit: hubspot_search.SearchHit) -> dict:
        created, updated = times[hit.id]
        return {
            "id": hit.id,
            "properties": hit.properties,
            "createdAt": format_datetime(created),
            "updatedAt": format_datetime(updated),
            "archived": False,
        }

    call.note_read(ctx.object_name, [hit.id for hit in page.results])
    return Reply(page.to_response(render))
