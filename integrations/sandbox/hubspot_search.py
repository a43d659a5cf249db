"""Answer HubSpot CRM v3 search requests (``POST /crm/v3/objects/{type}/search``) in memory.

Two steps::

    request = parse_search_request(raw_body, limits=SearchLimits())   # or HubSpotSearchError
    page = search(request, records, profile=PROFILES["contacts"])
    body = page.to_response()     # {"total", "results", "paging"?}

``records`` is an iterable of ``(id, properties)`` whose values are strings (or None), as HubSpot
stores them. ``HubSpotSearchError.to_response()`` is the 400 body (``status``, ``message``,
``correlationId``, ``category: VALIDATION_ERROR``); see
:mod:`~integrations.sandbox.hubspot_search_request` for what is refused.

Semantics, from HubSpot's documentation and observed behaviour: filter groups are ORed and the
filters of a group ANDed; EQ/NEQ ignore case; IN/NOT_IN compare the lowercased property with the
values as sent, so an upper-case value never matches a string; comparisons are numeric when both
sides read as numbers, an ISO date or datetime reading as its epoch milliseconds; BETWEEN is
inclusive; CONTAINS_TOKEN matches whole whitespace-separated tokens, ``*`` standing for any run of
characters; an empty string is no value. NEQ, NOT_IN and NOT_CONTAINS_TOKEN also match records
without the property, which the search index only leaves out of positive matches. ``query``
keeps records where every word is part of some default searchable property. Sorting puts records
without the value last in both directions; ties, and requests without ``sorts``, go by ascending
id. ``after`` is the offset as a string, ``paging`` is present only while results remain, and
``total`` counts every match, even past the 10,000 a query may page through.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from integrations.sandbox.hubspot_search_errors import HubSpotSearchError
from integrations.sandbox.hubspot_search_match import (
    PropertyValues,
    ordered,
    request_predicate,
    value,
)
from integrations.sandbox.hubspot_search_request import (
    Filter,
    Operator,
    SearchLimits,
    SearchRequest,
    Sort,
    parse_search_request,
)


@dataclass(frozen=True)
class SearchProfile:
    """What HubSpot does for one object type when the request leaves it open.

    ``known_properties``, when given, drops requested properties that do not exist (HubSpot
    ignores them); otherwise every requested property comes back, null when unset.
    """

    default_properties: tuple[str, ...]
    always_properties: tuple[str, ...]
    searchable_properties: tuple[str, ...]
    known_properties: frozenset[str] | None = None


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Defaults and searchable properties are from HubSpot's search guide; the company and deal
# defaults are from memory of live responses, not from a document.
PROFILES = {
    "contacts": SearchProfile(
        default_properties=_names(
            "createdate email firstname hs_object_id lastmodifieddate lastname"
        ),
        always_properties=_names("createdate hs_object_id lastmodifieddate"),
        searchable_properties=_names(
            "firstname lastname email phone hs_additional_emails fax mobilephone company "
            "hs_marketable_until_renewal"
        ),
    ),
    "companies": SearchProfile(
        default_properties=_names("createdate domain hs_lastmodifieddate hs_object_id name"),
        always_properties=_names("createdate hs_object_id hs_lastmodifieddate"),
        searchable_properties=_names("website phone name domain"),
    ),
    "deals": SearchProfile(
        default_properties=_names(
            "amount closedate createdate dealname dealstage hs_lastmodifieddate hs_object_id "
            "pipeline"
        ),
        always_properties=_names("createdate hs_object_id hs_lastmodifieddate"),
        searchable_properties=_names("dealname pipeline dealstage description dealtype"),
    ),
}


@dataclass(frozen=True)
class SearchHit:
    id: str
    properties: dict[str, str | None]


@dataclass(frozen=True)
class SearchPage:
    total: int
    results: tuple[SearchHit, ...]
    next_after: str | None = None

    def to_response(
        self, render: Callable[[SearchHit], dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """The 200 body. ``render`` turns a hit into a result object; by default only ``id``
        and ``properties``, so the caller adds ``createdAt``, ``updatedAt`` and ``archived``."""
        render = render or (lambda hit: {"id": hit.id, "properties": hit.properties})
        body: dict[str, Any] = {"total": self.total, "results": [render(h) for h in self.results]}
        if self.next_after is not None:
            body["paging"] = {"next": {"after": self.next_after}}
        return body


def _projected(record_id: str, properties: PropertyValues, names: Iterable[str]) -> SearchHit:
    return SearchHit(record_id, {name: value(record_id, properties, name) for name in names})


def search(
    request: SearchRequest,
    records: Iterable[tuple[str, PropertyValues]],
    *,
    profile: SearchProfile,
    expand: Callable[[str], PropertyValues] | None = None,
) -> SearchPage:
    """The page of ``records`` that ``request`` asks for.

    ``expand``, when given, returns the properties a hit is answered with, by id: the caller
    may then search values that leave out what no filter, sort or query of this request reads,
    and work out the rest for the records of the page only.
    """
    matches = request_predicate(request, profile.searchable_properties)
    # The records' own pairs, not new ones: thousands of fresh tuples per search would wake
    # the garbage collector's full collections (tuples holding dicts stay tracked).
    matching = [record for record in records if matches is None or matches(*record)]
    in_order = ordered(matching, request.sorts)
    window = in_order[request.after : request.after + request.limit]
    requested = request.properties or profile.default_properties
    names = list(dict.fromkeys((*requested, *profile.always_properties)))
    if profile.known_properties is not None:
        names = [name for name in names if name in profile.known_properties]
    end = request.after + request.limit
    more = request.limit > 0 and end < len(in_order)
    return SearchPage(
        total=len(in_order),
        results=tuple(
            _projected(record_id, expand(record_id) if expand else properties, names)
            for record_id, properties in window
        ),
        next_after=str(end) if more else None,
    )


def referenced_properties(request: SearchRequest, profile: SearchProfile) -> frozenset[str]:
    """The properties the request's filters, sorts and query read (not what it answers)."""
    names = {item.property_name for group in request.filter_groups for item in group}
    names.update(sort.property_name for sort in request.sorts)
    if request.query:
        names.update(profile.searchable_properties)
    return frozenset(names)


__all__ = [
    "PROFILES",
    "Filter",
    "HubSpotSearchError",
    "Operator",
    "SearchHit",
    "SearchLimits",
    "SearchPage",
    "SearchProfile",
    "SearchRequest",
    "Sort",
    "parse_search_request",
    "referenced_properties",
    "search",
]
