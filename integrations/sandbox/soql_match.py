"""How SOQL compares values, and a query's WHERE and ORDER BY made ready to run over rows.

:mod:`~integrations.sandbox.soql` documents the semantics. A query scans every visible row
of an object, so its condition is turned once into nested closures with each literal
already normalised (``condition_test``), and an ``IN`` list becomes a set lookup. Sorting
uses key functions when the keys of each ORDER BY item are all of one ordered type, which
is what a field's describe type gives; values that mix types (a field of unknown type
holding numbers and text, say) keep the pairwise comparison, exactly as before.
"""

import operator
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
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
    InList,
    Like,
    Not,
    Op,
    Or,
    OrderItem,
)
from integrations.sandbox.soql_parser import like_regex
from integrations.sandbox.soql_schema import ID_TYPES, NUMBER_TYPES, TEXT_TYPES

Row = Mapping[str, Any]
RowTest = Callable[[Row], bool]
# (row, field reference) -> the value the reference reads (following parents if it must).
ValueOf = Callable[[Row, FieldRef], Any]

_ORDERING = {Op.LT: operator.lt, Op.LE: operator.le, Op.GT: operator.gt, Op.GE: operator.ge}
# Key types whose ``<`` is a total order consistent with ``==``.
_ORDERED_TYPES = frozenset({str, Decimal, bool, date, datetime})


class Kind(Enum):
    TEXT = auto()
    ID = auto()
    NUMBER = auto()
    BOOLEAN = auto()
    DATE = auto()
    DATETIME = auto()


def kind_of(field_type: str, sample: object) -> Kind:
    """How values of a field compare: by its describe type, else by the literal or value."""
    if field_type in TEXT_TYPES:
        return Kind.TEXT
    if field_type in ID_TYPES:
        return Kind.ID
    if field_type in NUMBER_TYPES:
        return Kind.NUMBER
    by_type = {"boolean": Kind.BOOLEAN, "date": Kind.DATE, "datetime": Kind.DATETIME}
    if field_type in by_type:
        return by_type[field_type]
    if isinstance(sample, bool):
        return Kind.BOOLEAN
    if isinstance(sample, int | float | Decimal):
        return Kind.NUMBER
    if isinstance(sample, datetime):
        return Kind.DATETIME
    if isinstance(sample, date):
        return Kind.DATE
    return Kind.TEXT


def normalize(value: object, kind: Kind) -> Any:
    """``value`` as a comparable key of ``kind``, or None when it is null or does not fit."""
    if kind is Kind.BOOLEAN:
        # Salesforce booleans are never null: a null reads as false.
        return value.lower() == "true" if isinstance(value, str) else bool(value)
    if value is None:
        return None
    if kind is Kind.TEXT:
        return str(value).casefold()
    if kind is Kind.ID:
        # The 18-character form only adds a case checksum to the 15-character one.
        return str(value)[:15]
    if kind is Kind.NUMBER:
        if isinstance(value, bool):
            return None
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return None
    if kind is Kind.DATE:
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


def _typed_kind(field_type: str) -> Kind | None:
    """The kind every value of a field of ``field_type`` compares as; None: it depends."""
    kind = kind_of(field_type, None)
    return kind if kind is not Kind.TEXT or field_type in TEXT_TYPES else None


def normalizer(kind: Kind) -> Callable[[object], Any]:
    """``normalize(value, kind)`` for one kind, quicker for the values records hold."""
    if kind is Kind.TEXT:

        def text(value: object) -> str | None:
            if type(value) is str:
                return value.casefold()
            return None if value is None else str(value).casefold()

        return text
    if kind is Kind.NUMBER:
        return _number_key
    return lambda value: normalize(value, kind)


def _number_key(value: object) -> Decimal | None:
    # The same stored numbers are read again by every query: remember what they read as.
    if type(value) in (int, float, str):
        return _remembered_number(value)
    return normalize(value, Kind.NUMBER)


@lru_cache(maxsize=1 << 16, typed=True)
def _remembered_number(value: int | float | str) -> Decimal | None:
    return normalize(value, Kind.NUMBER)


def _parse_or_none(parse_text: Callable[[str], Any], value: object) -> Any:
    try:
        return parse_text(str(value))
    except ValueError:
        return None


@lru_cache(maxsize=256)
def like_pattern(pattern: str) -> re.Pattern[str]:
    return like_regex(pattern)


def holds(op: Op, left: Any, right: Any) -> bool:
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


def condition_test(
    condition: Condition, types: Mapping[tuple[str, ...], str], value_of: ValueOf
) -> RowTest:
    """``condition`` as a test of one row; ``types`` maps field paths to describe types."""
    if isinstance(condition, And | Or):
        tests = [condition_test(operand, types, value_of) for operand in condition.operands]
        return _all_of(tests) if isinstance(condition, And) else _any_of(tests)
    if isinstance(condition, Not):
        inner = condition_test(condition.operand, types, value_of)
        return lambda row: not inner(row)
    read = _reader(condition.field, value_of)
    field_type = types[condition.field.path]
    if isinstance(condition, Like):
        pattern = like_pattern(condition.pattern)

        def like(row: Row) -> bool:
            value = read(row)
            return isinstance(value, str) and pattern.fullmatch(value.casefold()) is not None

        return like
    if isinstance(condition, Comparison):
        return _comparison_test(condition, field_type, read)
    return _in_test(condition, field_type, read)


