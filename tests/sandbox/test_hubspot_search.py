"""The sandbox's HubSpot CRM search: request checks, filtering, sorting and paging."""

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.sandbox.hubspot_search import (
    PROFILES,
    Filter,
    HubSpotSearchError,
    Operator,
    SearchHit,
    SearchLimits,
    SearchPage,
    SearchProfile,
    SearchRequest,
    Sort,
    parse_search_request,
    search,
)

DEFAULT_LIMITS = SearchLimits()
FILTER_CLASS = "com.hubspot.inbounddb.publicobject.core.v3.search.Filter"
PROFILE = SearchProfile(
    default_properties=("email",),
    always_properties=("hs_object_id",),
    searchable_properties=("firstname", "email"),
)
RECORDS: list[tuple[str, dict[str, str | None]]] = [
    ("1", {"firstname": "Ada", "email": "ada@hubspot.com", "amount": "100", "stage": "won"}),
    ("2", {"firstname": "bob", "email": "bob@example.com", "amount": "25.5", "stage": "Lost"}),
    ("3", {"firstname": "Cy Young", "email": "", "amount": "1000", "stage": None}),
    ("10", {"firstname": "Di", "amount": "abc", "closedate": "2024-01-02T00:00:00Z"}),
    ("4", {"firstname": None, "closedate": "1704067200000", "lastname": "Hub Spot"}),
]


def body(**fields: Any) -> str:
    return json.dumps(fields)


def one_filter(property_name: str, operator: str, **operands: Any) -> str:
    item = {"propertyName": property_name, "operator": operator, **operands}
    return body(filterGroups=[{"filters": [item]}])


def refusal(raw: str | bytes, limits: SearchLimits = DEFAULT_LIMITS) -> str:
    with pytest.raises(HubSpotSearchError) as caught:
        parse_search_request(raw, limits=limits)
    response = caught.value.to_response("corr-1")
    assert response == {
        "status": "error",
        "message": caught.value.message,
        "correlationId": "corr-1",
        "category": "VALIDATION_ERROR",
    }
    assert caught.value.status == 400
    return caught.value.message


def found(raw: str, records: list[tuple[str, dict[str, str | None]]] = RECORDS) -> list[str]:
    page = search(parse_search_request(raw), records, profile=PROFILE)
    return [hit.id for hit in page.results]


# Reading the request


def test_it_reads_an_empty_body_with_hubspots_defaults() -> None:
    assert parse_search_request("{}") == SearchRequest(limit=10, after=0)


def test_it_reads_every_part_of_a_request() -> None:
    raw = body(
        filterGroups=[
            {
                "filters": [
                    {"propertyName": "email", "operator": "EQ", "value": "x@y.com"},
                    {"propertyName": "amount", "operator": "BETWEEN", "value": 10}
                    | {"highValue": "20"},
                ]
            },
            {"filters": [{"propertyName": "stage", "operator": "IN", "values": ["a", True]}]},
        ],
        sorts=["-createdate", "amount", {"propertyName": "email", "direction": "DESCENDING"}],
        query="free text",
        properties=["email", "firstname"],
        limit=100,
        after="200",
        unknownKey={"ignored": True},
    )

    assert parse_search_request(raw.encode()) == SearchRequest(
        filter_groups=(
            (
                Filter("email", Operator.EQ, "x@y.com"),
                Filter("amount", Operator.BETWEEN, "10", "20"),
            ),
            (Filter("stage", Operator.IN, values=("a", "true")),),
        ),
        sorts=(Sort("createdate", True), Sort("amount"), Sort("email", True)),
        query="free text",
        properties=("email", "firstname"),
        limit=100,
        after=200,
    )


def test_it_reads_a_numeric_after_and_a_sort_without_direction() -> None:
    request = parse_search_request(body(after=30, sorts=[{"propertyName": "amount"}]))

    assert (request.after, request.sorts) == (30, (Sort("amount"),))


