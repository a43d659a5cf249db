"""The fast paths of sandbox search and reads answer exactly what the straightforward ones did.

Each reference below is the evaluation the sandbox used before its fast paths (a
comparator sort, per-row filter interpretation, a database prefilter, a fresh read of every
record), kept here to compare against: the engines over random records and requests, and
the record caches against the database after every kind of write.
"""

import json
import random
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cmp_to_key
from typing import Any

import pytest
from django.db.models import QuerySet
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.sandbox import hubspot_search, property_cache, seed, store
from integrations.sandbox.hubspot_search import (
    Filter,
    Operator,
    SearchPage,
    SearchProfile,
    SearchRequest,
    Sort,
)
from integrations.sandbox.models import Access, SandboxAccount, SandboxRecord, SandboxUser
from integrations.sandbox.record_cache import RecordCache
from integrations.sandbox.salesforce import rows as salesforce_rows
from integrations.sandbox.salesforce.org import Org
from integrations.sandbox.soql import evaluate
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
    Query,
)
from integrations.sandbox.soql_match import holds, kind_of, like_pattern, normalize
from integrations.sandbox.soql_schema import BoundQuery, Catalog, ObjectSchema

# --- HubSpot search: the engine before its fast paths -------------------------------------

_MATCHES_MISSING = frozenset({Operator.NEQ, Operator.NOT_IN, Operator.NOT_CONTAINS_TOKEN})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _number(text: str) -> Decimal | None:
    try:
        number = Decimal(text)
    except InvalidOperation:
        number = None
    if number is not None:
        return number if number.is_finite() else None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return Decimal(round((moment - _EPOCH).total_seconds() * 1000))


def _compare(left: str, right: str) -> int:
    left_number, right_number = _number(left), _number(right)
    if left_number is not None and right_number is not None:
        a: Any
        b: Any
        a, b = left_number, right_number
    else:
        a, b = left.casefold(), right.casefold()
    return (a > b) - (a < b)


def _contains_tokens(value: str, wanted: str) -> bool:
    tokens = value.casefold().split()
    patterns = [
        re.compile(".*".join(re.escape(part) for part in term.casefold().split("*")))
        for term in wanted.split()
    ]
    return all(any(p.fullmatch(token) for token in tokens) for p in patterns)


def _matches(item: Filter, properties: Mapping[str, str | None]) -> bool:
    value = properties.get(item.property_name) or None
    operator = item.operator
    if operator is Operator.HAS_PROPERTY:
        return value is not None
    if operator is Operator.NOT_HAS_PROPERTY:
        return value is None
    if value is None:
        return operator in _MATCHES_MISSING
    if operator in (Operator.IN, Operator.NOT_IN):
        return (value.lower() in item.values) == (operator is Operator.IN)
    if operator in (Operator.CONTAINS_TOKEN, Operator.NOT_CONTAINS_TOKEN):
        found = _contains_tokens(value, item.value or "")
        return found == (operator is Operator.CONTAINS_TOKEN)
    order = _compare(value, item.value or "")
    if operator is Operator.BETWEEN:
        return order >= 0 and _compare(value, item.high_value or "") <= 0
    return {
        Operator.EQ: order == 0,
        Operator.NEQ: order != 0,
        Operator.LT: order < 0,
        Operator.LTE: order <= 0,
        Operator.GT: order > 0,
        Operator.GTE: order >= 0,
    }[operator]


def _id_order(left: str, right: str) -> int:
    key_left = (0, int(left), "") if left.isdigit() else (1, 0, left)
    key_right = (0, int(right), "") if right.isdigit() else (1, 0, right)
    return (key_left > key_right) - (key_left < key_right)


def reference_search(
    request: SearchRequest,
    records: Iterable[tuple[str, Mapping[str, str | None]]],
    profile: SearchProfile,
) -> SearchPage:
    candidates = [(rid, {"hs_object_id": rid, **props}) for rid, props in records]

    def query_matches(properties: Mapping[str, str | None]) -> bool:
        haystacks = [(properties.get(n) or "").casefold() for n in profile.searchable_properties]
        words = (request.query or "").casefold().split()
        return all(any(word in text for text in haystacks) for word in words)

    matching = [
        (rid, props)
        for rid, props in candidates
        if (
            not request.filter_groups
            or any(all(_matches(f, props) for f in group) for group in request.filter_groups)
        )
        and (not request.query or query_matches(props))
    ]

    def order(left: tuple[str, Mapping], right: tuple[str, Mapping]) -> int:
        for sort in request.sorts:
            a = left[1].get(sort.property_name) or None
            b = right[1].get(sort.property_name) or None
            if a is None or b is None:
                result = (a is None) - (b is None)
                if result:
                    return result
                continue
            result = _compare(a, b)
            if result:
                return -result if sort.descending else result
        return _id_order(left[0], right[0])

    ordered = sorted(matching, key=cmp_to_key(order))
    window = ordered[request.after : request.after + request.limit]
    requested = request.properties or profile.default_properties
    names = list(dict.fromkeys((*requested, *profile.always_properties)))
    if profile.known_properties is not None:
        names = [name for name in names if name in profile.known_properties]
    end = request.after + request.limit
    return SearchPage(
        total=len(ordered),
        results=tuple(
            hubspot_search.SearchHit(rid, {name: props.get(name) for name in names})
            for rid, props in window
        ),
        next_after=str(end) if request.limit > 0 and end < len(ordered) else None,
    )