def _comparison_test(condition: Comparison, field_type: str, read: Callable[[Row], Any]) -> RowTest:
    kind = kind_of(field_type, condition.value)
    literal = normalize(condition.value, kind)
    key = normalizer(kind)
    op = condition.op
    if condition.field.relationships:
        return lambda row: holds(op, key(read(row)), literal)
    # ``holds`` and the read inlined, for a field of the row itself: this runs per row.
    name = condition.field.name
    if op is Op.EQ:
        return lambda row: key(row.get(name)) == literal
    if op is Op.NE:
        return lambda row: key(row.get(name)) != literal
    compare = _ORDERING[op]

    def ordering(row: Row) -> bool:
        left = key(row.get(name))
        if left is None or literal is None:
            return False
        try:
            return bool(compare(left, literal))
        except TypeError:
            return False

    return ordering


# The usual two terms skip all()'s and any()'s generators, once per row.
def _all_of(tests: list[RowTest]) -> RowTest:
    if len(tests) == 2:
        first, second = tests
        return lambda row: first(row) and second(row)
    return lambda row: all(test(row) for test in tests)


def _any_of(tests: list[RowTest]) -> RowTest:
    if len(tests) == 2:
        first, second = tests
        return lambda row: first(row) or second(row)
    return lambda row: any(test(row) for test in tests)


def _reader(field: FieldRef, value_of: ValueOf) -> Callable[[Row], Any]:
    if field.relationships:
        return lambda row: value_of(row, field)
    name = field.name
    return lambda row: row.get(name)


def _in_test(condition: InList, field_type: str, read: Callable[[Row], Any]) -> RowTest:
    """``[NOT] IN``: whether the value equals any literal, compared as that literal's kind."""
    by_kind: dict[Kind, list[Any]] = {}
    for literal in condition.values:
        kind = kind_of(field_type, literal)
        by_kind.setdefault(kind, []).append(normalize(literal, kind))
    negated = condition.negated
    if all(_hashable(key) for keys in by_kind.values() for key in keys):
        # Equal keys hash alike for every key type normalize() makes, so a set lookup
        # answers what comparing with each literal in turn did.
        lookups = [(normalizer(kind), frozenset(keys)) for kind, keys in by_kind.items()]

        def in_set(row: Row) -> bool:
            value = read(row)
            found = any(_in(key(value), keys) for key, keys in lookups)
            return found != negated

        return in_set
    pairs = [(kind, key) for kind, keys in by_kind.items() for key in keys]

    def in_list(row: Row) -> bool:
        value = read(row)
        return any(normalize(value, kind) == key for kind, key in pairs) != negated

    return in_list


def _hashable(key: Any) -> bool:
    # A NaN never equals itself, which a set lookup by identity would not respect.
    return isinstance(key, Hashable) and not (isinstance(key, Decimal) and key.is_nan())


def _in(key: Any, keys: frozenset) -> bool:
    if isinstance(key, Decimal) and key.is_nan():
        # Compare as before: a NaN equals nothing, and a signalling one raises.
        return any(key == other for other in keys)
    return key in keys


def sort_key(
    item: OrderItem, types: Mapping[tuple[str, ...], str], value_of: ValueOf
) -> Callable[[Row], Any]:
    """An ORDER BY item's key of a row: its value normalised by the field's kind (for a
    field of unknown type, by the kind the value itself suggests)."""
    read = _reader(item.field, value_of)
    field_type = types[item.field.path]
    kind = _typed_kind(field_type)
    if kind is not None:
        key = normalizer(kind)
        return lambda row: key(read(row))

    def untyped(row: Row) -> Any:
        value = read(row)
        return normalize(value, kind_of(field_type, value))

    return untyped


def ordered(
    rows: list[Row], items: Sequence[OrderItem], keys_of: Sequence[Callable[[Row], Any]]
) -> list[Row]:
    """``rows`` in ORDER BY order (``keys_of``: each item's key); ties keep their order."""
    if not items:
        return rows
    columns = [[key(row) for row in rows] for key in keys_of]
    if not all(_key_sortable(keys) for keys in columns):
        return _compared(rows, items, columns)
    positions = list(range(len(rows)))
    # Stable sorts from the last key to the first give the lexicographic order.
    for item, keys in reversed(list(zip(items, columns, strict=True))):
        present = [index for index in positions if keys[index] is not None]
        present.sort(key=keys.__getitem__, reverse=item.descending)
        missing = [index for index in positions if keys[index] is None]
        # Nulls sort first unless NULLS LAST, whatever the direction.
        positions = present + missing if item.nulls_last else missing + present
    return [rows[index] for index in positions]


def _key_sortable(keys: Iterable[Any]) -> bool:
    types = {type(key) for key in keys if key is not None}
    if len(types) > 1 or not types <= _ORDERED_TYPES:
        return False
    # A NaN is unordered (and raises when compared): only the pairwise path shows that.
    return Decimal not in types or not any(key is not None and key.is_nan() for key in keys)


def _compared(rows: list[Row], items: Sequence[OrderItem], columns: list[list[Any]]) -> list[Row]:
    """The order by pairwise comparison, for keys no key function can order."""
    keyed = [([keys[index] for keys in columns], row) for index, row in enumerate(rows)]

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
