"""Which records a HubSpot search keeps and in what order, worked out once per request.

:mod:`~integrations.sandbox.hubspot_search` documents the semantics. This module gives them
a shape that scans thousands of records fast: each filter becomes a closure holding its
operand already parsed, numbers read from text are memoised across requests (the same
stored strings are compared again and again), and sorting uses key functions.

Sorting needs care. HubSpot compares two values as numbers when both read as numbers and
as case-insensitive text otherwise, which is not a total order once a property mixes
numbers and words ("1e3" > "2" as numbers, "2" > "1f" and "1f" > "1e3" as text). A key
function can only reproduce the pairwise comparison when every value of a sort property
reads the same way, so a property that mixes both falls back to sorting with the pairwise
comparator itself, exactly as it always did.
"""

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import cmp_to_key, lru_cache

from integrations.sandbox.hubspot_search_request import Filter, Operator, SearchRequest, Sort

PropertyValues = Mapping[str, str | None]
Record = tuple[str, PropertyValues]
Predicate = Callable[[str, PropertyValues], bool]

# HubSpot fills hs_object_id itself: a record's own value wins, its id stands in otherwise.
OBJECT_ID = "hs_object_id"
_MATCHES_MISSING = frozenset({Operator.NEQ, Operator.NOT_IN, Operator.NOT_CONTAINS_TOKEN})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=1 << 16, typed=True)
def number(text: str) -> Decimal | None:
    """``text`` as a number: itself when numeric, its epoch milliseconds when an ISO date."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = None
    if value is not None:
        return value if value.is_finite() else None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return Decimal(round((moment - _EPOCH).total_seconds() * 1000))


def compare(left: str, right: str) -> int:
    """-1, 0 or 1: numerically when both read as numbers, else as case-insensitive text."""
    left_number, right_number = number(left), number(right)
    if left_number is not None and right_number is not None:
        a: Decimal | str
        b: Decimal | str
        a, b = left_number, right_number
    else:
        a, b = left.casefold(), right.casefold()
    return (a > b) - (a < b)


def value(record_id: str, properties: PropertyValues, name: str) -> str | None:
    """A property as HubSpot reads it: the stored value, with ``hs_object_id`` filled in."""
    if name == OBJECT_ID:
        return properties.get(name, record_id)
    return properties.get(name)


def _getter(name: str) -> Callable[[str, PropertyValues], str | None]:
    """``value`` for one property, an empty string reading as no value."""
    if name == OBJECT_ID:
        return lambda record_id, properties: properties.get(name, record_id) or None
    return lambda record_id, properties: properties.get(name) or None


def _ordering(operand: str) -> Callable[[str], int]:
    """``compare(text, operand)`` with the operand read once."""
    operand_number = number(operand)
    operand_text = operand.casefold()

    def order(text: str) -> int:
        text_number = number(text)
        a: Decimal | str
        b: Decimal | str
        if text_number is not None and operand_number is not None:
            a, b = text_number, operand_number
        else:
            a, b = text.casefold(), operand_text
        return (a > b) - (a < b)

    return order


# How each comparison operator reads compare()'s -1 / 0 / 1, as a test against 0.
_HOLDS: dict[Operator, Callable[[int, int], bool]] = {
    Operator.EQ: operator.eq,
    Operator.NEQ: operator.ne,
    Operator.LT: operator.lt,
    Operator.LTE: operator.le,
    Operator.GT: operator.gt,
    Operator.GTE: operator.ge,
}


def _token_pattern(term: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in term.casefold().split("*")))


def _value_test(item: Filter) -> Callable[[str], bool]:
    """Whether a present (non-empty) value passes the filter."""
    kind = item.operator
    if kind in (Operator.IN, Operator.NOT_IN):
        wanted = frozenset(item.values)
        found_passes = kind is Operator.IN
        return lambda text: (text.lower() in wanted) == found_passes
    if kind in (Operator.CONTAINS_TOKEN, Operator.NOT_CONTAINS_TOKEN):
        patterns = [_token_pattern(term) for term in (item.value or "").split()]
        found_passes = kind is Operator.CONTAINS_TOKEN

        def tokens_test(text: str) -> bool:
            tokens = text.casefold().split()
            found = all(any(p.fullmatch(token) for token in tokens) for p in patterns)
            return found == found_passes

        return tokens_test
    order = _ordering(item.value or "")
    if kind is Operator.BETWEEN:
        high = _ordering(item.high_value or "")
        return lambda text: order(text) >= 0 and high(text) <= 0
    holds = _HOLDS[kind]
    return lambda text: holds(order(text), 0)


def filter_predicate(item: Filter) -> Predicate:
    if item.operator is Operator.HAS_PROPERTY:
        test, when_missing = (lambda text: True), False
    elif item.operator is Operator.NOT_HAS_PROPERTY:
        test, when_missing = (lambda text: False), True
    else:
        # The index leaves records without the value out of positive matches only.
        test, when_missing = _value_test(item), item.operator in _MATCHES_MISSING
    name = item.property_name
    if item.operator in _HOLDS and name != OBJECT_ID:
        return _comparison_predicate(item)
    if name == OBJECT_ID:

        def matches_id(record_id: str, properties: PropertyValues) -> bool:
            text = properties.get(name, record_id) or None
            return when_missing if text is None else test(text)

        return matches_id

    def matches(record_id: str, properties: PropertyValues) -> bool:
        # Inlined _getter: this runs once per record and filter.
        text = properties.get(name) or None
        return when_missing if text is None else test(text)

    return matches


def _comparison_predicate(item: Filter) -> Predicate:
    """EQ … GTE on a stored property: ``filter_predicate`` with its steps in one closure,
    which runs once per record."""
    name = item.property_name
    operand = item.value or ""
    operand_number = number(operand)
    operand_text = operand.casefold()
    holds = _HOLDS[item.operator]
    when_missing = item.operator in _MATCHES_MISSING

    def matches(record_id: str, properties: PropertyValues) -> bool:
        text = properties.get(name) or None
        if text is None:
            return when_missing
        text_number = number(text)
        a: Decimal | str
        b: Decimal | str
        if text_number is not None and operand_number is not None:
            a, b = text_number, operand_number
        else:
            a, b = text.casefold(), operand_text
        return holds((a > b) - (a < b), 0)

    return matches


def _query_predicate(query: str, searchable: Sequence[str]) -> Predicate:
    words = query.casefold().split()
    getters = [_getter(name) for name in searchable]

    def matches(record_id: str, properties: PropertyValues) -> bool:
        haystacks = [(get(record_id, properties) or "").casefold() for get in getters]
        return all(any(word in text for text in haystacks) for word in words)

    return matches


def _all_of(tests: list[Predicate]) -> Predicate:
    # The usual one or two filters a group skip all()'s generator, once per record.
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda record_id, properties: (
            first(record_id, properties) and second(record_id, properties)
        )
    return lambda record_id, properties: all(test(record_id, properties) for test in tests)


def request_predicate(request: SearchRequest, searchable: Sequence[str]) -> Predicate | None:
    """Whether a record matches the request's filter groups (ORed) and query; None: all do."""
    groups = [
        _all_of([filter_predicate(item) for item in group]) for group in request.filter_groups
    ]
    query = _query_predicate(request.query, searchable) if request.query else None
    if not groups and query is None:
        return None

    def matches(record_id: str, properties: PropertyValues) -> bool:
        if groups:
            for group in groups:
                if group(record_id, properties):
                    break
            else:
                return False
        return query is None or query(record_id, properties)

    return matches


