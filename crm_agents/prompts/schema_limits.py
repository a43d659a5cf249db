"""What OpenAI's structured outputs accept as a response schema, and how to ask for many
fields within it.

The figures are those of "Supported schemas" in OpenAI's Structured Outputs guide,
https://platform.openai.com/docs/guides/structured-outputs#supported-schemas (also served at
developers.openai.com/api/docs/guides/structured-outputs), as read on 2026-12-07. The page
does not say how it counts some of them; where it is silent, this module counts so that a
schema it accepts is never one the API refuses:

* nesting: the root is level 1; each step into a property or into an array's items is one
  more level; the branches of an ``anyOf`` stay at their parent's level;
* enum values: every entry of an ``enum`` (null included), and every ``const`` branch of an
  ``anyOf``, which is an enum written another way (the extraction schema writes picklists
  so, to give each option its label); a lone ``const`` counts in the string total only;
* a definition (``$defs``, ``definitions``) counts its name and content where it is declared,
  its nesting from level 1: where a ``$ref`` places it is not followed (this product's
  schemas declare none).

The sandbox model (integrations/sandbox/openai) refuses what ``schema_problem`` finds, with
OpenAI's 400, so a test catches a schema the real API would refuse.
"""

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from integrations.sandbox.extractor_contract import (
    FieldRequest,
    FieldType,
    build_response_format,
    field_branch,
)

MAX_OBJECT_PROPERTIES = 5000
MAX_NESTING = 10
MAX_STRING_CHARS = 120_000  # property and definition names, enum and const values
MAX_ENUM_VALUES = 1000
LARGE_ENUM = 250  # a single enum with more string values than this...
MAX_LARGE_ENUM_CHARS = 15_000  # ...may total this many characters at most
# Strict mode refuses these keywords (same page, "Some type-specific keywords are not yet
# supported").
UNSUPPORTED_KEYWORDS = (
    "allOf",
    "not",
    "dependentRequired",
    "dependentSchemas",
    "if",
    "then",
    "else",
)
_TYPES = frozenset({"string", "number", "boolean", "integer", "object", "array", "null"})
_DEFINITION_KEYS = ("$defs", "definitions")
_CONTAINERS = {"properties": dict, "anyOf": list, "$defs": dict, "definitions": dict}
_KIND_NAMES = {dict: "an object", list: "an array"}
# Subschemas this deep are refused unread, so a hostile schema cannot exhaust the stack.
_DEEPEST = 100


class SchemaTooLarge(ValueError):
    """A field that no structured-output schema can ask for, even on its own."""


@dataclass(frozen=True)
class Usage:
    """How much of each additive limit a schema (or one part of it) uses."""

    properties: int = 0
    string_chars: int = 0
    enum_values: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            self.properties + other.properties,
            self.string_chars + other.string_chars,
            self.enum_values + other.enum_values,
        )

    def __sub__(self, other: "Usage") -> "Usage":
        return self + Usage(-other.properties, -other.string_chars, -other.enum_values)

    def fits(self) -> bool:
        return (
            self.properties <= MAX_OBJECT_PROPERTIES
            and self.string_chars <= MAX_STRING_CHARS
            and self.enum_values <= MAX_ENUM_VALUES
        )

    def weight(self) -> float:
        """Its largest share of a limit: what first-fit decreasing sorts by."""
        return max(
            self.properties / MAX_OBJECT_PROPERTIES,
            self.string_chars / MAX_STRING_CHARS,
            self.enum_values / MAX_ENUM_VALUES,
        )


@dataclass(frozen=True)
class _Measure:
    usage: Usage
    nesting: int
    # The first single enum over its length limit: (context, values, characters).
    large_enum: tuple[tuple[str, ...], int, int] | None


def measure(schema: Any) -> tuple[Usage, int]:
    """The schema's usage of the additive limits, and its nesting depth."""
    found = _measure(schema)
    return found.usage, found.nesting


