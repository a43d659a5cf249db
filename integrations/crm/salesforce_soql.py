"""SOQL for the Salesforce adapter: literals with proper escaping, the clauses of a
SearchQuery, and the search cursor.

A literal's form follows the field's describe type: strings (and ids, picklists, emails…)
are quoted with SOQL's backslash escapes; numbers, dates, datetimes and booleans are not
quoted. LIKE patterns also escape ``%`` and ``_``, so ``ENDS_WITH`` and ``CONTAINS`` match
the value literally.
"""

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from integrations.crm import errors
from integrations.crm.salesforce_values import (
    PROPERTY_TYPES,
    PROVIDER,
    invalid,
    parse_moment,
    plain_number,
    to_salesforce,
)
from integrations.crm.types import Operator, PropertyType, SearchFilter, SearchQuery

FieldOf = Callable[[str], dict | None]
_LOCATOR = re.compile(r"(?P<base>/services/data/v[\d.]+/query(?:All)?/[0-9A-Za-z]+)-(?P<at>\d+)")
_OFFSET = re.compile(r"offset:(?P<at>\d+):(?P<total>\d+)")
BATCH_MIN = 200  # Salesforce's smallest batch size
MAX_OFFSET = 2000  # SOQL's largest OFFSET

_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPES |= {"\b": "\\b", "\f": "\\f"}


def quote(text: str) -> str:
    """A SOQL string literal."""
    return "'" + "".join(_ESCAPES.get(char, char) for char in text) + "'"


def like_pattern(text: str, *, prefix: str = "", suffix: str = "") -> str:
    """A LIKE literal matching ``text`` literally between the given wildcards."""
    escaped = "".join(_ESCAPES.get(char, char) for char in text)
    escaped = escaped.replace("%", "\\%").replace("_", "\\_")
    return f"'{prefix}{escaped}{suffix}'"


def literal(field: dict | None, value: str) -> str:
    """``value`` as a SOQL literal of the field's type (numbers, dates and booleans are not
    quoted in SOQL)."""
    kind = PROPERTY_TYPES.get(field["type"]) if field else None
    if kind is PropertyType.NUMBER:
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise invalid(field["name"] if field else "", value, "number") from None
        return plain_number(number)
    if kind is PropertyType.BOOL:
        return "true" if value.strip().lower() == "true" else "false"
    if kind is PropertyType.DATE:
        return str(to_salesforce(field, field["name"] if field else "", value))
    if kind is PropertyType.DATETIME:
        moment = parse_moment(value)
        if moment is None:
            raise invalid(field["name"] if field else "", value, "datetime")
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return quote(value)


_COMPARISONS = {
    Operator.EQ: "=",
    Operator.NEQ: "!=",
    Operator.LT: "<",
    Operator.LTE: "<=",
    Operator.GT: ">",
    Operator.GTE: ">=",
}


def condition(field: dict | None, item: SearchFilter) -> str:
    name = field["name"] if field else item.property
    if item.operator in _COMPARISONS:
        return f"{name} {_COMPARISONS[item.operator]} {literal(field, item.value or '')}"
    if item.operator in (Operator.IN, Operator.NOT_IN):
        if not item.values:
            # SOQL has no empty list: IN () matches nothing, NOT IN () everything.
            return "Id = null" if item.operator is Operator.IN else "Id != null"
        values = ", ".join(literal(field, value) for value in item.values)
        negation = "NOT " if item.operator is Operator.NOT_IN else ""
        return f"{name} {negation}IN ({values})"
    if item.operator is Operator.CONTAINS:
        return f"{name} LIKE {like_pattern(item.value or '', prefix='%', suffix='%')}"
    if item.operator is Operator.ENDS_WITH:
        return f"{name} LIKE {like_pattern(item.value or '', prefix='%')}"
    if item.operator is Operator.HAS_VALUE:
        return f"{name} != null"
    return f"{name} = null"


def select(object_name: str, names: Sequence[str]) -> str:
    """``SELECT`` of ``names`` once each: Salesforce refuses a field selected twice."""
    seen: dict[str, str] = {}
    for name in names:
        seen.setdefault(name.lower(), name)
    return f"SELECT {', '.join(seen.values())} FROM {object_name}"


def where(query: SearchQuery, field_of: FieldOf) -> str:
    """Filters in a group are ANDed, groups ORed (SOQL needs the parentheses)."""
    groups = [
        " AND ".join(condition(field_of(item.property), item) for item in group)
        for group in query.filter_groups
        if group
    ]
    if not groups:
        return ""
    if len(groups) == 1:
        return f" WHERE {groups[0]}"
    return " WHERE " + " OR ".join(f"({group})" for group in groups)


def order_by(query: SearchQuery) -> str:
    # Id last makes the order total, so OFFSET pages and repeated queries agree.
    items = [f"{sort.property} {'DESC' if sort.descending else 'ASC'}" for sort in query.sorts]
    if not any(sort.property.lower() == "id" for sort in query.sorts):
        items.append("Id ASC")
    return " ORDER BY " + ", ".join(items)


@dataclass(frozen=True)
class Position:
    """Where a search page starts, as its cursor says.

    Salesforce answers a query in batches of 200 to 2,000 records (``batchSize``), each but
    the last with a ``nextRecordsUrl``, a path (``…/query/01g…-2000``) that works once and
    only for the batch after it ("use a queryLocator only once"). The cursor of the page
    after a batch is that ``nextRecordsUrl`` exactly as given, never one made up: a page of
    200 records or more is one batch (its limit is the batch size). A smaller page cannot
    be one, so the first page is the start of the first batch, whose locator is left unused,
    and the later pages run the query again with LIMIT and OFFSET (``offset:100:150``:
    start, total), which SOQL allows up to an OFFSET of 2,000. No cursor: the first page.
    """

    locator: str | None = None  # the nextRecordsUrl this page reads
    start: int = 0
    offset_total: int | None = None

    @classmethod
    def of(cls, cursor: str | None) -> "Position":
        if not cursor:
            return cls()
        if match := _OFFSET.fullmatch(cursor):
            start = int(match["at"])
            if start > MAX_OFFSET:
                raise errors.ValidationFailed(
                    f"Salesforce pages of fewer than {BATCH_MIN} records reach at most "
                    f"{MAX_OFFSET} records in (SOQL's largest OFFSET); ask for pages of "
                    f"{BATCH_MIN} or more to read further",
                    provider=PROVIDER,
                )
            return cls(start=start, offset_total=int(match["total"]))
        if match := _LOCATOR.fullmatch(cursor):
            return cls(locator=cursor, start=int(match["at"]))
        raise errors.ValidationFailed(
            f"not a Salesforce query cursor: {cursor!r}", provider=PROVIDER
        )

    def next(self, result: Mapping, limit: int, total: int) -> str | None:
        """The cursor of the page after this one, given the batch Salesforce answered."""
        following = self.start + limit
        if self.offset_total is not None:
            return f"offset:{following}:{total}" if following < total else None
        if len(result["records"]) > limit:  # a page smaller than its batch
            return f"offset:{following}:{total}"
        return None if result["done"] else result["nextRecordsUrl"]