def test_it_places_a_between_without_high_value_where_hubspot_does() -> None:
    # The body of a real 400 from HubSpot: its message named column 102, the filter's end.
    raw = (
        '{"filterGroups":[{"filters":[{"value":"1638264673941","propertyName":"closedate",'
        '"operator":"BETWEEN"}]}]}'
    )

    assert refusal(raw) == (
        f"Invalid input JSON on line 1, column 102: Cannot construct instance of `{FILTER_CLASS}`"
        ", problem: operator BETWEEN requires a highValue"
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            one_filter("", "EQ", value="x"),
            "Invalid input JSON on line 1, column 83: Cannot build Filter, some of required "
            "attributes are not set [propertyName]",
        ),
        (
            body(filterGroups=[{"filters": [{"value": "x"}]}]),
            "Invalid input JSON on line 1, column 45: Cannot build Filter, some of required "
            "attributes are not set [propertyName, operator]",
        ),
        (
            one_filter("email", "LIKE", value="x"),
            "Invalid input JSON on line 1, column 70: Cannot deserialize value of type "
            f'`{FILTER_CLASS}Operator` from String "LIKE": not one of the values accepted for '
            "Enum class: [EQ, NEQ, LT, LTE, GT, GTE, BETWEEN, IN, NOT_IN, HAS_PROPERTY, "
            "NOT_HAS_PROPERTY, CONTAINS_TOKEN, NOT_CONTAINS_TOKEN]",
        ),
        (
            one_filter("email", "EQ"),
            f"Invalid input JSON on line 1, column 74: Cannot construct instance of "
            f"`{FILTER_CLASS}`, problem: operator EQ requires a value",
        ),
        (
            one_filter("email", "NOT_IN", values=[]),
            f"Invalid input JSON on line 1, column 92: Cannot construct instance of "
            f"`{FILTER_CLASS}`, problem: operator NOT_IN requires values",
        ),
        (
            one_filter("phone", "HAS_PROPERTY", value="x"),
            f"Invalid input JSON on line 1, column 98: Cannot construct instance of "
            f"`{FILTER_CLASS}`, problem: operator HAS_PROPERTY does not take a value",
        ),
        (
            one_filter("phone", "CONTAINS_TOKEN", value="  "),
            "Invalid input JSON on line 1, column 101: value must be non-empty and non-blank, if "
            "specified {propertyName: 'phone'}",
        ),
        (
            one_filter("amount", "BETWEEN", value="1", highValue=""),
            "Invalid input JSON on line 1, column 111: value must be non-empty and non-blank, "
            "if specified {propertyName: 'amount'}",
        ),
        (
            one_filter("id", "IN", value=["1", "2"]),
            "Invalid input JSON on line 1, column 82: Cannot deserialize value of type "
            "`java.lang.String` from Array value (token `JsonToken.START_ARRAY`)",
        ),
        (
            body(filterGroups=[{"filters": {"propertyName": "a"}}]),
            "Invalid input JSON on line 1, column 31: Cannot deserialize value of type "
            "`java.util.List` from Object value (token `JsonToken.START_OBJECT`)",
        ),
        (
            body(filterGroups=["x"]),
            "Invalid input JSON on line 1, column 19: Cannot deserialize value of type "
            "`com.hubspot.inbounddb.publicobject.core.v3.search.FilterGroup` from String value "
            '("x")',
        ),
        (
            body(sorts=[["createdate"]]),
            "Invalid input JSON on line 1, column 12: Cannot deserialize value of type "
            "`java.lang.String` from Array value (token `JsonToken.START_ARRAY`)",
        ),
        (
            body(sorts=[{"direction": "DESCENDING"}]),
            "Invalid input JSON on line 1, column 38: Cannot build Sort, some of required "
            "attributes are not set [propertyName]",
        ),
        (
            body(sorts=[{"propertyName": "a", "direction": "DOWN"}]),
            "Invalid input JSON on line 1, column 47: Cannot deserialize value of type "
            '`SortDirection` from String "DOWN": not one of the values accepted for Enum class: '
            "[ASCENDING, DESCENDING]",
        ),
        (
            body(limit="ten"),
            "Invalid input JSON on line 1, column 11: Cannot deserialize value of type `int` "
            'from String value ("ten")',
        ),
        (
            body(limit=1.5),
            "Invalid input JSON on line 1, column 11: Cannot deserialize value of type `int` "
            "from Number value (1.5)",
        ),
        (
            "[]",
            "Invalid input JSON on line 1, column 1: Cannot deserialize value of type "
            "`com.hubspot.inbounddb.publicobject.core.v3.search.PublicObjectSearchRequest` from "
            "Array value (token `JsonToken.START_ARRAY`)",
        ),
        ('{"limit": }', "Invalid input JSON on line 1, column 11: Expecting value"),
        (b'{"query": "\xff"}', "Invalid input JSON: the body is not UTF-8"),
        (
            body(after="abc"),
            'Invalid input JSON on line 1, column 11: Cannot parse "after" as an offset: "abc"',
        ),
        (body(limit=201), "limit must be between 0 and 200, got 201."),
        (body(limit=-1), "limit must be between 0 and 200, got -1."),
    ],
)
def test_it_refuses_bad_bodies_as_hubspot_does(raw: str | bytes, message: str) -> None:
    assert refusal(raw) == message