def first_exceeded(schema: Any) -> str | None:
    """The first of OpenAI's size limits ``schema`` exceeds, said as OpenAI says it, or
    None when it is within all of them."""
    found = _measure(schema)
    usage = found.usage
    if found.nesting > MAX_NESTING:
        return f"{found.nesting} levels of nesting exceeds limit of {MAX_NESTING}."
    if usage.properties > MAX_OBJECT_PROPERTIES:
        return f"{usage.properties} object properties exceeds limit of {MAX_OBJECT_PROPERTIES}."
    if usage.string_chars > MAX_STRING_CHARS:
        return (
            f"{usage.string_chars} characters of property names, definition names, enum values "
            f"and const values exceeds limit of {MAX_STRING_CHARS}."
        )
    if usage.enum_values > MAX_ENUM_VALUES:
        return f"{usage.enum_values} enum values exceeds limit of {MAX_ENUM_VALUES}."
    if found.large_enum is not None:
        context, count, chars = found.large_enum
        return (
            f"In context={context}, {chars} characters of enum values exceeds limit of "
            f"{MAX_LARGE_ENUM_CHARS} for an enum of more than {LARGE_ENUM} values ({count})."
        )
    return None


def schema_problem(schema: Any) -> str | None:
    """Why strict structured outputs would refuse ``schema`` (its shape first, then its
    size), or None."""
    return _strict_problem(schema) or first_exceeded(schema)


# Measuring ----------------------------------------------------------------------------------


def _measure(node: Any, context: tuple[str, ...] = (), level: int = 1) -> _Measure:
    if not isinstance(node, dict):
        return _Measure(Usage(), 0, None)
    if len(context) > _DEEPEST:
        # Far past every limit already; a hostile schema must not exhaust the stack.
        return _Measure(Usage(), max(level, MAX_NESTING + 1), None)
    enum = node["enum"] if isinstance(node.get("enum"), list) else []
    branches = node["anyOf"] if isinstance(node.get("anyOf"), list) else []
    consts = [
        branch["const"] for branch in branches if isinstance(branch, dict) and "const" in branch
    ]
    usage = Usage(
        properties=len(_properties(node)),
        string_chars=sum(map(len, _properties(node)))
        + sum(map(len, _definitions(node)))
        + sum(map(_chars, enum))
        + (_chars(node["const"]) if "const" in node else 0),
        enum_values=len(enum) + len(consts),
    )
    large = _large_enum(enum, context) or _large_enum(consts, context)
    nesting = level
    for child, where, step in _children(node, context):
        found = _measure(child, where, 1 if step is None else level + step)
        usage += found.usage
        nesting = max(nesting, found.nesting)
        large = large or found.large_enum
    return _Measure(usage, nesting, large)


def _children(
    node: dict, context: tuple[str, ...]
) -> Iterator[tuple[Any, tuple[str, ...], int | None]]:
    """Each subschema with where it is and how many levels deeper it sits (None: a
    definition, measured from the root)."""
    for name, child in _properties(node).items():
        yield child, (*context, "properties", name), 1
    if "items" in node:
        yield node["items"], (*context, "items"), 1
    branches = node.get("anyOf")
    for index, branch in enumerate(branches if isinstance(branches, list) else []):
        yield branch, (*context, "anyOf", str(index)), 0
    for key in _DEFINITION_KEYS:
        definitions = node.get(key)
        for name, child in (definitions if isinstance(definitions, dict) else {}).items():
            yield child, (*context, key, name), None


def _properties(node: dict) -> dict:
    return node["properties"] if isinstance(node.get("properties"), dict) else {}


def _definitions(node: dict) -> list[str]:
    return [
        name for key in _DEFINITION_KEYS if isinstance(node.get(key), dict) for name in node[key]
    ]


def _chars(value: Any) -> int:
    if value is None:
        return 0
    return len(value) if isinstance(value, str) else len(json.dumps(value))


def _large_enum(values: list, context: tuple[str, ...]) -> tuple[tuple[str, ...], int, int] | None:
    strings = [value for value in values if isinstance(value, str)]
    chars = sum(map(len, strings))
    if len(strings) > LARGE_ENUM and chars > MAX_LARGE_ENUM_CHARS:
        return context, len(strings), chars
    return None


# Strict mode's rules of shape ---------------------------------------------------------------


def _strict_problem(schema: Any) -> str | None:
    if not isinstance(schema, dict) or schema.get("type") != "object" or "anyOf" in schema:
        got = schema.get("type") if isinstance(schema, dict) else type(schema).__name__
        return f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{got}\"'."
    return _node_problem(schema, ())