PROFILE = SearchProfile(
    default_properties=("a", "b"),
    always_properties=("hs_object_id",),
    searchable_properties=("a", "c"),
    known_properties=frozenset({"a", "b", "c", "hs_object_id"}),
)
# Numbers, dates, words, mixtures and blanks: what makes HubSpot's comparison tricky.
TEXTS = st.sampled_from(
    [
        *("1", "10", "9", "2.50", "2.5", "-3", "1e3", "1f", "0", "abc", "ABC", "Abc d"),
        *("hub spot", "2024-01-02", "2024-01-02T00:00:00Z", "1704153600000", "", " "),
        *("NaN", "Infinity", "straße", "STRASSE", "x*y"),
    ]
)
NAMES = st.sampled_from(["a", "b", "c", "hs_object_id"])


@st.composite
def hubspot_records(draw: st.DrawFn) -> list[tuple[str, dict[str, str | None]]]:
    ids = draw(
        st.lists(
            st.one_of(st.integers(1, 60).map(str), st.sampled_from(["x1", "0012", "12"])),
            unique=True,
            max_size=25,
        )
    )
    values = st.dictionaries(NAMES, st.one_of(st.none(), TEXTS), max_size=4)
    return [(record_id, draw(values)) for record_id in ids]


@st.composite
def hubspot_filters(draw: st.DrawFn) -> Filter:
    operator = draw(st.sampled_from(list(Operator)))
    value = high = None
    values: tuple[str, ...] = ()
    if operator in (Operator.IN, Operator.NOT_IN):
        values = tuple(draw(st.lists(TEXTS, min_size=1, max_size=3)))
    elif operator not in (Operator.HAS_PROPERTY, Operator.NOT_HAS_PROPERTY):
        value = draw(TEXTS)
        if operator is Operator.BETWEEN:
            high = draw(TEXTS)
    return Filter(draw(NAMES), operator, value, high, values)


hubspot_requests = st.builds(
    SearchRequest,
    filter_groups=st.lists(st.lists(hubspot_filters(), max_size=3).map(tuple), max_size=3).map(
        tuple
    ),
    sorts=st.lists(st.builds(Sort, NAMES, st.booleans()), max_size=2).map(tuple),
    query=st.one_of(st.none(), st.sampled_from(["", "ab", "hub SP", "1 straße"])),
    properties=st.lists(st.sampled_from(["a", "b", "c", "zz"]), max_size=3).map(tuple),
    limit=st.integers(0, 8),
    after=st.integers(0, 6),
)


@settings(max_examples=400, deadline=None)
@given(request=hubspot_requests, records=hubspot_records())
def test_hubspot_search_answers_what_the_reference_answers(
    request: SearchRequest, records: list[tuple[str, dict[str, str | None]]]
) -> None:
    assert hubspot_search.search(request, records, profile=PROFILE) == reference_search(
        request, records, PROFILE
    )


@settings(max_examples=200, deadline=None)
@given(request=hubspot_requests, records=hubspot_records())
def test_hubspot_search_may_search_fewer_values_and_answer_the_full_ones(
    request: SearchRequest, records: list[tuple[str, dict[str, str | None]]]
) -> None:
    # "c" stands for a computed property: searched only when a filter, sort or query
    # reads it, and answered from the full values otherwise.
    full = dict(records)
    if "c" in hubspot_search.referenced_properties(request, PROFILE):
        searched = records
    else:
        searched = [(rid, {k: v for k, v in props.items() if k != "c"}) for rid, props in records]

    page = hubspot_search.search(request, searched, profile=PROFILE, expand=full.__getitem__)

    assert page == reference_search(request, records, PROFILE)


# --- SOQL: the evaluator before its fast paths ---------------------------------------------


def _reference_matches(
    bound: BoundQuery, value_of: Callable, row: Mapping, condition: Condition
) -> bool:
    if isinstance(condition, And):
        return all(_reference_matches(bound, value_of, row, c) for c in condition.operands)
    if isinstance(condition, Or):
        return any(_reference_matches(bound, value_of, row, c) for c in condition.operands)
    if isinstance(condition, Not):
        return not _reference_matches(bound, value_of, row, condition.operand)
    value = value_of(row, condition.field)
    field_type = bound.types[condition.field.path]

    def pair(literal: Any) -> tuple[Any, Any]:
        kind = kind_of(field_type, literal)
        return normalize(value, kind), normalize(literal, kind)

    if isinstance(condition, Like):
        pattern = like_pattern(condition.pattern)
        return isinstance(value, str) and pattern.fullmatch(value.casefold()) is not None
    if isinstance(condition, Comparison):
        return holds(condition.op, *pair(condition.value))
    found = any(left == right for left, right in map(pair, condition.values))
    return found != condition.negated


