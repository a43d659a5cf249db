"""The sObjects a SOQL query may name, and the check that binds a parsed query to them.

A :class:`Catalog` is what the running user may see: one :class:`ObjectSchema` per sObject,
giving each field's describe ``type`` and each parent relationship's target sObject. Build it
from describe bodies with :meth:`ObjectSchema.from_describe` (leave out fields hidden by
field-level security: Salesforce answers for those exactly as for fields that do not exist).

``validate(query, catalog)`` resolves names case-insensitively and returns a
:class:`BoundQuery` whose tree uses the catalog's spelling, or raises
:class:`~integrations.sandbox.soql_ast.SoqlError` with ``INVALID_TYPE`` (unknown sObject),
``INVALID_FIELD`` (unknown field or relationship, or a literal of the wrong type),
``INVALID_QUERY_FILTER_OPERATOR`` (a malformed id literal) or ``MALFORMED_QUERY`` (a field
selected twice).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from typing import Any

from integrations.sandbox.soql_ast import (
    And,
    Comparison,
    Condition,
    FieldRef,
    InList,
    Not,
    Or,
    Query,
    SoqlError,
    Value,
    condition_fields,
    located,
    map_fields,
)

TEXT_TYPES = frozenset(
    {"string", "textarea", "picklist", "multipicklist", "combobox", "email", "phone", "url"}
    | {"encryptedstring"}
)
ID_TYPES = frozenset({"id", "reference"})
NUMBER_TYPES = frozenset({"double", "currency", "percent", "int", "long"})

_NO_COLUMN = (
    "No such column '{field}' on entity '{entity}'. If you are attempting to use a custom field, "
    "be sure to append the '__c' after the custom field name. Please reference your WSDL or "
    "the describe call for the appropriate names."
)
_NO_RELATIONSHIP = (
    "Didn't understand relationship '{name}' in field path. If you are attempting to use a "
    "custom relationship, be sure to append the '__r' after the custom relationship name. "
    "Please reference your WSDL or the describe call for the appropriate names."
)
_NO_OBJECT = (
    "sObject type '{name}' is not supported. If you are attempting to use a custom object, be "
    "sure to append the '__c' after the entity name. Please reference your WSDL or the describe "
    "call for the appropriate names."
)


@dataclass(frozen=True)
class ObjectSchema:
    """One sObject as the running user sees it: field name -> describe ``type``, parent
    relationship name -> the sObject it points at, and the fields the describe marks
    ``filterable: false`` / ``sortable: false`` (long text areas, such as Description)."""

    name: str
    fields: Mapping[str, str]
    parents: Mapping[str, str] = field(default_factory=dict)
    unfilterable: frozenset[str] = frozenset()
    unsortable: frozenset[str] = frozenset()

    @classmethod
    def from_describe(cls, describe: Mapping[str, Any]) -> "ObjectSchema":
        """The schema of a ``/sobjects/{name}/describe`` body. Polymorphic lookups keep their
        first target only."""
        fields = {item["name"]: item["type"] for item in describe["fields"]}
        parents = {
            item["relationshipName"]: item["referenceTo"][0]
            for item in describe["fields"]
            if item.get("relationshipName") and item.get("referenceTo")
        }
        return cls(
            describe["name"],
            fields,
            parents,
            _lacking(describe["fields"], "filterable"),
            _lacking(describe["fields"], "sortable"),
        )

    @cached_property
    def _field_names(self) -> dict[str, str]:
        return {name.lower(): name for name in self.fields}

    @cached_property
    def _parent_names(self) -> dict[str, str]:
        return {name.lower(): name for name in self.parents}

    def field_name(self, name: str) -> str | None:
        return self._field_names.get(name.lower())

    def relationship_name(self, name: str) -> str | None:
        return self._parent_names.get(name.lower())


def _lacking(fields: Iterable[Mapping[str, Any]], flag: str) -> frozenset[str]:
    return frozenset(item["name"] for item in fields if not item.get(flag, True))


class Catalog:
    """The sObjects a query may name, looked up case-insensitively."""

    def __init__(self, objects: Iterable[ObjectSchema]) -> None:
        self._objects = {schema.name.lower(): schema for schema in objects}

    def get(self, name: str) -> ObjectSchema | None:
        return self._objects.get(name.lower())

    def parent(self, schema: ObjectSchema, relationship: str) -> ObjectSchema:
        """The sObject ``schema``'s canonical ``relationship`` points at; KeyError if unknown."""
        parent = self.get(schema.parents[relationship])
        if parent is None:
            raise KeyError(schema.parents[relationship])
        return parent


@dataclass(frozen=True)
class BoundQuery:
    """A query whose names all resolved: ``query`` uses canonical spelling, ``types`` maps
    each field path to its describe type."""

    query: Query
    root: ObjectSchema
    catalog: Catalog
    types: Mapping[tuple[str, ...], str]


