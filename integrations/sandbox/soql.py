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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from integrations.sandbox.soql_ast import FieldRef, SoqlError
from integrations.sandbox.soql_match import condition_test, ordered, sort_key
from integrations.sandbox.soql_parser import parse
from integrations.sandbox.soql_schema import (
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
    if where is None:
        matching = list(rows)
    else:
        # The condition is compiled once, then run per row (see soql_match).
        test = condition_test(where, bound.types, run.value)
        matching = [row for row in rows if test(row)]
    keys = [sort_key(item, bound.types, run.value) for item in query.order_by]
    selected = ordered(matching, query.order_by, keys)[query.offset or 0 :]
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