def _reference_ordered(bound: BoundQuery, value_of: Callable, rows: list[Mapping]) -> list:
    items = bound.query.order_by
    if not items:
        return rows

    def key(row: Mapping, item: OrderItem) -> Any:
        value = value_of(row, item.field)
        return normalize(value, kind_of(bound.types[item.field.path], value))

    keyed = [([key(row, item) for item in items], row) for row in rows]

    def compare(a: tuple, b: tuple) -> int:
        for item, left, right in zip(items, a[0], b[0], strict=True):
            if left == right:
                continue
            if left is None or right is None:
                return (1 if left is None else -1) * (1 if item.nulls_last else -1)
            try:
                order = -1 if left < right else 1
            except TypeError:
                order = -1 if str(left) < str(right) else 1
            return -order if item.descending else order
        return 0

    return [row for _, row in sorted(keyed, key=cmp_to_key(compare))]


DEAL = ObjectSchema(
    "Deal",
    {
        "Id": "id",
        "Name": "string",
        "Amount": "currency",
        "Flag": "boolean",
        "Close": "date",
        "Stamp": "datetime",
        "AccountId": "reference",
        "Misc": "anyType",
    },
    {"Account": "Acct"},
)
ACCT = ObjectSchema("Acct", {"Id": "id", "Name": "string", "Size": "double"})
CATALOG = Catalog([DEAL, ACCT])
ACCOUNT_IDS = ["001000000000001AAA", "001000000000002AAA", "001000000000003AAA"]
PARENTS = {
    ACCOUNT_IDS[0]: {"Id": ACCOUNT_IDS[0], "Name": "Acme", "Size": 10},
    ACCOUNT_IDS[1]: {"Id": ACCOUNT_IDS[1], "Name": "acme", "Size": None},
}
SOQL_VALUES: dict[str, st.SearchStrategy] = {
    "Name": st.sampled_from([None, "acme", "Acme", "ACME corp", "straße", "STRASSE", "", "5"]),
    "Amount": st.sampled_from([None, 0, 5, 5.0, 7.25, -1, "5", "x", "NaN", True, 10**20]),
    "Flag": st.sampled_from([None, True, False, "true", "TRUE", "no", 1, 0]),
    "Close": st.sampled_from([None, "2024-01-02", "2023-12-31", "bad", "2024-01-02T10:00:00Z"]),
    "Stamp": st.sampled_from(
        [None, "2024-01-02T10:00:00Z", "2024-01-02T11:00:00+01:00", "2024-01-02", "nope"]
    ),
    "AccountId": st.sampled_from([None, *ACCOUNT_IDS, "001000000000001aaa", "bad"]),
    "Misc": st.sampled_from([None, 1, "1", "b", True, 2.5, "2024-01-02", Decimal("3")]),
}
SOQL_LITERALS: dict[str, st.SearchStrategy] = {
    "Name": st.sampled_from([None, "acme", "ACME CORP", "strasse", "5", Decimal("5")]),
    "Amount": st.sampled_from([None, Decimal("5"), Decimal("7.25"), Decimal("0"), "5"]),
    "Flag": st.sampled_from([None, True, False]),
    "Close": st.sampled_from([None, date(2024, 1, 2), date(2023, 12, 31)]),
    "Stamp": st.sampled_from([None, datetime(2024, 1, 2, 10, tzinfo=UTC), date(2024, 1, 2)]),
    "AccountId": st.sampled_from([None, ACCOUNT_IDS[0], ACCOUNT_IDS[0][:15], "001000000000002"]),
    "Misc": st.sampled_from([None, Decimal("1"), "1", "B", True, date(2024, 1, 2)]),
}
FIELDS = sorted(SOQL_VALUES)
PARENT_REFS = [("Account", "Name"), ("Account", "Size")]


@st.composite
def soql_conditions(draw: st.DrawFn, depth: int = 2) -> Condition:
    if depth and draw(st.booleans()):
        kind = draw(st.sampled_from(["and", "or", "not"]))
        if kind == "not":
            return Not(draw(soql_conditions(depth - 1)))
        operands = tuple(draw(st.lists(soql_conditions(depth - 1), min_size=2, max_size=3)))
        return And(operands) if kind == "and" else Or(operands)
    if draw(st.integers(0, 6)) == 0:
        path = draw(st.sampled_from(PARENT_REFS))
        literal = draw(st.sampled_from([None, "acme", Decimal("10")]))
        return Comparison(FieldRef(path), draw(st.sampled_from(list(Op))), literal)
    name = draw(st.sampled_from(FIELDS))
    ref = FieldRef((name,))
    form = draw(st.sampled_from(["compare", "in", "like"]))
    if form == "like":
        return Like(ref, draw(st.sampled_from(["acme%", "%CORP", "_5", "stra%", "%"])))
    if form == "in":
        literals = tuple(draw(st.lists(SOQL_LITERALS[name], min_size=1, max_size=4)))
        return InList(ref, literals, draw(st.booleans()))
    return Comparison(ref, draw(st.sampled_from(list(Op))), draw(SOQL_LITERALS[name]))