def test_it_places_errors_in_a_pretty_printed_body() -> None:
    raw = json.dumps({"filterGroups": [{"filters": [{"propertyName": "a"}]}]}, indent=2)

    assert refusal(raw).startswith("Invalid input JSON on line 7, column 9: Cannot build Filter")


@pytest.mark.parametrize(
    ("after", "limit", "allowed"),
    [(9990, 10, True), (9800, 200, True), (9991, 10, False), (10_000, 1, False)],
)
def test_it_refuses_to_page_beyond_ten_thousand_results(
    after: int, limit: int, allowed: bool
) -> None:
    raw = body(after=str(after), limit=limit)

    if allowed:
        assert parse_search_request(raw).after == after
    else:
        assert refusal(raw) == (
            f"Search can page through at most 10000 results: after ({after}) + limit ({limit}) "
            "goes beyond that."
        )


def groups(*sizes: int) -> str:
    item = {"propertyName": "a", "operator": "HAS_PROPERTY"}
    return body(filterGroups=[{"filters": [item] * size} for size in sizes])


def test_it_enforces_the_filter_limits_of_the_current_guide() -> None:
    assert len(parse_search_request(groups(6, 6, 6)).filter_groups) == 3
    assert refusal(groups(1, 1, 1, 1, 1, 1)) == "Too many filter groups: 6. The maximum is 5."
    assert refusal(groups(7)) == (
        "Too many filters in a filter group: 7. The maximum is 6 filters per group."
    )
    assert refusal(groups(6, 6, 6, 1)) == (
        "Too many filters: 19. The maximum is 18 across all filter groups."
    )


def test_it_takes_other_filter_limits_when_configured() -> None:
    announced = SearchLimits(max_filter_groups=5, max_filters_per_group=10, max_filters=25)

    assert parse_search_request(groups(10, 10, 5), limits=announced)
    assert refusal(groups(10, 10, 6), limits=announced) == (
        "Too many filters: 26. The maximum is 25 across all filter groups."
    )


def test_it_limits_the_body_and_the_query_length() -> None:
    long_query = body(query="x" * 2990)
    assert refusal(long_query) == "The request body is 3003 characters long; the maximum is 3000."

    roomy = SearchLimits(max_body_chars=10_000)
    assert parse_search_request(body(query="x" * 3000), limits=roomy).query == "x" * 3000
    assert refusal(body(query="x" * 3001), limits=roomy) == (
        "The query is 3001 characters long; the maximum is 3000."
    )


def test_it_takes_other_page_sizes_when_configured() -> None:
    limits = SearchLimits(default_page_size=50, max_page_size=100)

    assert parse_search_request("{}", limits=limits).limit == 50
    assert refusal(body(limit=101), limits=limits) == "limit must be between 0 and 100, got 101."


def test_it_makes_a_correlation_id_when_none_is_given() -> None:
    with pytest.raises(HubSpotSearchError) as caught:
        parse_search_request(body(limit=500))

    first = caught.value.to_response()["correlationId"]
    assert len(first) == 36
    assert caught.value.to_response()["correlationId"] != first