def _node_problem(node: Any, context: tuple[str, ...]) -> str | None:
    if not isinstance(node, dict):
        return f"In context={context}, schema must be an object, got {json.dumps(node)[:80]}."
    if len(context) > _DEEPEST:
        return f"In context={context[:6]}..., more than {MAX_NESTING} levels of nesting."
    for keyword in UNSUPPORTED_KEYWORDS:
        if keyword in node:
            return f"In context={context}, '{keyword}' is not permitted."
    for keyword, kind in _CONTAINERS.items():
        if keyword in node and not isinstance(node[keyword], kind):
            return f"In context={context}, '{keyword}' must be {_KIND_NAMES[kind]}."
    types = node.get("type", [])
    types = types if isinstance(types, list) else [types]
    unknown = [kind for kind in types if not isinstance(kind, str) or kind not in _TYPES]
    if unknown:
        return f"In context={context}, type {json.dumps(unknown[0])} is not supported."
    if "object" in types or "properties" in node:
        problem = _object_problem(node, context)
        if problem:
            return problem
    if "array" in types and "items" not in node:
        return f"In context={context}, array schema missing items."
    for child, where, _ in _children(node, context):
        problem = _node_problem(child, where)
        if problem:
            return problem
    return None


def _object_problem(node: dict, context: tuple[str, ...]) -> str | None:
    if node.get("additionalProperties") is not False:
        return (
            f"In context={context}, 'additionalProperties' is required to be supplied and to be "
            "false."
        )
    lead = (
        f"In context={context}, 'required' is required to be supplied and to be an array "
        "including every key in properties."
    )
    required = node.get("required")
    if not isinstance(required, list):
        return lead
    keys = list(_properties(node))
    missing = [key for key in keys if key not in required]
    if missing:
        return f"{lead} Missing '{missing[0]}'."
    extra = [key for key in required if key not in keys]
    if extra:
        return f"{lead} Extra required key '{extra[0]}' supplied."
    return None


# Planning the model calls -------------------------------------------------------------------


@dataclass(frozen=True)
class RequestPlan:
    """The fields of one extraction, split into the fewest model calls whose schemas fit."""

    calls: tuple[tuple[FieldRequest, ...], ...]
    # The limit all the fields in one schema exceed; empty when one call asks for them all.
    split_because: str = ""
    # (field, why) for each picklist asked without its options as constraints.
    unconstrained: tuple[tuple[str, str], ...] = ()


def plan_requests(fields: Sequence[FieldRequest]) -> RequestPlan:
    """Split ``fields`` into as few schemas as fit OpenAI's limits, each keeping the request
    order. A picklist that alone exceeds a limit is asked unconstrained (its options listed,
    checked in code when the answer is coerced); a field that exceeds one even so raises
    SchemaTooLarge."""
    fitted: list[FieldRequest] = []
    unconstrained: list[tuple[str, str]] = []
    for field in fields:
        alone = first_exceeded(_schema([field]))
        if alone and field.type == FieldType.ENUMERATION and field.constrained:
            field = replace(field, constrained=False)
            unconstrained.append((field.name, alone))
            alone = first_exceeded(_schema([field]))
        if alone:
            raise SchemaTooLarge(f"field {field.name!r} cannot be asked for: {alone}")
        fitted.append(field)
    exceeded = first_exceeded(_schema(fitted))
    if exceeded is None:
        return RequestPlan((tuple(fitted),), "", tuple(unconstrained))
    groups = sorted(sorted(group) for group in _first_fit(fitted))  # in request order
    calls = tuple(tuple(fitted[i] for i in group) for group in groups)
    for call in calls:
        # Usage adds up over the fields' branches; a call over a limit would be a bug here.
        problem = first_exceeded(_schema(call))
        if problem:
            raise RuntimeError(f"a planned extraction schema exceeds a limit: {problem}")
    return RequestPlan(calls, exceeded, tuple(unconstrained))


def _first_fit(fields: list[FieldRequest]) -> list[list[int]]:
    """First-fit decreasing over the additive limits: the largest field first, each into the
    first call it fits, a new call when it fits none."""
    costs = [measure(field_branch(field))[0] for field in fields]
    frame = measure(_schema(fields[:1]))[0] - costs[0]
    order = sorted(range(len(fields)), key=lambda i: (-costs[i].weight(), i))
    groups: list[list[int]] = []
    totals: list[Usage] = []
    for index in order:
        for slot, total in enumerate(totals):
            if (total + costs[index]).fits():
                groups[slot].append(index)
                totals[slot] = total + costs[index]
                break
        else:
            groups.append([index])
            totals.append(frame + costs[index])
    return groups


def _schema(fields: Sequence[FieldRequest]) -> dict:
    return build_response_format(fields)["json_schema"]["schema"]
