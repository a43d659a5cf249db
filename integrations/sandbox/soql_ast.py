"""The SOQL query tree, its Salesforce-shaped errors, and its rendering back to text.

:mod:`integrations.sandbox.soql_parser` builds these trees from text and
:mod:`integrations.sandbox.soql` checks and runs them. ``render(query)`` writes a tree back as
SOQL, and ``parse(render(q)) == q`` for every tree (positions are not compared).
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

Value = str | Decimal | bool | date | datetime | None

# The escapes a SOQL string literal may use (letters also in upper case), and what they mean.
ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
# Salesforce shows the whole row of short queries, an excerpt of long ones; the exact excerpt
# rule is not documented, so long rows are cut to whole tokens around the error.
_SNIPPET_WHOLE_ROW = 80
_SNIPPET_REACH = 30
_SNIPPET_TOKEN = re.compile(r"[\w.:+-]+|'(?:[^'\\]|\\.)*'?|\S")


class SoqlError(Exception):
    """A query Salesforce would refuse with HTTP 400; ``to_response`` is the REST body."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(f"{error_code}: {message}")
        self.error_code = error_code
        self.message = message

    def to_response(self) -> list[dict[str, str]]:
        return [{"message": self.message, "errorCode": self.error_code}]


def located(source: str, pos: int, text: str, *, column: int | None = None) -> str:
    """``text`` prefixed with the excerpt, caret and ``ERROR at Row:R:Column:C`` Salesforce
    puts in front of query errors. ``column`` overrides the 1-based column: the lexer reports
    a 0-based one, as Salesforce's does."""
    row_start = source.rfind("\n", 0, pos) + 1
    row_end = source.find("\n", pos)
    line = source[row_start : len(source) if row_end < 0 else row_end]
    offset = pos - row_start
    row = source.count("\n", 0, pos) + 1
    shown = offset + 1 if column is None else column
    if len(line) > _SNIPPET_WHOLE_ROW:
        spans = [m.span() for m in _SNIPPET_TOKEN.finditer(line)]
        starts = [start for start, end in spans if end > offset - _SNIPPET_REACH]
        ends = [end for start, end in spans if start < offset + _SNIPPET_REACH]
        first = min(starts, default=offset)
        line = line[first : max(ends, default=offset)]
        offset -= first
    return f"\n{line}\n{' ' * offset}^\nERROR at Row:{row}:Column:{shown}\n{text}"


def malformed(source: str, pos: int, text: str) -> SoqlError:
    return SoqlError("MALFORMED_QUERY", located(source, pos, text))


@dataclass(frozen=True)
class FieldRef:
    """A field path as written: ``("Account", "Name")`` for ``Account.Name``."""

    path: tuple[str, ...]
    pos: int = field(default=0, compare=False)

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def relationships(self) -> tuple[str, ...]:
        return self.path[:-1]

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


class Op(StrEnum):
    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


@dataclass(frozen=True)
class Comparison:
    field: FieldRef
    op: Op
    value: Value


@dataclass(frozen=True)
class InList:
    field: FieldRef
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True)
class Like:
    """``pattern`` is the literal's body as written (escapes kept); see :func:`like_regex`."""

    field: FieldRef
    pattern: str


@dataclass(frozen=True)
class Not:
    operand: "Condition"


@dataclass(frozen=True)
class And:
    operands: tuple["Condition", ...]


@dataclass(frozen=True)
class Or:
    operands: tuple["Condition", ...]


Condition = Comparison | InList | Like | Not | And | Or


@dataclass(frozen=True)
class OrderItem:
    """``nulls_last`` is None when the query leaves it to the default (nulls first)."""

    field: FieldRef
    descending: bool = False
    nulls_last: bool | None = None


@dataclass(frozen=True)
class Query:
    sobject: str
    fields: tuple[FieldRef, ...] = ()
    count_only: bool = False
    where: Condition | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None
    source: str = field(default="", compare=False)
    sobject_pos: int = field(default=0, compare=False)

    def field_refs(self) -> list[FieldRef]:
        """Every field the query names, in the order it names them."""
        refs = list(self.fields)
        if self.where is not None:
            refs.extend(condition_fields(self.where))
        refs.extend(item.field for item in self.order_by)
        return refs


def condition_fields(condition: Condition) -> list[FieldRef]:
    if isinstance(condition, And | Or):
        return [ref for operand in condition.operands for ref in condition_fields(operand)]
    if isinstance(condition, Not):
        return condition_fields(condition.operand)
    return [condition.field]


def map_fields(condition: Condition, fn: Callable[[FieldRef], FieldRef]) -> Condition:
    """``condition`` with every field reference replaced by ``fn(reference)``."""
    if isinstance(condition, And):
        return And(tuple(map_fields(operand, fn) for operand in condition.operands))
    if isinstance(condition, Or):
        return Or(tuple(map_fields(operand, fn) for operand in condition.operands))
    if isinstance(condition, Not):
        return Not(map_fields(condition.operand, fn))
    if isinstance(condition, Comparison):
        return Comparison(fn(condition.field), condition.op, condition.value)
    if isinstance(condition, InList):
        return InList(fn(condition.field), condition.values, condition.negated)
    return Like(fn(condition.field), condition.pattern)


def render_value(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        stamp = value.replace(tzinfo=None).isoformat(timespec="seconds")
        if value.microsecond:
            stamp += f".{value.microsecond:06d}"
        zone = value.strftime("%z")
        return stamp + ("Z" if zone in ("", "+0000") else f"{zone[:3]}:{zone[3:]}")
    if isinstance(value, date):
        return value.isoformat()
    reverse = {escaped: f"\\{key}" for key, escaped in ESCAPES.items() if key != '"'}
    return "'" + "".join(reverse.get(char, char) for char in value) + "'"


def _render_condition(condition: Condition, *, nested: bool = False) -> str:
    if isinstance(condition, And | Or):
        joiner = " AND " if isinstance(condition, And) else " OR "
        text = joiner.join(_render_condition(op, nested=True) for op in condition.operands)
        return f"({text})" if nested else text
    if isinstance(condition, Not):
        return f"NOT {_render_condition(condition.operand, nested=True)}"
    if isinstance(condition, Comparison):
        return f"{condition.field.dotted} {condition.op.value} {render_value(condition.value)}"
    if isinstance(condition, InList):
        values = ", ".join(render_value(value) for value in condition.values)
        return f"{condition.field.dotted} {'NOT IN' if condition.negated else 'IN'} ({values})"
    return f"{condition.field.dotted} LIKE '{condition.pattern}'"


def render(query: Query) -> str:
    """``query`` as SOQL text."""
    select = "COUNT()" if query.count_only else ", ".join(ref.dotted for ref in query.fields)
    parts = [f"SELECT {select} FROM {query.sobject}"]
    if query.where is not None:
        parts.append(f"WHERE {_render_condition(query.where)}")
    if query.order_by:
        items = []
        for item in query.order_by:
            text = item.field.dotted + (" DESC" if item.descending else " ASC")
            if item.nulls_last is not None:
                text += " NULLS LAST" if item.nulls_last else " NULLS FIRST"
            items.append(text)
        parts.append("ORDER BY " + ", ".join(items))
    if query.limit is not None:
        parts.append(f"LIMIT {query.limit}")
    if query.offset is not None:
        parts.append(f"OFFSET {query.offset}")
    return " ".join(parts)