# Filtering


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (one_filter("firstname", "EQ", value="ADA"), ["1"]),
        (one_filter("amount", "EQ", value="100.0"), ["1"]),
        (one_filter("firstname", "NEQ", value="ada"), ["2", "3", "4", "10"]),
        (one_filter("amount", "LT", value="100"), ["2"]),
        (one_filter("amount", "LTE", value="100"), ["1", "2"]),
        # "abc" is not a number, so it compares as text: after "99", "25.5" and "a".
        (one_filter("amount", "GT", value="99"), ["1", "3", "10"]),
        (one_filter("amount", "GTE", value="25.5"), ["1", "2", "3", "10"]),
        (one_filter("amount", "GT", value="a"), ["10"]),
        (one_filter("amount", "BETWEEN", value="25.5", highValue="100"), ["1", "2"]),
        (one_filter("closedate", "LT", value="2024-01-01T00:00:00.001Z"), ["4"]),
        (one_filter("closedate", "GTE", value="1704153600000"), ["10"]),
        (
            one_filter("closedate", "BETWEEN", value="2024-01-01", highValue="2024-01-02"),
            ["4", "10"],
        ),
        (one_filter("stage", "IN", values=["won", "lost"]), ["1", "2"]),
        (one_filter("stage", "IN", values=["Lost"]), []),
        (one_filter("stage", "NOT_IN", values=["won"]), ["2", "3", "4", "10"]),
        (one_filter("email", "HAS_PROPERTY"), ["1", "2"]),
        (one_filter("email", "NOT_HAS_PROPERTY"), ["3", "4", "10"]),
        (one_filter("email", "CONTAINS_TOKEN", value="*@hubspot.com"), ["1"]),
        (one_filter("email", "CONTAINS_TOKEN", value="BOB@*"), ["2"]),
        (one_filter("email", "CONTAINS_TOKEN", value="hubspot"), []),
        (one_filter("firstname", "CONTAINS_TOKEN", value="young"), ["3"]),
        (one_filter("firstname", "CONTAINS_TOKEN", value="y* cy"), ["3"]),
        (one_filter("lastname", "NOT_CONTAINS_TOKEN", value="spot"), ["1", "2", "3", "10"]),
        (one_filter("hs_object_id", "EQ", value="10"), ["10"]),
    ],
)
def test_it_filters_as_hubspot_does(raw: str, expected: list[str]) -> None:
    assert found(raw) == expected


def test_it_ands_the_filters_of_a_group_and_ors_the_groups() -> None:
    email = {"propertyName": "email", "operator": "HAS_PROPERTY"}
    cheap = {"propertyName": "amount", "operator": "LT", "value": "50"}
    named = {"propertyName": "firstname", "operator": "EQ", "value": "di"}
    raw = body(filterGroups=[{"filters": [email, cheap]}, {"filters": [named]}])

    assert found(raw) == ["2", "10"]


def test_it_searches_the_default_searchable_properties_for_every_word() -> None:
    assert found(body(query="HUBSPOT")) == ["1"]
    assert found(body(query="cy young")) == ["3"]
    assert found(body(query="ada example")) == []
    costly = {"propertyName": "amount", "operator": "GT", "value": "50"}
    assert found(body(query="example", filterGroups=[{"filters": [costly]}])) == []


# Sorting and paging


def test_it_sorts_by_id_when_no_sort_is_given() -> None:
    assert found("{}") == ["1", "2", "3", "4", "10"]


def test_it_sorts_numbers_as_numbers_and_puts_missing_values_last() -> None:
    assert found(body(sorts=["amount"])) == ["2", "1", "3", "10", "4"]
    assert found(body(sorts=["-amount"])) == ["10", "3", "1", "2", "4"]
    assert found(body(sorts=[{"propertyName": "stage", "direction": "DESCENDING"}])) == [
        "1",
        "2",
        "3",
        "4",
        "10",
    ]
    assert found(body(sorts=["closedate", "-firstname"])) == ["4", "10", "3", "2", "1"]


def test_it_pages_with_a_stringified_offset() -> None:
    def page(after: str) -> SearchPage:
        raw = body(limit=2, after=after, sorts=["firstname"])
        return search(parse_search_request(raw), RECORDS, profile=PROFILE)

    first, second, last = page("0"), page("2"), page("4")

    assert [hit.id for hit in first.results] == ["1", "2"]
    assert first.to_response()["paging"] == {"next": {"after": "2"}}
    assert [hit.id for hit in second.results] == ["3", "10"]
    assert second.next_after == "4"
    assert [hit.id for hit in last.results] == ["4"]
    assert "paging" not in last.to_response()
    assert first.total == second.total == last.total == 5


def test_it_leaves_out_paging_when_the_page_ends_exactly_at_the_last_match() -> None:
    page = search(parse_search_request(body(limit=5)), RECORDS, profile=PROFILE)

    assert page.next_after is None
    assert page.total == 5


def test_it_counts_without_results_when_the_limit_is_zero() -> None:
    page = search(parse_search_request(body(limit=0)), RECORDS, profile=PROFILE)

    assert page.to_response() == {"total": 5, "results": []}


# Properties and the response


def test_it_returns_the_default_properties_of_the_object_type() -> None:
    page = search(
        parse_search_request("{}"), [("7", {"email": "a@b.c"})], profile=PROFILES["contacts"]
    )

    assert page.results == (
        SearchHit(
            "7",
            {
                "createdate": None,
                "email": "a@b.c",
                "firstname": None,
                "hs_object_id": "7",
                "lastmodifieddate": None,
                "lastname": None,
            },
        ),
    )