soql_order = st.lists(
    st.builds(
        OrderItem,
        st.sampled_from([*FIELDS, "Id"]).map(lambda name: FieldRef((name,))),
        st.booleans(),
        st.sampled_from([None, True, False]),
    ),
    max_size=3,
)


@st.composite
def soql_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(0, 20))
    return [
        {"Id": f"006{index:012d}AAA", **{name: draw(SOQL_VALUES[name]) for name in FIELDS}}
        for index in range(count)
    ]


def _bound(where: Condition | None, order_by: list[OrderItem], limit: int | None) -> BoundQuery:
    query = Query(
        "Deal",
        fields=(FieldRef(("Id",)), FieldRef(("Name",)), FieldRef(("Account", "Name"))),
        where=where,
        order_by=tuple(order_by),
        limit=limit,
    )
    refs = query.field_refs()
    types = {ref.path: (ACCT if ref.relationships else DEAL).fields[ref.name] for ref in refs}
    return BoundQuery(query, DEAL, CATALOG, types)


def _parent(object_name: str, row: Mapping, relationship: str) -> Mapping | None:
    return PARENTS.get(row.get("AccountId") or "")


def _reference_value(row: Mapping, ref: FieldRef) -> Any:
    current: Mapping | None = row
    for relationship in ref.relationships:
        current = _parent("Deal", current, relationship) if current is not None else None
    return None if current is None else current.get(ref.name)


@settings(max_examples=400, deadline=None)
@given(
    where=st.one_of(st.none(), soql_conditions()),
    order_by=soql_order,
    limit=st.one_of(st.none(), st.integers(0, 10)),
    rows=soql_rows(),
)
def test_soql_evaluates_what_the_reference_evaluates(
    where: Condition | None, order_by: list[OrderItem], limit: int | None, rows: list[dict]
) -> None:
    bound = _bound(where, order_by, limit)
    try:
        expected_rows = [
            row
            for row in rows
            if where is None or _reference_matches(bound, _reference_value, row, where)
        ]
        expected_rows = _reference_ordered(bound, _reference_value, expected_rows)
    except InvalidOperation:
        # Comparing a NaN raises in both; the reference is what must hold, not the error.
        with pytest.raises(InvalidOperation):
            evaluate(bound, rows, resolve_parent=_parent)
        return
    result = evaluate(bound, rows, resolve_parent=_parent)
    expected_ids = [row["Id"] for row in expected_rows][:limit]
    assert [record["Id"] for record in result.records] == expected_ids


@pytest.mark.parametrize(
    "literals",
    [
        (Decimal("1"), "B"),
        ("b", Decimal("2.5"), True),
        (date(2024, 1, 2), "1", None),
        (True, False, Decimal("3")),
    ],
)
@pytest.mark.parametrize("negated", [False, True])
def test_soql_in_lists_compare_each_literal_as_its_own_kind(literals: tuple, negated: bool) -> None:
    # A field of unknown type compares with each literal as that literal's kind.
    values = [None, 1, "1", "b", True, False, 2.5, "2024-01-02", Decimal("3"), "x"]
    rows = [{"Id": f"006{index:012d}AAA", "Misc": value} for index, value in enumerate(values)]
    where = InList(FieldRef(("Misc",)), literals, negated)
    bound = _bound(where, [], None)

    result = evaluate(bound, rows, resolve_parent=_parent)

    expected = [
        row["Id"] for row in rows if _reference_matches(bound, _reference_value, row, where)
    ]
    assert [record["Id"] for record in result.records] == expected


# --- The record and property caches against the database ----------------------------------


def _database_rows(account_id: int, object_name: str) -> list[tuple]:
    return list(
        SandboxRecord.objects.filter(account_id=account_id, object_name=object_name)
        .order_by("pk")
        .values_list("pk", "crm_id", "values", "created_at", "updated_at", "deleted_at", "owner")
    )


def _cached_rows(cache: RecordCache, account_id: int, object_name: str) -> list[tuple]:
    records = cache.records(account_id, object_name, include_deleted=True)
    return sorted(
        (r.pk, r.crm_id, r.values, r.created_at, r.updated_at, r.deleted_at, r.owner_id)
        for r in records
    )


Portal = tuple[SandboxAccount, SandboxUser]


@pytest.fixture
def portal(db: None) -> tuple[SandboxAccount, SandboxUser]:
    account = seed.create_account("hubspot", "Speed portal")
    return account, seed.add_user(account, "ops@speed.example")


