"""Read a HubSpot CRM search body into a typed :class:`SearchRequest`, refusing what HubSpot
refuses with a 400 (:class:`~integrations.sandbox.hubspot_search_errors.HubSpotSearchError`).

The JSON is validated at the boundary with pydantic (unknown keys ignored, numbers and
booleans accepted where a string is expected, as Jackson does), then each filter and sort is
checked and turned into a frozen dataclass. The wording of the limit checks (filter counts,
body and query length, page size, the 10,000 cap) is not documented by HubSpot, only their
status and category; ``SearchLimits`` makes every limit configurable.
"""

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from integrations.sandbox.hubspot_search_errors import (
    FILTER_CLASS,
    HubSpotSearchError,
    JsonLocator,
    java_type,
    token_description,
)


class Operator(StrEnum):
    EQ = "EQ"
    NEQ = "NEQ"
    LT = "LT"
    LTE = "LTE"
    GT = "GT"
    GTE = "GTE"
    BETWEEN = "BETWEEN"
    IN = "IN"
    NOT_IN = "NOT_IN"
    HAS_PROPERTY = "HAS_PROPERTY"
    NOT_HAS_PROPERTY = "NOT_HAS_PROPERTY"
    CONTAINS_TOKEN = "CONTAINS_TOKEN"
    NOT_CONTAINS_TOKEN = "NOT_CONTAINS_TOKEN"


_TAKES_VALUE = frozenset(
    {Operator.EQ, Operator.NEQ, Operator.LT, Operator.LTE, Operator.GT, Operator.GTE}
    | {Operator.BETWEEN, Operator.CONTAINS_TOKEN, Operator.NOT_CONTAINS_TOKEN}
)
_TAKES_VALUES = frozenset({Operator.IN, Operator.NOT_IN})


@dataclass(frozen=True)
class SearchLimits:
    """HubSpot's search limits. The current guide says 5 groups, 6 filters a group and 18 in
    all; the August 2024 changelog announced 5 / 10 / 25. Both are in use, hence the knobs."""

    max_filter_groups: int = 5
    max_filters_per_group: int = 6
    max_filters: int = 18
    max_body_chars: int = 3000
    max_query_chars: int = 3000
    default_page_size: int = 10
    max_page_size: int = 200
    max_results: int = 10_000


@dataclass(frozen=True)
class Filter:
    property_name: str
    operator: Operator
    value: str | None = None
    high_value: str | None = None
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sort:
    property_name: str
    descending: bool = False


@dataclass(frozen=True)
class SearchRequest:
    filter_groups: tuple[tuple[Filter, ...], ...] = ()
    sorts: tuple[Sort, ...] = ()
    query: str | None = None
    properties: tuple[str, ...] = ()
    limit: int = 10
    after: int = 0