def _resolve(ref: FieldRef, root: ObjectSchema, catalog: Catalog, source: str) -> FieldRef:
    schema = root
    path: list[str] = []
    for relationship in ref.relationships:
        canonical = schema.relationship_name(relationship)
        try:
            if canonical is None:
                raise KeyError(relationship)
            schema = catalog.parent(schema, canonical)
        except KeyError:
            text = _NO_RELATIONSHIP.format(name=relationship)
            raise SoqlError("INVALID_FIELD", located(source, ref.pos, text)) from None
        path.append(canonical)
    name = schema.field_name(ref.name)
    if name is None:
        text = _NO_COLUMN.format(field=ref.name, entity=schema.name)
        raise SoqlError("INVALID_FIELD", located(source, ref.pos, text))
    return FieldRef((*path, name), ref.pos)


def _owner(path: tuple[str, ...], root: ObjectSchema, catalog: Catalog) -> ObjectSchema:
    """The sObject whose field the last step of ``path`` names."""
    schema = root
    for relationship in path[:-1]:
        schema = catalog.parent(schema, relationship)
    return schema


def _field_type(path: tuple[str, ...], root: ObjectSchema, catalog: Catalog) -> str:
    return _owner(path, root, catalog).fields[path[-1]]


def _check_usable(query: Query, root: ObjectSchema, catalog: Catalog) -> None:
    """Refuse a filter or a sort on a field the describe says cannot be used so, as
    Salesforce does (``field 'Description' can not be filtered in a query call``)."""
    filtered = condition_fields(query.where) if query.where is not None else []
    checks = [
        *(("filtered", ref) for ref in filtered),
        *(("sorted", item.field) for item in query.order_by),
    ]
    for verb, ref in checks:
        schema = _owner(ref.path, root, catalog)
        refused = schema.unfilterable if verb == "filtered" else schema.unsortable
        if ref.path[-1] in refused:
            text = f"field '{ref.path[-1]}' can not be {verb} in a query call"
            raise SoqlError("INVALID_FIELD", located(query.source, ref.pos, text))


def _check_literal(ref: FieldRef, field_type: str, value: Value) -> None:
    """Refuse a literal whose type cannot be compared with the field, as Salesforce does."""
    if value is None:
        return
    if field_type in TEXT_TYPES | ID_TYPES:
        if not isinstance(value, str):
            raise SoqlError(
                "INVALID_FIELD",
                f"value of filter criterion for field '{ref.name}' must be of type string "
                "and should be enclosed in quotes",
            )
        if field_type in ID_TYPES and not (len(value) in (15, 18) and value.isalnum()):
            raise SoqlError("INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {value}")
        return
    expected = {
        **dict.fromkeys(NUMBER_TYPES, Decimal),
        "boolean": bool,
        "date": date,
        "datetime": datetime,
    }.get(field_type)
    wrong_date = field_type == "date" and isinstance(value, datetime)
    if expected is not None and (not isinstance(value, expected) or wrong_date):
        shown = "dateTime" if field_type == "datetime" else field_type
        raise SoqlError(
            "INVALID_FIELD",
            f"value of filter criterion for field '{ref.name}' must be of type {shown} "
            "and should not be enclosed in quotes",
        )


def _check_literals(condition: Condition, types: Mapping[tuple[str, ...], str]) -> None:
    if isinstance(condition, And | Or):
        for operand in condition.operands:
            _check_literals(operand, types)
    elif isinstance(condition, Not):
        _check_literals(condition.operand, types)
    elif isinstance(condition, Comparison):
        _check_literal(condition.field, types[condition.field.path], condition.value)
    elif isinstance(condition, InList):
        for value in condition.values:
            _check_literal(condition.field, types[condition.field.path], value)


def validate(query: Query, catalog: Catalog) -> BoundQuery:
    """Resolve every name of ``query`` against ``catalog`` and check its literals' types."""
    root = catalog.get(query.sobject)
    if root is None:
        text = _NO_OBJECT.format(name=query.sobject)
        raise SoqlError("INVALID_TYPE", located(query.source, query.sobject_pos, text))

    def canonical(ref: FieldRef) -> FieldRef:
        return _resolve(ref, root, catalog, query.source)

    fields = tuple(canonical(ref) for ref in query.fields)
    seen: set[tuple[str, ...]] = set()
    for ref in fields:
        if ref.path in seen:
            text = f"duplicate field selected: {ref.dotted}"
            raise SoqlError("MALFORMED_QUERY", located(query.source, ref.pos, text))
        seen.add(ref.path)
    bound = replace(
        query,
        sobject=root.name,
        fields=fields,
        where=map_fields(query.where, canonical) if query.where is not None else None,
        order_by=tuple(replace(item, field=canonical(item.field)) for item in query.order_by),
    )
    types = {ref.path: _field_type(ref.path, root, catalog) for ref in bound.field_refs()}
    _check_usable(bound, root, catalog)
    if bound.where is not None:
        _check_literals(bound.where, types)
    return BoundQuery(bound, root, catalog, types)