def test_the_record_cache_answers_the_database_after_every_kind_of_write(portal: Portal) -> None:
    account, user = portal
    cache = RecordCache()
    first = store.create_record(account, "deals", {"dealname": "First", "amount": "1"})
    second = store.create_record(account, "deals", {"dealname": "Second"}, owner=user)

    def check() -> None:
        assert _cached_rows(cache, account.pk, "deals") == _database_rows(account.pk, "deals")
        ids = [first.crm_id, second.crm_id, "404"]
        assert [r.pk for r in cache.by_ids(account.pk, ids)] == sorted(
            SandboxRecord.objects.filter(account=account, crm_id__in=ids).values_list(
                "pk", flat=True
            )
        )
        for record in cache.by_ids(account.pk, ids):
            assert (record.values, record.updated_at) == tuple(
                SandboxRecord.objects.values_list("values", "updated_at").get(pk=record.pk)
            )

    check()
    store.update_record(first, {"amount": "2"})
    check()
    # Moved back in time without a write through the store, as a test or seed may do.
    SandboxRecord.objects.filter(pk=second.pk).update(updated_at=store.now() - timedelta(days=3))
    check()
    # Written with the ORM's bulk update, as another process's write would arrive.
    SandboxRecord.objects.filter(pk=first.pk).update(
        values={"dealname": "Elsewhere"}, updated_at=store.now()
    )
    check()
    SandboxRecord.objects.filter(pk=second.pk).update(owner=None)
    check()
    store.delete_record(second)
    check()
    assert [r.crm_id for r in cache.records(account.pk, "deals")] == [first.crm_id]
    third = store.create_record(account, "deals", {"dealname": "Third"})
    check()
    # Seeded with back-dated history (property changes rewritten after the record's write).
    last_week = store.now() - timedelta(days=7)
    seeded = seed.add_record(
        account, "deal", {"name": "Seeded", "amount": 5}, modified_at={"amount": last_week}
    )
    check()
    SandboxRecord.objects.filter(pk=first.pk).delete()
    check()
    assert [r.crm_id for r in cache.records(account.pk, "deals")] == [
        third.crm_id,
        seeded.crm_id,
    ]


def test_the_record_cache_never_trusts_a_snapshot_read_across_a_write(portal: Portal) -> None:
    account, _ = portal
    cache = RecordCache()
    record = store.create_record(account, "deals", {"dealname": "Racing"})
    original = RecordCache._read

    def write_then_read(queryset: QuerySet) -> list[tuple]:
        # Another process writes between the stamp query and the read of the records.
        SandboxRecord.objects.filter(pk=record.pk).update(updated_at=store.now())
        return original(queryset)

    RecordCache._read = staticmethod(write_then_read)
    try:
        cache.records(account.pk, "deals")
    finally:
        RecordCache._read = staticmethod(original)
    SandboxRecord.objects.filter(pk=record.pk).delete()

    assert cache.records(account.pk, "deals") == ()


def test_the_property_cache_answers_the_database_after_every_kind_of_write(
    portal: Portal,
) -> None:
    account, _ = portal

    def check() -> None:
        cached = property_cache.CACHE.properties(account.pk)
        assert [(p.pk, p.name, p.label) for p in cached] == list(
            account.properties.values_list("pk", "name", "label")
        )

    check()
    custom = seed.add_custom_field(account, "deal", "region", "string", label="Region")
    check()
    custom.label = "Sales region"
    custom.save()
    check()
    custom.delete()
    check()


def test_derived_hubspot_properties_are_all_that_values_works_out(portal: Portal) -> None:
    from integrations.sandbox.hubspot.common import ObjectContext
    from integrations.sandbox.hubspot.search import DERIVED

    account, _ = portal
    stored_pool = {
        "dealstage": ["appointmentscheduled", "closedwon", "closedlost", "nope", ""],
        "pipeline": ["default", ""],
        "email": ["a@b.example", ""],
        "createdate": ["1999-01-01"],
        "amount": ["5"],
    }
    now = store.now()
    for object_name in DERIVED:
        props = account.properties.filter(object_name=object_name)
        ctx = ObjectContext(account, object_name, {prop.name: prop for prop in props})
        for index in range(40):
            stored = {
                name: options[(index + offset) % len(options)]
                for offset, (name, options) in enumerate(stored_pool.items())
                if (index >> offset) & 1
            }
            values = ctx.values("123", stored, now, now)
            changed = {name for name in values if stored.get(name, object()) != values[name]}
            assert changed <= DERIVED[object_name]


# --- HubSpot search and batch read, through the endpoints -----------------------------------