def _as_text(value: object) -> object:
    """Jackson reads a JSON number or boolean into a String field; arrays and objects fail."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return value


_Text = Annotated[str, BeforeValidator(_as_text)]


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="ignore", frozen=True)


class _FilterBody(_Body):
    property_name: _Text | None = None
    operator: _Text | None = None
    value: _Text | None = None
    high_value: _Text | None = None
    values: list[_Text] | None = None


class _FilterGroupBody(_Body):
    filters: list[_FilterBody] | None = None


class _SortBody(_Body):
    property_name: _Text | None = None
    direction: _Text | None = None


class _SearchBody(_Body):
    filter_groups: list[_FilterGroupBody] | None = None
    sorts: list[_Text | _SortBody] | None = None
    query: _Text | None = None
    properties: list[_Text] | None = None
    limit: int | None = None
    after: _Text | None = None


_KEYS = frozenset(
    field.alias or name
    for model in (_SearchBody, _FilterGroupBody, _FilterBody, _SortBody)
    for name, field in model.model_fields.items()
)


def _read_body(raw: str | bytes, limits: SearchLimits) -> tuple[_SearchBody, JsonLocator]:
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise HubSpotSearchError("Invalid input JSON: the body is not UTF-8") from None
    if len(text) > limits.max_body_chars:
        raise HubSpotSearchError(
            f"The request body is {len(text)} characters long; "
            f"the maximum is {limits.max_body_chars}."
        )
    locator = JsonLocator(text)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise HubSpotSearchError(
            f"Invalid input JSON on line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    try:
        return _SearchBody.model_validate(document), locator
    except ValidationError as error:
        problem = error.errors()[0]
        path = [step for step in problem["loc"] if not _is_union_tag(step)]
        text = f"Cannot deserialize value of type `{java_type(path)}` from "
        raise locator.at_start(path, text + token_description(problem["input"])) from None


def _is_union_tag(step: str | int) -> bool:
    # Pydantic names the union member it tried ("str", "_SortBody") inside error locations;
    # every real step is a list index or one of the body's keys.
    return isinstance(step, str) and step not in _KEYS


def _filter(body: _FilterBody, path: list[str | int], locator: JsonLocator) -> Filter:
    property_name, operator_name = body.property_name, body.operator
    if not property_name or not operator_name:
        given = {"propertyName": property_name, "operator": operator_name}
        missing = [name for name, value in given.items() if not value]
        text = (
            f"Cannot build Filter, some of required attributes are not set [{', '.join(missing)}]"
        )
        raise locator.at_end(path, text)
    try:
        operator = Operator(operator_name)
    except ValueError:
        accepted = ", ".join(Operator)
        raise locator.at_start(
            [*path, "operator"],
            f"Cannot deserialize value of type `{FILTER_CLASS}Operator` from String "
            f'"{operator_name}": not one of the values accepted for Enum class: [{accepted}]',
        ) from None
    problem = _operand_problem(operator, body)
    if problem:
        raise locator.at_end(path, f"Cannot construct instance of `{FILTER_CLASS}`, {problem}")
    for value in (body.value, body.high_value):
        if value is not None and not value.strip():
            where = f"{{propertyName: '{property_name}'}}"
            raise locator.at_end(
                path, f"value must be non-empty and non-blank, if specified {where}"
            )
    return Filter(
        property_name,
        operator,
        body.value,
        body.high_value,
        tuple(body.values or ()),
    )


def _operand_problem(operator: Operator, body: _FilterBody) -> str | None:
    if operator in _TAKES_VALUE and body.value is None:
        return f"problem: operator {operator} requires a value"
    if operator is Operator.BETWEEN and body.high_value is None:
        return "problem: operator BETWEEN requires a highValue"
    if operator in _TAKES_VALUES and not body.values:
        return f"problem: operator {operator} requires values"
    if operator not in _TAKES_VALUE | _TAKES_VALUES and body.value is not None:
        return f"problem: operator {operator} does not take a value"
    return None


def _sort(body: str | _SortBody, path: list[str | int], locator: JsonLocator) -> Sort:
    if isinstance(body, str):
        descending = body.startswith("-")
        return Sort(body[1:] if descending else body, descending)
    if not body.property_name:
        text = "Cannot build Sort, some of required attributes are not set [propertyName]"
        raise locator.at_end(path, text)
    direction = body.direction or "ASCENDING"
    if direction not in ("ASCENDING", "DESCENDING"):
        raise locator.at_start(
            [*path, "direction"],
            f'Cannot deserialize value of type `SortDirection` from String "{direction}": '
            "not one of the values accepted for Enum class: [ASCENDING, DESCENDING]",
        )
    return Sort(body.property_name, direction == "DESCENDING")


def _offset(after: str | None, locator: JsonLocator) -> int:
    if after is None or after == "":
        return 0
    if not (after.isascii() and after.isdigit()):
        raise locator.at_start(["after"], f'Cannot parse "after" as an offset: "{after}"')
    return int(after)


def parse_search_request(
    raw: str | bytes, *, limits: SearchLimits = SearchLimits()
) -> SearchRequest:
    """Read and check a search body as HubSpot does; raises :class:`HubSpotSearchError`."""
    body, locator = _read_body(raw, limits)
    groups: list[tuple[Filter, ...]] = []
    for group_index, group in enumerate(body.filter_groups or ()):
        path: list[str | int] = ["filterGroups", group_index, "filters"]
        filters = tuple(
            _filter(item, [*path, index], locator) for index, item in enumerate(group.filters or ())
        )
        groups.append(filters)
    sorts = tuple(
        _sort(item, ["sorts", index], locator) for index, item in enumerate(body.sorts or ())
    )
    if len(groups) > limits.max_filter_groups:
        raise HubSpotSearchError(
            f"Too many filter groups: {len(groups)}. The maximum is {limits.max_filter_groups}."
        )
    for filters in groups:
        if len(filters) > limits.max_filters_per_group:
            raise HubSpotSearchError(
                f"Too many filters in a filter group: {len(filters)}. "
                f"The maximum is {limits.max_filters_per_group} filters per group."
            )
    total_filters = sum(len(filters) for filters in groups)
    if total_filters > limits.max_filters:
        raise HubSpotSearchError(
            f"Too many filters: {total_filters}. The maximum is {limits.max_filters} "
            "across all filter groups."
        )
    if body.query is not None and len(body.query) > limits.max_query_chars:
        raise HubSpotSearchError(
            f"The query is {len(body.query)} characters long; "
            f"the maximum is {limits.max_query_chars}."
        )
    limit = limits.default_page_size if body.limit is None else body.limit
    if not 0 <= limit <= limits.max_page_size:
        raise HubSpotSearchError(
            f"limit must be between 0 and {limits.max_page_size}, got {limit}."
        )
    after = _offset(body.after, locator)
    if after + limit > limits.max_results:
        raise HubSpotSearchError(
            f"Search can page through at most {limits.max_results} results: "
            f"after ({after}) + limit ({limit}) goes beyond that."
        )
    return SearchRequest(
        filter_groups=tuple(groups),
        sorts=sorts,
        query=body.query,
        properties=tuple(body.properties or ()),
        limit=limit,
        after=after,
    )
