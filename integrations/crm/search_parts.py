"""Searches too big for one request, split on their longest IN list and read as one.

A CRM caps what one search request may carry (HubSpot: a 3,000-character body; Salesforce:
16,384 bytes of URI and headers), while a call can name hundreds of attendees. An adapter
gives ``split`` a test of whether a query fits one request; ``split`` packs the values of
the query's longest IN list, in order, into as few parts as fit. ``search`` reads the parts
one after another behind one cursor, ``part:<n>:<the CRM's own cursor>``, so a caller pages
through a split search exactly as through any other.

Only a query of one filter group is split: with several groups, parts would find the other
groups' records again, and the CRM's own refusal says more than a guess would. A split
search is sorted within each part, not across them.
"""

from collections.abc import Callable
from dataclasses import replace

from integrations.crm import errors
from integrations.crm.types import Operator, Page, SearchQuery

_PREFIX = "part:"


def split(query: SearchQuery, fits: Callable[[SearchQuery], bool]) -> list[SearchQuery]:
    """``query`` as queries that each ``fits``, together matching what it matches."""
    if fits(query) or len(query.filter_groups) != 1:
        return [query]
    group = query.filter_groups[0]
    lists = [i for i, item in enumerate(group) if item.operator is Operator.IN and item.values]
    if not lists:
        return [query]
    at = max(lists, key=lambda i: len(group[i].values))

    def with_values(values: list[str]) -> SearchQuery:
        item = replace(group[at], values=tuple(values))
        return replace(query, filter_groups=((*group[:at], item, *group[at + 1 :]),))

    parts: list[SearchQuery] = []
    taken: list[str] = []
    for value in group[at].values:
        # A value too long for any request goes alone: the CRM refuses it in its own words.
        if taken and not fits(with_values([*taken, value])):
            parts.append(with_values(taken))
            taken = []
        taken.append(value)
    parts.append(with_values(taken))
    return parts


def search(
    parts: list[SearchQuery], cursor: str | None, search_one: Callable[[SearchQuery], Page]
) -> Page:
    """One page of the split search; ``total`` counts the matches of the part it is from."""
    if len(parts) == 1:
        return search_one(replace(parts[0], cursor=cursor))
    index, inner = _position(cursor, len(parts))
    page = search_one(replace(parts[index], cursor=inner))
    if page.next_cursor:
        following: str | None = f"{_PREFIX}{index}:{page.next_cursor}"
    elif index + 1 < len(parts):
        following = f"{_PREFIX}{index + 1}:"
    else:
        following = None
    return replace(page, next_cursor=following)


def _position(cursor: str | None, count: int) -> tuple[int, str | None]:
    if not cursor:
        return 0, None
    index, _, inner = cursor.removeprefix(_PREFIX).partition(":")
    if not cursor.startswith(_PREFIX) or not index.isdigit() or int(index) >= count:
        raise errors.ValidationFailed(f"not a cursor of this search: {cursor!r}")
    return int(index), inner or None
