"""Narrow a query's rows in the database before SOQL evaluates them.

The SOQL evaluator reads every visible row of an object, which is slow on large objects.
The top-level AND terms that compare a stored text field with a string (``Email = 'x'``,
``Id IN (…)``, ``Website LIKE '%acme.example'``) become a database filter that selects a
superset of the matching rows; the evaluator still decides. A term is only pushed down when
the database cannot answer differently: stored fields only (not the ones Salesforce
derives), and ASCII literals, since SQLite's case-insensitive LIKE folds ASCII only.
"""

import re

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


def _term(object_name: str, term: Condition, fields: dict[str, SandboxProperty]) -> Q | None:
    if not isinstance(term, Comparison | InList | Like) or term.field.relationships:
        return None
    name = term.field.name
    if name == "Id":
        return _id_term(term)
    prop = fields.get(name)
    if prop is None or not _stored(object_name, prop):
        return None
    key = f"values__{name}"

    def equal(value: str) -> Q:
        # A 15-character id literal matches the stored 18-character form.
        short_id = prop.type == "reference" and len(value) == 15
        return Q(**{f"{key}__{'istartswith' if short_id else 'iexact'}": value})

    if isinstance(term, Comparison):
        if term.op is not Op.EQ or not isinstance(term.value, str) or not term.value.isascii():
            return None
        return equal(term.value)
    if isinstance(term, InList):
        values = term.values
        if term.negated or not values:
            return None
        if not all(isinstance(v, str) and v.isascii() for v in values):
            return None
        condition = Q()
        for value in values:
            condition |= equal(str(value))
        return condition
    match = _PLAIN_LIKE.fullmatch(term.pattern)
    if match is None or not term.pattern.isascii():
        return None
    lookup = {
        ("%", "%"): "icontains",
        ("%", ""): "iendswith",
        ("", "%"): "istartswith",
        ("", ""): "iexact",
    }[(match.group(1), match.group(3))]
    return Q(**{f"{key}__{lookup}": match.group(2)})


def _id_term(term: Comparison | InList | Like) -> Q | None:
    if isinstance(term, Comparison) and term.op is Op.EQ:
        values: tuple = (term.value,)
    elif isinstance(term, InList) and not term.negated:
        values = term.values
    else:
        return None
    # 15-character ids match their 18-character form; those are left to the evaluator.
    if not values or not all(isinstance(v, str) and len(v) == 18 for v in values):
        return None
    return Q(crm_id__in=[v for v in values if ID_PATTERN.fullmatch(v)])


def prefilter(
    object_name: str, where: Condition | None, fields: dict[str, SandboxProperty]
) -> Q | None:
    """A database filter implied by the query's top-level AND terms; None if there is none."""
    terms = where.operands if isinstance(where, And) else (where,)
    narrowed = Q()
    found = False
    for term in terms:
        if term is None:
            continue
        condition = _term(object_name, term, fields)
        if condition is not None:
            narrowed &= condition
            found = True
    return narrowed if found else None