def test_it_adds_the_always_returned_properties_to_the_requested_ones() -> None:
    raw = body(properties=["dealname", "amount"])
    page = search(parse_search_request(raw), [("9", {"amount": "5"})], profile=PROFILES["deals"])

    assert page.results[0].properties == {
        "dealname": None,
        "amount": "5",
        "createdate": None,
        "hs_object_id": "9",
        "hs_lastmodifieddate": None,
    }


def test_it_ignores_requested_properties_that_do_not_exist() -> None:
    profile = SearchProfile(
        default_properties=("name",),
        always_properties=("hs_object_id",),
        searchable_properties=("name",),
        known_properties=frozenset({"name", "hs_object_id"}),
    )
    raw = body(properties=["name", "nope"])

    page = search(parse_search_request(raw), [("5", {"name": "Acme"})], profile=profile)

    assert page.results[0].properties == {"name": "Acme", "hs_object_id": "5"}


def test_it_renders_results_with_the_callers_renderer() -> None:
    page = SearchPage(total=3, results=(SearchHit("1", {"a": "x"}),), next_after="1")

    def render(hit: SearchHit) -> dict[str, Any]:
        return {"id": hit.id, "properties": hit.properties, "archived": False}

    assert page.to_response(render) == {
        "total": 3,
        "results": [{"id": "1", "properties": {"a": "x"}, "archived": False}],
        "paging": {"next": {"after": "1"}},
    }


# Agreement with a plain Python filter

VALUES = st.none() | st.sampled_from(["", "a", "B", "b", "1", "2", "10", "2.0"])
RECORD_SETS = st.lists(st.fixed_dictionaries({"p": VALUES, "q": VALUES}), max_size=15)
FILTERS = st.builds(
    Filter,
    st.sampled_from(["p", "q"]),
    st.sampled_from([Operator.EQ, Operator.NEQ, Operator.GT, Operator.LTE])
    | st.sampled_from([Operator.HAS_PROPERTY, Operator.NOT_HAS_PROPERTY]),
    st.sampled_from(["a", "b", "2", "10"]),
)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _order(left: str, right: str) -> int:
    numbers = _number(left), _number(right)
    if numbers[0] is not None and numbers[1] is not None:
        return (numbers[0] > numbers[1]) - (numbers[0] < numbers[1])
    return (left.lower() > right.lower()) - (left.lower() < right.lower())


def _holds(item: Filter, properties: dict[str, str | None]) -> bool:
    value = properties[item.property_name] or None
    if item.operator is Operator.HAS_PROPERTY:
        return value is not None
    if item.operator is Operator.NOT_HAS_PROPERTY:
        return value is None
    if value is None:
        return item.operator is Operator.NEQ
    order = _order(value, item.value or "")
    return {
        Operator.EQ: order == 0,
        Operator.NEQ: order != 0,
        Operator.GT: order > 0,
        Operator.LTE: order <= 0,
    }[item.operator]


@given(RECORD_SETS, st.lists(st.lists(FILTERS, min_size=1, max_size=3), max_size=3))
@settings(max_examples=300)
def test_the_evaluator_agrees_with_a_plain_python_filter(
    properties: list[dict[str, str | None]], filter_groups: list[list[Filter]]
) -> None:
    records = [(str(number), values) for number, values in enumerate(properties)]
    request = SearchRequest(filter_groups=tuple(tuple(group) for group in filter_groups), limit=200)

    expected = [
        record_id
        for record_id, values in records
        if not filter_groups or any(all(_holds(f, values) for f in g) for g in filter_groups)
    ]

    assert [hit.id for hit in search(request, records, profile=PROFILE).results] == expected


@given(RECORD_SETS, st.integers(1, 4), st.sampled_from([Sort("p"), Sort("q", descending=True)]))
def test_paging_through_every_page_yields_each_match_once_in_order(
    properties: list[dict[str, str | None]], limit: int, sort: Sort
) -> None:
    records = [(str(number), values) for number, values in enumerate(properties)]
    everything = search(SearchRequest(sorts=(sort,), limit=200), records, profile=PROFILE)

    seen: list[str] = []
    after: str | None = "0"
    while after is not None:
        request = SearchRequest(sorts=(sort,), limit=limit, after=int(after))
        page = search(request, records, profile=PROFILE)
        seen.extend(hit.id for hit in page.results)
        after = page.next_after

    assert seen == [hit.id for hit in everything.results]
