"""Answer Salesforce SOQL queries over in-memory rows, as the REST ``query`` resource would.

The subset: ``SELECT f1, Parent.f2 | COUNT() FROM Object [WHERE ...] [ORDER BY f [ASC|DESC]
[NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]`` with ``= != <> < <= > >=``, ``[NOT] IN (...)``,
``LIKE``, ``AND``/``OR``/``NOT`` and parentheses; string, number, ``null``, ``true``/``false``,
date (``2026-11-21``) and datetime (``2026-11-21T10:00:00Z``, ``+01:00``, ``+0000``) literals.

Three steps, each usable alone::

    query = parse(soql)                     # soql_parser: syntax -> MALFORMED_QUERY
    bound = validate(query, catalog)        # soql_schema: names, literal types -> INVALID_...
    result = evaluate(bound, rows, resolve_parent=..., attributes=...)

or ``execute(soql, catalog, rows, ...)`` for all three. Every refusal is a
:class:`~integrations.sandbox.soql_ast.SoqlError`; ``error.to_response()`` is the 400 body
(``[{"message", "errorCode"}]``). Results are :class:`QueryResult`; paging them into
``nextRecordsUrl`` batches is the caller's job.

The :class:`~integrations.sandbox.soql_schema.Catalog` (see that module) is what the running
user may see. Object, relationship and field names match case-insensitively; the tree
``validate`` returns, and every record key, use the catalog's spelling.

Rows are mappings of canonical field name to a Python value (``str``, ``int``/``float``/
``Decimal``, ``bool``, ``None``, ``date``, ``datetime``; naive datetimes count as UTC).
Salesforce documents that text compares case-insensitively (LIKE too), that a boolean's null
is false, that a missing parent makes its fields null and that ORDER BY puts nulls first unless
told otherwise. Not documented, and implemented as Salesforce is known to behave: ids compare on
their case-sensitive 15-character form, ``!=`` and ``NOT IN`` keep nulls while the ordering
operators and LIKE never match one, and NOT simply negates (no SQL three-valued logic).
"""

import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum, auto
from functools import cmp_to_key, lru_cache
from typing import Any

from integrations.sandbox.soql_ast import (
    And,
    Comparison,
    Condition,
    FieldRef,
    Like,
    Not,
    Op,
    Or,
    OrderItem,
    SoqlError,
    Value,
)
from integrations.sandbox.soql_parser import like_regex, parse
from integrations.sandbox.soql_schema import (
    ID_TYPES,
    NUMBER_TYPES,
    TEXT_TYPES,
    BoundQuery,
    Catalog,
    ObjectSchema,
    validate,
)

Row = Mapping[str, Any]
# (child sObject name, child row, relationship name) -> the parent row, or None when unset.
ParentResolver = Callable[[str, Row, str], Row | None]
# (sObject name, row) -> the record's "attributes" object.
AttributesBuilder = Callable[[str, Row], dict[str, Any]]


@dataclass(frozen=True)
class QueryResult:
    total_size: int
    records: list[dict[str, Any]]

    def to_response(self) -> dict[str, Any]:
        """The single-batch REST body; values are still Python objects to encode."""
        return {"totalSize": self.total_size, "done": True, "records": self.records}


_ORDERING = {Op.LT: operator.lt, Op.LE: operator.le, Op.GT: operator.gt, Op.GE: operator.ge}


class _Kind(Enum):
    TEXT = auto()
    ID = auto()
    NUMBER = auto()
    BOOLEAN = auto()
    DATE = auto()
    DATETIME = auto()


def _kind(field_type: str, sample: object) -> _Kind:
    """How values of a field compare: by its describe type, else by the literal or value."""
    if field_type in TEXT_TYPES:
        return _Kind.TEXT
    if field_type in ID_TYPES:
        return _Kind.ID
    if field_type in NUMBER_TYPES:
        return _Kind.NUMBER
    by_type = {"boolean": _Kind.BOOLEAN, "date": _Kind.DATE, "datetime": _Kind.DATETIME}
    if field_type in by_type:
        return by_type[field_type]
    if isinstance(sample, bool):
        return _Kind.BOOLEAN
    if isinstance(sample, int | float | Decimal):
        return _Kind.NUMBER
    if isinstance(sample, datetime):
        return _Kind.DATETIME
    if isinstance(sample, date):
        return _Kind.DATE
    return _Kind.TEXT