def _hubspot_call(view: Callable, token: str, body: object, **kwargs: str) -> dict:
    from django.test import RequestFactory

    request = RequestFactory().post(
        "/crm/v3/objects/deals/x",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    response = view(request, **kwargs)
    assert response.status_code in (200, 207), response.content
    return json.loads(response.content)


def _reference_hubspot_search(account: SandboxAccount, request: SearchRequest) -> dict:
    """What the search endpoint answered before: every live record read and computed."""
    from dataclasses import replace

    from integrations.sandbox.hubspot.common import ObjectContext
    from integrations.sandbox.hubspot.values import format_datetime

    props = {prop.name: prop for prop in account.properties.filter(object_name="deals")}
    ctx = ObjectContext(account, "deals", props)
    rows = ctx.live()
    if account.search_lag_seconds:
        indexed_until = store.now() - timedelta(seconds=account.search_lag_seconds)
        rows = rows.filter(updated_at__lte=indexed_until)
    times, records = {}, []
    for crm_id, values, created, updated in rows.values_list(
        "crm_id", "values", "created_at", "updated_at"
    ):
        times[crm_id] = (created, updated)
        records.append((crm_id, ctx.values(crm_id, values, created, updated)))
    profile = replace(hubspot_search.PROFILES["deals"], known_properties=frozenset(props))
    page = reference_search(request, records, profile)
    return page.to_response(
        lambda hit: {
            "id": hit.id,
            "properties": hit.properties,
            "createdAt": format_datetime(times[hit.id][0]),
            "updatedAt": format_datetime(times[hit.id][1]),
            "archived": False,
        }
    )


DEAL_VALUES = {
    "dealname": ["Acme renewal", "acme", "Globex", "Straße 5", "", "hub spot"],
    "amount": ["100", "25.5", "1000", "abc", "0", "-3", "1e3"],
    "dealstage": ["appointmentscheduled", "closedwon", "closedlost", "qualifiedtobuy", "odd"],
    "pipeline": ["default", ""],
    "closedate": ["2024-01-02", "2024-01-02T00:00:00Z", "soon", ""],
    "description": ["first call", "Second CALL", ""],
}
DEAL_PROPERTIES = [
    *DEAL_VALUES,
    "createdate",
    "hs_lastmodifieddate",
    "hs_object_id",
    "hs_is_closed",
    "hs_is_closed_won",
    "hs_deal_stage_probability",
]


def _random_search(rng: random.Random, texts: list[str]) -> dict:
    def one_filter() -> dict:
        operator = rng.choice(list(Operator))
        item: dict = {"propertyName": rng.choice(DEAL_PROPERTIES), "operator": operator.value}
        if operator in (Operator.IN, Operator.NOT_IN):
            item["values"] = rng.sample(texts, 2)
        elif operator not in (Operator.HAS_PROPERTY, Operator.NOT_HAS_PROPERTY):
            item["value"] = rng.choice(texts) or "x"
            if operator is Operator.BETWEEN:
                item["highValue"] = rng.choice(texts) or "y"
        return item

    groups = [
        {"filters": [one_filter() for _ in range(rng.randint(1, 2))]}
        for _ in range(rng.randint(0, 2))
    ]
    sorts = [
        {
            "propertyName": rng.choice(DEAL_PROPERTIES),
            "direction": rng.choice(["ASCENDING", "DESCENDING"]),
        }
        for _ in range(rng.randint(0, 2))
    ]
    body: dict = {"filterGroups": groups, "sorts": sorts, "limit": rng.randint(1, 12)}
    body["after"] = str(rng.randint(0, 5))
    body["properties"] = rng.sample(DEAL_PROPERTIES, rng.randint(0, 4))
    if rng.random() < 0.2:
        body["query"] = rng.choice(["acme", "call", "closed", "won"])
    return body


def test_hubspot_search_and_batch_read_answer_what_they_answered_before(
    portal: Portal,
) -> None:
    from integrations.sandbox.hubspot import batch
    from integrations.sandbox.hubspot import search as search_view
    from integrations.sandbox.hubspot.common import ObjectContext

    account, user = portal
    token = seed.issue_token(user).access_token
    account.search_per_second = account.burst_limit = 0
    account.save()
    rng = random.Random(5)
    deals = []
    for _ in range(40):
        values = {
            name: rng.choice(options) for name, options in DEAL_VALUES.items() if rng.random() < 0.8
        }
        values = {name: value for name, value in values.items() if value}
        deals.append(store.create_record(account, "deals", values, owner=user))
    texts = sorted({text for options in DEAL_VALUES.values() for text in options} | {"true"})
    for round_number in range(120):
        if round_number % 15 == 14:
            # Writes between searches: the cache must follow every one of them.
            target = rng.choice(deals)
            store.update_record(target, {"amount": rng.choice(DEAL_VALUES["amount"])})
            store.delete_record(rng.choice(deals))
            account.search_lag_seconds = rng.choice([0, 0, 3600])
            account.save()
        body = _random_search(rng, texts)
        answered = _hubspot_call(search_view.search_objects, token, body, object_type="deals")
        expected = _reference_hubspot_search(
            account, hubspot_search.parse_search_request(json.dumps(body))
        )
        assert answered == expected, body

        ids = [deal.crm_id for deal in rng.sample(deals, 8)] + ["404", "x"]
        wanted = {"properties": rng.sample(DEAL_PROPERTIES, 3), "inputs": [{"id": i} for i in ids]}
        if rng.random() < 0.3:
            wanted["propertiesWithHistory"] = ["amount", "createdate"]
        read = _hubspot_call(batch.batch_read, token, wanted, object_type="deals")
        props = {prop.name: prop for prop in account.properties.filter(object_name="deals")}
        ctx = ObjectContext(account, "deals", props)
        found = {record.crm_id: record for record in ctx.live().filter(crm_id__in=ids)}
        records = [found[i] for i in dict.fromkeys(ids) if i in found]
        assert read["results"] == ctx.render_many(
            records, wanted["properties"], wanted.get("propertiesWithHistory", [])
        )


# --- Salesforce rows: cache, sharing and the database prefilter -----------------------------

# Text whose case folding differs between Python, SQLite and PostgreSQL, JSON that is not
# text, and a custom field, whose "__" Django's key lookups read as a nested key.
TRICKY_TEXT = ["Acme", "acme", "ACME corp", "Straße", "STRASSE", "k", "\u212a", "ǅ", "5", "null"]
TRICKY_JSON = [5, 5.0, True, None, ["a"], {"c": "acme"}]


@pytest.fixture
def org_setup(db: None) -> tuple[SandboxAccount, list[SandboxUser]]:
    account = seed.create_account("salesforce", "Speed org")
    users = [
        seed.add_user(account, "admin@speed.example"),
        seed.add_user(account, "west@speed.example", access=Access.TEAM, team="West"),
        seed.add_user(account, "mate@speed.example", team="West"),
        seed.add_user(account, "solo@speed.example", access=Access.OWNED),
    ]
    seed.add_custom_field(account, "deal", "region", "string")
    return account, users


def _salesforce_data(
    account: SandboxAccount, users: list[SandboxUser], rng: random.Random
) -> list[SandboxRecord]:
    accounts = [
        store.create_record(account, "Account", {"Name": name}, owner=rng.choice(users))
        for name in ("Acme", "Globex", "Straße")
    ]
    deals = []
    for index in range(50):
        values: dict[str, Any] = {
            "Name": rng.choice(TRICKY_TEXT),
            "StageName": rng.choice(["Prospecting", "Closed Won", "closed won", "Odd"]),
            "Amount": rng.choice([100, 2500.5, 0, 7]),
            "AccountId": rng.choice(accounts).crm_id,
            "Region__c": rng.choice(TRICKY_TEXT),
        }
        owner = rng.choice([*users, None])
        deal = store.create_record(account, "Opportunity", values, owner=owner)
        if index % 4 == 0:
            # Stored JSON that is not text (or a nested object), bypassing the store.
            odd = {**values, rng.choice(["Name", "Region__c"]): rng.choice(TRICKY_JSON)}
            SandboxRecord.objects.filter(pk=deal.pk).update(values=odd, updated_at=store.now())
        if index % 7 == 0:
            store.delete_record(deal)
        deals.append(deal)
    for deal in deals[:10]:
        store.create_record(account, "OpportunityContactRole", {"OpportunityId": deal.crm_id})
    return deals


def _reference_row_value(row: salesforce_rows.RecordRow, name: str) -> Any:
    """A RecordRow field as the row computed it before (plain fields were looked up the same
    way as derived ones)."""
    from integrations.sandbox.salesforce.rows import ADDRESS_PARTS, ADDRESSES
    from integrations.sandbox.salesforce.values import format_datetime

    def stamp(moment: Any) -> str:  # Salesforce's system timestamps have whole seconds
        return format_datetime(moment.replace(microsecond=0))

    record, stored, fields = row.record, row.record.values, row._fields
    default_user = stored.get("OwnerId") or row._org.default_user_id
    system = {
        "Id": lambda: record.crm_id,
        "IsDeleted": lambda: record.deleted_at is not None,
        "CreatedDate": lambda: stamp(record.created_at),
        "LastModifiedDate": lambda: stamp(record.updated_at),
        "SystemModstamp": lambda: stamp(record.updated_at),
        "CreatedById": lambda: stored.get("CreatedById") or default_user,
        "LastModifiedById": lambda: stored.get("LastModifiedById") or default_user,
    }.get(name)
    if system is not None:
        return system()
    if name in ADDRESSES:
        parts = {
            k: _reference_row_value(row, ADDRESSES[name] + s) for k, s in ADDRESS_PARTS.items()
        }
        return parts if any(value is not None for value in parts.values()) else None
    if record.object_name == "Contact" and name == "Name":
        names = (stored.get("FirstName"), stored.get("LastName"))
        return " ".join(part for part in names if part) or None
    if record.object_name == "Opportunity":
        derived = row._opportunity(name)
        if derived is not salesforce_rows._MISSING:
            return derived
    return stored.get(name, False if fields[name].type == "boolean" else None)


def _reference_rows(org: Org, bound: BoundQuery, *, include_deleted: bool) -> list:
    from django.db.models import F

    from integrations.sandbox.salesforce import metadata
    from integrations.sandbox.salesforce.pushdown import prefilter
    from integrations.sandbox.salesforce.rows import RecordRow, StoredRecord

    root = bound.root.name
    queryset = SandboxRecord.objects.filter(account=org.account, object_name=root)
    if not include_deleted:
        queryset = queryset.filter(deleted_at__isnull=True)
    narrowing = prefilter(root, bound.query.where, org.all_fields(root))
    if narrowing is not None:
        queryset = queryset.filter(narrowing.q)
    if root in metadata.SHARED_OBJECTS:
        queryset = store.visible_to(org.user, queryset)
    allowed = org.allowed_parents(root)
    ordered = queryset.order_by(F("deleted_at").asc(nulls_first=True), "pk")
    return [
        RecordRow(org, StoredRecord(root, *row), org.all_fields(root))
        for row in ordered.values_list("crm_id", "values", "created_at", "updated_at", "deleted_at")
        if allowed is None or row[1].get("OpportunityId") in allowed
    ]


SOQL_TEMPLATES = [
    "SELECT Id, Name FROM Opportunity WHERE Name = '{text}'",
    "SELECT Id FROM Opportunity WHERE Name IN ('{text}', 'k', 'null', '5') ORDER BY Name",
    "SELECT Id FROM Opportunity WHERE Name LIKE '{text}%' AND Amount > 1",
    "SELECT Id FROM Opportunity WHERE Name LIKE '%{text}' ORDER BY Amount DESC NULLS LAST",
    "SELECT Id FROM Opportunity WHERE Name LIKE '%{text}%'",
    "SELECT Id, Region__c FROM Opportunity WHERE Region__c = '{text}'",
    "SELECT Id FROM Opportunity WHERE StageName = 'closed won' AND Name != '{text}'",
    "SELECT Id FROM Opportunity WHERE AccountId = '{account15}'",
    "SELECT Id, Account.Name FROM Opportunity WHERE AccountId IN ('{account18}')",
    "SELECT Id FROM Opportunity WHERE Id IN ('{deal18}', '{deal15}') OR Name = '{text}'",
    "SELECT Id FROM Opportunity WHERE Id = '{deal18}'",
    "SELECT Id, OpportunityId FROM OpportunityContactRole",
    "SELECT Id, Name FROM Account WHERE Name = '{text}'",
]


def test_salesforce_rows_are_the_rows_the_database_filter_kept(
    org_setup: tuple[SandboxAccount, list[SandboxUser]],
) -> None:
    from integrations.sandbox.salesforce.query import _rows
    from integrations.sandbox.soql_parser import parse
    from integrations.sandbox.soql_schema import validate

    account, users = org_setup
    rng = random.Random(11)
    deals = _salesforce_data(account, users, rng)
    an_account = SandboxRecord.objects.filter(account=account, object_name="Account").first()
    ascii_texts = [text for text in TRICKY_TEXT if text.isascii()] + ["strasse", "K", "str", "e"]
    for round_number in range(80):
        user = users[round_number % len(users)]
        org = Org(account, user, "59.0")
        deal = rng.choice(deals)
        soql = rng.choice(SOQL_TEMPLATES).format(
            text=rng.choice(ascii_texts).replace("'", ""),
            account15=an_account.crm_id[:15],
            account18=an_account.crm_id,
            deal18=deal.crm_id,
            deal15=deal.crm_id[:15],
        )
        bound = validate(parse(soql), org.catalog())
        include_deleted = round_number % 3 == 0
        fresh = _rows(org, bound, include_deleted=include_deleted)
        reference = _reference_rows(org, bound, include_deleted=include_deleted)
        assert [row["Id"] for row in fresh] == [row["Id"] for row in reference], soql
        for row in fresh[:5]:
            assert {name: row.get(name) for name in row} == {
                name: _reference_row_value(row, name) for name in row
            }
        args = {"resolve_parent": org.resolve_parent, "attributes": org.attributes}
        assert evaluate(bound, fresh, **args) == evaluate(bound, reference, **args), soql

        ids = [d.crm_id for d in rng.sample(deals, 12)] + [deal.crm_id[:15], "006x"]
        by_id = org.rows_with_ids("Opportunity", ids)
        expected = [
            row["Id"]
            for row in _reference_rows(
                org,
                validate(parse("SELECT Id FROM Opportunity"), org.catalog()),
                include_deleted=False,
            )
            if row["Id"] in ids
        ]
        assert [row["Id"] for row in by_id] == expected
        if round_number % 10 == 9:
            store.update_record(rng.choice(deals), {"Name": rng.choice(TRICKY_TEXT)})
