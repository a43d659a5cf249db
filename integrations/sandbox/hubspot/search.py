"""``POST /crm/v3/objects/{objectType}/search``, answered by integrations/sandbox/hubspot_search.

HubSpot's search index lags behind writes: a record created or updated less than the
account's ``search_lag_seconds`` ago is not found yet. Archived records are never found.

Records come decoded from the process's record cache. Most searches filter and sort on
stored properties only, so those are searched as stored, and the properties HubSpot
computes (``ObjectContext.values``) are worked out for the page's records alone; a search
that reads a computed property gets every record's full values, memoised on the cached
record for as long as it and the deal pipelines stay the same. Properties kept from
associations (``associatedcompanyid``) are looked up in one query: for every record when
the search reads one, else for the page's records when it answers one.
"""

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from django.http import HttpRequest

from integrations.sandbox import hubspot_search, store
from integrations.sandbox.gateway import Call, Reply, SandboxError, endpoint
from integrations.sandbox.hubspot.common import LINKED, PROVIDER, ObjectContext
from integrations.sandbox.hubspot.values import format_datetime
from integrations.sandbox.models import RequestKind
from integrations.sandbox.record_cache import CACHE, CachedRecord

# What ObjectContext.values may answer differently from the stored value, per object; it
# reads every other property as stored.
DERIVED = {
    "contacts": frozenset({"createdate", "hs_object_id", "lastmodifieddate", "hs_email_domain"}),
    "companies": frozenset({"createdate", "hs_object_id", "hs_lastmodifieddate"}),
    "deals": frozenset(
        {"createdate", "hs_object_id", "hs_lastmodifieddate", "pipeline"}
        | {"hs_is_closed", "hs_is_closed_won", "hs_deal_stage_probability"}
    ),
}


def _searched(
    ctx: ObjectContext, records: Sequence[CachedRecord], *, full: bool
) -> list[tuple[str, dict]]:
    if full:
        return [(record.crm_id, ctx.record_values(record)) for record in records]
    return [(record.crm_id, record.values) for record in records]


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
    snapshot = CACHE.snapshot(call.account.pk, ctx.object_name)
    profile = replace(
        hubspot_search.PROFILES[ctx.object_name], known_properties=frozenset(ctx.properties)
    )
    referenced = hubspot_search.referenced_properties(search_request, profile)
    full = bool(referenced & DERIVED[ctx.object_name])
    if call.account.search_lag_seconds:
        indexed_until = store.now() - timedelta(seconds=call.account.search_lag_seconds)
        records = [record for record in snapshot.live if record.updated_at <= indexed_until]
        by_id = {record.crm_id: record for record in records}
        searched = _searched(ctx, records, full=full)
    else:
        # Unchanged records give the same lists: build them once per snapshot.
        by_id = snapshot.derived(
            "hubspot.by_id", lambda: {record.crm_id: record for record in snapshot.live}
        )
        searched = snapshot.derived(
            ("hubspot.searched", ctx.values_key if full else None),
            lambda: _searched(ctx, snapshot.live, full=full),
        )
    if referenced & LINKED.get(ctx.object_name, frozenset()):
        # Associations change without moving a record's stamp: never cached.
        every = ctx.linked_values()
        searched = [
            (crm_id, {**values, **every.get(by_id[crm_id].pk, {})}) for crm_id, values in searched
        ]
    page = hubspot_search.search(
        search_request,
        searched,
        profile=profile,
        expand=lambda crm_id: ctx.record_values(by_id[crm_id]),
    )
    answered = LINKED.get(ctx.object_name, frozenset()) & {
        name for hit in page.results[:1] for name in hit.properties
    }
    linked = ctx.linked_values([by_id[hit.id] for hit in page.results]) if answered else {}

    def render(hit: hubspot_search.SearchHit) -> dict:
        record = by_id[hit.id]
        found = linked.get(record.pk, {})
        return {
            "id": hit.id,
            "properties": {**hit.properties, **{k: v for k, v in found.items() if k in answered}},
            "createdAt": format_datetime(record.created_at),
            "updatedAt": format_datetime(record.updated_at),
            "archived": False,
        }

    call.note_read(ctx.object_name, [hit.id for hit in page.results])
    return Reply(page.to_response(render))