def _normalize(value: object, kind: _Kind) -> Any:
    """``value`` as a comparable key of ``kind``, or None when it is null or does not fit."""
    if kind is _Kind.BOOLEAN:
        # Salesforce booleans are never null: a null reads as false.
        return value.lower() == "true" if isinstance(value, str) else bool(value)
    if value is None:
        return None
    if kind is _Kind.TEXT:
        return str(value).casefold()
    if kind is _Kind.ID:
        # The 18-character form only adds a case checksum to the 15-character one.
        return str(value)[:15]
    if kind is _Kind.NUMBER:
        if isinstance(value, bool):
            return None
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return None
    if kind is _Kind.DATE:
        if isinstance(value, datetime):
            return value.date()
        return value if isinstance(value, date) else _parse_or_none(date.fromisoformat, value)
    if isinstance(value, datetime):
        moment: datetime | None = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        moment = _parse_or_none(datetime.fromisoformat, str(value).replace("Z", "+00:00"))
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_or_none(parse_text: Callable[[str], Any], value: object) -> Any:
    try:
        return parse_text(str(value))
    except ValueError:
        return None


@lru_cache(maxsize=256)
def _like(pattern: str) -> re.Pattern[str]:
    return like_regex(pattern)


def _pair(value: object, literal: Value, field_type: str) -> tuple[Any, Any]:
    """A row value and a literal as keys of the same kind."""
    kind = _kind(field_type, literal)
    return _normalize(value, kind), _normalize(literal, kind)


def _holds(op: Op, left: Any, right: Any) -> bool:
    if op is Op.EQ:
        return left == right
    if op is Op.NE:
        # Unlike SQL, SOQL keeps the nulls: ``Industry != 'Tech'`` matches a blank Industry.
        return left != right
    if left is None or right is None:
        return False
    try:
        return bool(_ORDERING[op](left, right))
    except TypeError:
        return False


