"""Narrow a query's rows in the database before SOQL evaluates them.

The SOQL evaluator reads every visible row of an object, which is slow on large objects.
The top-level AND terms that compare a stored text field with a string (``Email = 'x'``,
``Id IN (…)``, ``Website LIKE '%acme.example'``) become a database filter that selects a
superset of the matching rows; the evaluator still decides. A term is only pushed down when
the database cannot answer differently: stored fields only (not the ones Salesforce
derives), and ASCII literals, since SQLite's case-insensitive LIKE folds ASCII only.

Rows already in memory (salesforce/org.py's cached records) are narrowed by
``Narrowing.verdict`` instead, the same filter in Python. It is exact for stored ASCII
text and ids; for any other stored value it answers "unsure", and those few records go to
the database with the filter itself, so the result never depends on how this module reads
a backend's case folding.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from integrations.sandbox.models import SandboxProperty
from integrations.sandbox.salesforce.values import ID_PATTERN
from integrations.sandbox.soql_ast import And, Comparison, Condition, InList, Like, Op
from integrations.sandbox.soql_schema import ID_TYPES, TEXT_TYPES

# Answered from the record's columns or worked out when read (rows.RecordRow), not stored.
_NOT_STORED = frozenset(
    {
        "IsDeleted",
        "CreatedDate",
        "LastModifiedDate",
        "SystemModstamp",
        "CreatedById",
        "LastModifiedById",
        "Name:Contact",
        "IsClosed:Opportunity",
        "IsWon:Opportunity",
        "ForecastCategory:Opportunity",
        "Probability:Opportunity",
        "ForecastCategoryName:Opportunity",
        "ExpectedRevenue:Opportunity",
    }
)
_PLAIN_LIKE = re.compile(r"(%?)([^%_\\]+)(%?)")


def _stored(object_name: str, prop: SandboxProperty) -> bool:
    return (
        prop.type in TEXT_TYPES | ID_TYPES
        and prop.type != "id"
        and prop.name not in _NOT_STORED
        and f"{prop.name}:{object_name}" not in _NOT_STORED
    )


# What each pushed-down lookup means for a stored ASCII string and an ASCII literal, both
# lower-cased: SQLite's LIKE and PostgreSQL's UPPER() then both fold exactly ASCII's letters.
_ASCII_LOOKUPS: dict[str, Callable[[str, str], bool]] = {
    "iexact": str.__eq__,
    "istartswith": str.startswith,
    "iendswith": str.endswith,
    "icontains": lambda value, literal: literal in value,
}
# (stored values, crm id) -> whether the database filter keeps the record; None: only the
# database can tell (a non-ASCII or non-text value, whose case folding differs by backend).
RecordTest = Callable[[Mapping[str, Any], str], bool | None]


@dataclass(frozen=True)
class Narrowing:
    """A database filter implied by a query, and the same filter worked out in Python."""

    q: Q
    tests: tuple[RecordTest, ...]
    key: tuple  # the terms, as data: equal keys narrow alike

    def verdict(self, values: Mapping[str, Any], crm_id: str) -> bool | None:
        """Whether ``q`` keeps the record: False as soon as one term is sure to drop it."""
        if len(self.tests) == 1:
            return self.tests[0](values, crm_id)
        verdict: bool | None = True
        for test in self.tests:
            passes = test(values, crm_id)
            if passes is False:
                return False
            if passes is None:
                verdict = None
        return verdict


def _value_term(name: str, lookups: list[tuple[str, str]]) -> tuple[Q, RecordTest, tuple]:
    """``values__name__<lookup>=literal`` for any of ``lookups`` (ORed)."""
    condition = Q()
    for lookup, literal in lookups:
        condition |= Q(**{f"values__{name}__{lookup}": literal})
    # Django reads "__" in a key lookup as a step into a nested object ("Region__c" is
    # values -> "Region" -> "c"), and a step that reads as an integer as an array index.
    path = name.split("__")
    walkable = not any(_reads_as_int(step) for step in path)

    folded = [(_ASCII_LOOKUPS[lookup], literal.lower()) for lookup, literal in lookups]

    def test(values: Mapping[str, Any], crm_id: str) -> bool | None:
        if not walkable:
            return None
        value: Any = values
        for step in path:
            if type(value) is not dict or step not in value:
                return False  # no such key: the database reads NULL, which never passes
            value = value[step]
        # JSON null reads as the text 'null' on SQLite and as NULL on PostgreSQL; numbers,
        # booleans and non-ASCII text fold differently too: only the database can tell.
        if type(value) is not str or not value.isascii():
            return None
        lowered = value.lower()
        return any(matches(lowered, literal) for matches, literal in folded)

    return condition, test, ("values", name, tuple(lookups))


def _reads_as_int(step: str) -> bool:
    try:
        int(step)
    except ValueError:
        return False
    return True


def _term(
    object_name: str, term: Condition, fields: dict[str, SandboxProperty]
) -> tuple[Q, RecordTest, tuple] | None:
    if not isinstance(term, Comparison | InList | Like) or term.field.relationships:
        return None
    name = term.field.name
    if name == "Id":
        return _id_term(term)
    prop = fields.get(name)
    if prop is None or not _stored(object_name, prop):
        return None

    def equal(value: str) -> tuple[str, str]:
        # A 15-character id literal matches the stored 18-character form.
        short_id = prop.type == "reference" and len(value) == 15
        return ("istartswith" if short_id else "iexact", value)

    if isinstance(term, Comparison):
        if term.op is not Op.EQ or not isinstance(term.value, str) or not term.value.isascii():
            return None
        return _value_term(name, [equal(term.value)])
    if isinstance(term, InList):
        values = term.values
        if term.negated or not values:
            return None
        if not all(isinstance(v, str) and v.isascii() for v in values):
            return None
        return _value_term(name, [equal(str(value)) for value in values])
    match = _PLAIN_LIKE.fullmatch(term.pattern)
    if match is None or not term.pattern.isascii():
        return None
    lookup = {
        ("%", "%"): "icontains",
        ("%", ""): "iendswith",
        ("", "%"): "istartswith",
        ("", ""): "iexact",
    }[(match.group(1), match.group(3))]
    return _value_term(name, [(lookup, match.group(2))])


def _id_term(term: Comparison | InList | Like) -> tuple[Q, RecordTest, tuple] | None:
    if isinstance(term, Comparison) and term.op is Op.EQ:
        values: tuple = (term.value,)
    elif isinstance(term, InList) and not term.negated:
        values = term.values
    else:
        return None
    # 15-character ids match their 18-character form; those are left to the evaluator.
    if not values or not all(isinstance(v, str) and len(v) == 18 for v in values):
        return None
    ids = [v for v in values if ID_PATTERN.fullmatch(v)]
    wanted = frozenset(ids)
    # Ids compare case-sensitively in both databases, as in Python.
    return Q(crm_id__in=ids), lambda values, crm_id: crm_id in wanted, ("id", tuple(ids))


def prefilter(
    object_name: str, where: Condition | None, fields: dict[str, SandboxProperty]
) -> Narrowing | None:
    """The filter implied by the query's top-level AND terms; None if there is none."""
    terms = where.operands if isinstance(where, And) else (where,)
    narrowed = Q()
    tests: list[RecordTest] = []
    keys: list[tuple] = []
    for term in terms:
        if term is None:
            continue
        found = _term(object_name, term, fields)
        if found is not None:
            narrowed &= found[0]
            tests.append(found[1])
            keys.append(found[2])
    return Narrowing(narrowed, tuple(tests), tuple(keys)) if tests else None
