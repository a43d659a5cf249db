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

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import cmp_to_key
from typing import Any

from integrations.sandbox.hubspot_search_errors import HubSpotSearchError
from integrations.sandbox.hubspot_search_request import (
    Filter,
    Operator,
    SearchLimits,
    SearchRequest,
    Sort,
    parse_search_request,
)

PropertyValues = Mapping[str, str | None]

_MATCHES_MISSING = frozenset({Operator.NEQ, Operator.NOT_IN, Operator.NOT_CONTAINS_TOKEN})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def _number(text: str) -> Decimal | None:
    """``text`` as a number: itself when numeric, its epoch milliseconds when an ISO date."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        number = None
    if number is not None:
        return number if number.is_finite() else None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return Decimal(round((moment - _EPOCH).total_seconds() * 1000))


def _compare(left: str, right: str) -> int:
    """-1, 0 or 1: numerically when both read as numbers, else as case-insensitive text."""
    left_number, right_number = _number(left), _number(right)
    if left_number is not None and right_number is not None:
        a: Decimal | str
        b: Decimal | str
        a, b = left_number, right_number
    else:
        a, b = left.casefold(), right.casefold()
    return (a > b) - (a < b)


def _token_pattern(term: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in term.casefold().split("*")))


def _contains_tokens(value: str, wanted: str) -> bool:
    tokens = value.casefold().split()
    patterns = [_token_pattern(term) for term in wanted.split()]
    return all(any(p.fullmatch(token) for token in tokens) for p in patterns)


def _matches(item: Filter, properties: PropertyValues) -> bool:
    value = properties.get(item.property_name) or None
    operator = item.operator
    if operator is Operator.HAS_PROPERTY:
        return value is not None
    if operator is Operator.NOT_HAS_PROPERTY:
        return value is None
    if value is None:
        return operator in _MATCHES_MISSING
    if operator in (Operator.IN, Operator.NOT_IN):
        found = value.lower() in item.values
        return found == (operator is Operator.IN)
    if operator in (Operator.CONTAINS_TOKEN, Operator.NOT_CONTAINS_TOKEN):
        found = _contains_tokens(value, item.value or "")
        return found == (operator is Operator.CONTAINS_TOKEN)
    order = _compare(value, item.value or "")
    if operator is Operator.BETWEEN:
        return order >= 0 and _compare(value, item.high_value or "") <= 0
    return {
        Operator.EQ: order == 0,
        Operator.NEQ: order != 0,
        Operator.LT: order < 0,
        Operator.LTE: order <= 0,
        Operator.GT: order > 0,
        Operator.GTE: order >= 0,
    }[operator]


def _matches_query(query: str, properties: PropertyValues, profile: SearchProfile) -> bool:
    haystacks = [(properties.get(name) or "").casefold() for name in profile.searchable_properties]
    return all(any(word in text for text in haystacks) for word in query.casefold().split())


def _id_order(left: str, right: str) -> int:
    key_left = (0, int(left), "") if left.isdigit() else (1, 0, left)
    key_right = (0, int(right), "") if right.isdigit() else (1, 0, right)
    return (key_left > key_right) - (key_left < key_right)


def _sorted(
    records: list[tuple[str, PropertyValues]], sorts: tuple[Sort, ...]
) -> list[tuple[str, PropertyValues]]:
    def order(left: tuple[str, PropertyValues], right: tuple[str, PropertyValues]) -> int:
        for sort in sorts:
            a = left[1].get(sort.property_name) or None
            b = right[1].get(sort.property_name) or None
            if a is None or b is None:
                # Records without the value go last, whatever the direction.
                result = (a is None) - (b is None)
                if result:
                    return result
                continue
            result = _compare(a, b)
            if result:
                return -result if sort.descending else result
        return _id_order(left[0], right[0])

    return sorted(records, key=cmp_to_key(order))


def _projected(record_id: str, properties: PropertyValues, names: Iterable[str]) -> SearchHit:
    return SearchHit(record_id, {name: properties.get(name) for name in names})


def search(
    request: SearchRequest,
    records: Iterable[tuple[str, PropertyValues]],
    *,
    profile: SearchProfile,
) -> SearchPage:
    """The page of ``records`` that ``request`` asks for."""
    # HubSpot fills hs_object_id itself, so it can be filtered, sorted and returned.
    candidates = [
        (record_id, {"hs_object_id": record_id, **properties}) for record_id, properties in records
    ]
    matching = [
        (record_id, properties)
        for record_id, properties in candidates
        if (
            not request.filter_groups
            or any(all(_matches(f, properties) for f in group) for group in request.filter_groups)
        )
        and (not request.query or _matches_query(request.query, properties, profile))
    ]
    ordered = _sorted(matching, request.sorts)
    window = ordered[request.after : request.after + request.limit]
    requested = request.properties or profile.default_properties
    names = list(dict.fromkeys((*requested, *profile.always_properties)))
    if profile.known_properties is not None:
        names = [name for name in names if name in profile.known_properties]
    end = request.after + request.limit
    more = request.limit > 0 and end < len(ordered)
    return SearchPage(
        total=len(ordered),
        results=tuple(_projected(record_id, props, names) for record_id, props in window),
        next_after=str(end) if more else None,
    )


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
    "search",
]