class _Evaluation:
    def __init__(
        self,
        bound: BoundQuery,
        resolve_parent: ParentResolver | None,
        attributes: AttributesBuilder | None,
    ) -> None:
        self.bound = bound
        self.resolve_parent = resolve_parent
        self.attributes = attributes
        if resolve_parent is None:
            followed = [ref.dotted for ref in bound.query.field_refs() if ref.relationships]
            if followed:
                raise ValueError(f"{followed[0]} follows a relationship: pass resolve_parent")

    def parent(self, schema: ObjectSchema, row: Row, relationship: str) -> Row | None:
        assert self.resolve_parent is not None
        return self.resolve_parent(schema.name, row, relationship)

    def parent_schema(self, schema: ObjectSchema, relationship: str) -> ObjectSchema:
        return self.bound.catalog.parent(schema, relationship)

    def value(self, row: Row, ref: FieldRef) -> Any:
        schema, current = self.bound.root, row
        for relationship in ref.relationships:
            parent = self.parent(schema, current, relationship)
            if parent is None:
                return None
            schema, current = self.parent_schema(schema, relationship), parent
        return current.get(ref.name)

    def matches(self, row: Row, condition: Condition) -> bool:
        if isinstance(condition, And):
            return all(self.matches(row, operand) for operand in condition.operands)
        if isinstance(condition, Or):
            return any(self.matches(row, operand) for operand in condition.operands)
        if isinstance(condition, Not):
            return not self.matches(row, condition.operand)
        value = self.value(row, condition.field)
        field_type = self.bound.types[condition.field.path]
        if isinstance(condition, Like):
            pattern = _like(condition.pattern)
            return isinstance(value, str) and pattern.fullmatch(value.casefold()) is not None
        if isinstance(condition, Comparison):
            return _holds(condition.op, *_pair(value, condition.value, field_type))
        pairs = (_pair(value, literal, field_type) for literal in condition.values)
        found = any(left == right for left, right in pairs)
        return found != condition.negated

    def sort_key(self, row: Row, item: OrderItem) -> Any:
        value = self.value(row, item.field)
        return _normalize(value, _kind(self.bound.types[item.field.path], value))

    def ordered(self, rows: list[Row]) -> list[Row]:
        items = self.bound.query.order_by
        if not items:
            return rows
        keyed = [([self.sort_key(row, item) for item in items], row) for row in rows]

        def compare(a: tuple[list[Any], Row], b: tuple[list[Any], Row]) -> int:
            for item, left, right in zip(items, a[0], b[0], strict=True):
                if left == right:
                    continue
                if left is None or right is None:
                    # Nulls sort first unless NULLS LAST, whatever the direction.
                    return (1 if left is None else -1) * (1 if item.nulls_last else -1)
                try:
                    order = -1 if left < right else 1
                except TypeError:
                    order = -1 if str(left) < str(right) else 1
                return -order if item.descending else order
            return 0

        return [row for _, row in sorted(keyed, key=cmp_to_key(compare))]

    def record(self, row: Row) -> dict[str, Any]:
        record = self.node(self.bound.root, row)
        # Each parent is resolved once per record, keyed by its path of relationships.
        parents: dict[tuple[str, ...], _Parent] = {(): _Parent(record, self.bound.root, row)}
        for ref in self.bound.query.fields:
            parent = self.walk(parents, ref.relationships)
            if parent.node is not None and parent.row is not None:
                parent.node[ref.name] = parent.row.get(ref.name)
        return record

    def walk(self, parents: dict[tuple[str, ...], "_Parent"], path: tuple[str, ...]) -> "_Parent":
        if path in parents:
            return parents[path]
        child = self.walk(parents, path[:-1])
        relationship = path[-1]
        schema = self.parent_schema(child.schema, relationship)
        row = None if child.row is None else self.parent(child.schema, child.row, relationship)
        node = None if row is None else self.node(schema, row)
        if child.node is not None:
            child.node[relationship] = node
        parents[path] = _Parent(node, schema, row)
        return parents[path]

    def node(self, schema: ObjectSchema, row: Row) -> dict[str, Any]:
        return {"attributes": self.attributes(schema.name, row)} if self.attributes else {}


@dataclass(frozen=True)
class _Parent:
    """A record or nested parent being built: its output dict, sObject and source row."""

    node: dict[str, Any] | None
    schema: ObjectSchema
    row: Row | None


def evaluate(
    bound: BoundQuery,
    rows: Iterable[Row],
    *,
    resolve_parent: ParentResolver | None = None,
    attributes: AttributesBuilder | None = None,
) -> QueryResult:
    """Run a validated query over ``rows`` (all rows of ``bound.root``'s sObject).

    ``resolve_parent`` is required when the query follows a relationship; ``attributes``,
    when given, builds each record's and each nested parent's ``attributes`` object.
    """
    run = _Evaluation(bound, resolve_parent, attributes)
    query = bound.query
    where = query.where
    matching = [row for row in rows if where is None or run.matches(row, where)]
    selected = run.ordered(matching)[query.offset or 0 :]
    if query.limit is not None:
        selected = selected[: query.limit]
    if query.count_only:
        return QueryResult(len(selected), [])
    return QueryResult(len(selected), [run.record(row) for row in selected])


def execute(
    soql: str,
    catalog: Catalog,
    rows: Iterable[Row],
    *,
    resolve_parent: ParentResolver | None = None,
    attributes: AttributesBuilder | None = None,
) -> QueryResult:
    """``parse``, ``validate`` and ``evaluate`` in one call."""
    bound = validate(parse(soql), catalog)
    return evaluate(bound, rows, resolve_parent=resolve_parent, attributes=attributes)


__all__ = [
    "AttributesBuilder",
    "BoundQuery",
    "Catalog",
    "ObjectSchema",
    "ParentResolver",
    "QueryResult",
    "Row",
    "SoqlError",
    "evaluate",
    "execute",
    "parse",
    "validate",
]