def _id_key(record_id: str) -> tuple[int, int, str]:
    return (0, int(record_id), "") if record_id.isdigit() else (1, 0, record_id)


def _sort_keys(texts: list[str | None]) -> list[Decimal | str | None] | None:
    """Keys that order ``texts`` as ``compare`` does, or None when no key function can."""
    present = [text for text in texts if text is not None]
    numbers = [number(text) for text in present]
    if all(found is not None for found in numbers):
        return [None if text is None else number(text) for text in texts]
    if all(found is None for found in numbers):
        return [None if text is None else text.casefold() for text in texts]
    return None


def ordered(records: list[Record], sorts: Sequence[Sort]) -> list[Record]:
    """``records`` in the requested order; ties, and no sorts, by ascending id."""
    positions = sorted(range(len(records)), key=lambda index: _id_key(records[index][0]))
    columns = []
    for sort in sorts:
        get = _getter(sort.property_name)
        keys = _sort_keys([get(record_id, properties) for record_id, properties in records])
        if keys is None:
            return compared(records, sorts)
        columns.append(keys)
    # Stable sorts from the last key to the first give the lexicographic order.
    for sort, keys in reversed(list(zip(sorts, columns, strict=True))):
        present = [index for index in positions if keys[index] is not None]
        present.sort(key=keys.__getitem__, reverse=sort.descending)
        # Records without the value go last in both directions, in the order they had.
        positions = present + [index for index in positions if keys[index] is None]
    return [records[index] for index in positions]


def compared(records: list[Record], sorts: Sequence[Sort]) -> list[Record]:
    """The order by pairwise comparison, for values that no key function can order."""
    getters = [(_getter(sort.property_name), sort.descending) for sort in sorts]

    def order(left: Record, right: Record) -> int:
        for get, descending in getters:
            a, b = get(*left), get(*right)
            if a is None or b is None:
                # Records without the value go last, whatever the direction.
                result = (a is None) - (b is None)
                if result:
                    return result
                continue
            result = compare(a, b)
            if result:
                return -result if descending else result
        key_left, key_right = _id_key(left[0]), _id_key(right[0])
        return (key_left > key_right) - (key_left < key_right)

    return sorted(records, key=cmp_to_key(order))
