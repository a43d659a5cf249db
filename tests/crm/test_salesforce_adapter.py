"""What is Salesforce-specific in the Salesforce adapter: error mapping, typed values,
If-Unmodified-Since, collections in chunks of 200, and paging across query batches.

The behaviour both CRMs share is pinned by the conformance suite (test_conformance.py).
"""

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import unquote_plus

import pytest
import requests
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from integrations.crm import errors
from integrations.crm.salesforce import SalesforceClient, _last_changed
from integrations.crm.salesforce_errors import (
    CONCURRENT_RETRY_SECONDS,
    seconds_to_next_day,
    translate,
)
from integrations.crm.salesforce_soql import like_pattern, literal, quote
from integrations.crm.salesforce_values import normalise, to_salesforce
from integrations.crm.types import (
    ObjectType,
    Operator,
    Precondition,
    SearchFilter,
    SearchQuery,
    Sort,
)
from integrations.sandbox import seed, store
from integrations.sandbox.models import (
    Access,
    SandboxAccount,
    SandboxRecord,
    SandboxRequest,
    SandboxUser,
)
from integrations.sandbox.server import free_port

DEAL, CONTACT, COMPANY = ObjectType.DEAL, ObjectType.CONTACT, ObjectType.COMPANY


def _error(cls: type, status: int, content: object) -> Exception:
    return cls("https://x/services/data/v59.0/query/", status, "query", content)


# --- error mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected", "code"),
    [
        (
            _error(
                SalesforceExpiredSession,
                401,
                [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
            ),
            errors.AuthExpired,
            "INVALID_SESSION_ID",
        ),
        (
            _error(
                SalesforceRefusedRequest,
                403,
                [
                    {
                        "message": "TotalRequests Limit exceeded.",
                        "errorCode": "REQUEST_LIMIT_EXCEEDED",
                    }
                ],
            ),
            errors.RateLimited,
            "REQUEST_LIMIT_EXCEEDED",
        ),
        (
            _error(
                SalesforceRefusedRequest,
                403,
                [{"message": "This session is not valid", "errorCode": "INVALID_SESSION_ID"}],
            ),
            errors.PermissionDenied,
            "INVALID_SESSION_ID",
        ),
        (
            _error(
                SalesforceMalformedRequest,
                400,
                [
                    {
                        "message": "insufficient access rights on object id",
                        "errorCode": "INSUFFICIENT_ACCESS_OR_READONLY",
                    }
                ],
            ),
            errors.PermissionDenied,
            "INSUFFICIENT_ACCESS_OR_READONLY",
        ),
        (
            _error(
                SalesforceResourceNotFound,
                404,
                [{"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED", "fields": []}],
            ),
            errors.NotFound,
            "ENTITY_IS_DELETED",
        ),
        (
            _error(
                SalesforceGeneralError,
                412,
                [{"message": "modified since", "errorCode": "PRECONDITION_FAILED"}],
            ),
            errors.Conflict,
            "PRECONDITION_FAILED",
        ),
        (
            _error(
                SalesforceGeneralError,
                503,
                [{"message": "Server temporarily unavailable", "errorCode": "SERVER_UNAVAILABLE"}],
            ),
            errors.Transient,
            "SERVER_UNAVAILABLE",
        ),
        (_error(SalesforceGeneralError, 502, "<html>Bad gateway</html>"), errors.Transient, None),
    ],
)
def test_every_salesforce_error_maps_onto_the_hierarchy(exc, expected, code):
    error = translate(exc)

    assert type(error) is expected
    assert (error.status, error.code, error.provider) == (exc.status, code, "salesforce")
    assert error.message == (
        exc.content[0]["message"] if isinstance(exc.content, list) else exc.content
    )
    if expected is errors.RateLimited:
        assert 0 < error.retry_after <= 86400


@pytest.mark.parametrize(
    ("content", "fields"),
    [
        (
            [
                {
                    "message": "No such column 'Foo__c' on sobject of type Account",
                    "errorCode": "INVALID_FIELD",
                    "fields": [],
                }
            ],
            ["Foo__c"],
        ),
        (
            [
                {
                    "message": "Unable to create/update fields: Name, Amount. Please check…",
                    "errorCode": "INVALID_FIELD_FOR_INSERT_UPDATE",
                    "fields": ["Name", "Amount"],
                }
            ],
            ["Name", "Amount"],
        ),
        (
            [
                {
                    "message": "Required fields are missing: [Name]",
                    "errorCode": "REQUIRED_FIELD_MISSING",
                    "fields": ["Name"],
                }
            ],
            ["Name"],
        ),
        (
            [
                {
                    "message": "Stage: bad value for restricted picklist field: Maybe",
                    "errorCode": "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    "fields": ["StageName"],
                }
            ],
            ["StageName"],
        ),
    ],
)
def test_validation_errors_name_the_bad_fields(content, fields):
    error = translate(_error(SalesforceMalformedRequest, 400, content))

    assert isinstance(error, errors.ValidationFailed)
    assert list(error.fields) == fields
    assert error.fields[fields[0]] == content[0]["message"]
    assert error.code == content[0]["errorCode"]


def test_an_unreachable_instance_is_transient(db):
    client = SalesforceClient("tok", base_url=f"http://127.0.0.1:{free_port()}", timeout=2)

    with pytest.raises(errors.Transient) as caught:
        client.search(SearchQuery(DEAL))

    assert caught.value.code == "ConnectionError"


def test_ids_that_are_not_salesforce_ids_never_reach_a_url(db):
    client = SalesforceClient("tok", base_url=f"http://127.0.0.1:{free_port()}")

    with pytest.raises(errors.NotFound):
        client.get(DEAL, "../query/?q=SELECT", ["Name"])


# --- values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        (1500.0, "1500"),
        (1500, "1500"),
        (0.1, "0.1"),
        (1.5e21, "1500000000000000000000"),
        (-0.0, "0"),
        (True, "true"),
        (False, "false"),
        ("2026-12-31", "2026-12-31"),
        ("2024-01-15T10:30:00.000+0000", "2024-01-15T10:30:00.000Z"),
        ("2024-01-15T12:30:00.250+0200", "2024-01-15T10:30:00.250Z"),
        ("O'Brien", "O'Brien"),
        ("", None),
        (None, None),
    ],
)
def test_values_read_normalise_to_the_shared_string_conventions(raw, canonical):
    assert normalise(raw) == canonical


@pytest.mark.parametrize(
    ("kind", "text", "typed"),
    [
        ("currency", "75000", 75000),
        ("currency", "1500.50", 1500.5),
        ("double", "-2.25", -2.25),
        ("int", "12", 12),
        ("percent", "10", 10),
        ("boolean", "TRUE", True),
        ("boolean", "false", False),
        ("date", "2027-01-31", "2027-01-31"),
        ("date", "2027-01-31T00:00:00Z", "2027-01-31"),
        ("datetime", "2024-01-15T12:30:00+02:00", "2024-01-15T10:30:00.000Z"),
        ("picklist", "Closed Won", "Closed Won"),
        ("string", "", None),
        ("string", None, None),
    ],
)
def test_values_written_take_the_fields_json_type(kind, text, typed):
    assert to_salesforce({"name": "X", "type": kind}, "X", text) == typed


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("currency", "lots"),
        ("int", "1.5"),
        ("boolean", "yes"),
        ("date", "31/01/2027"),
        ("datetime", "soon"),
        ("double", "NaN"),
    ],
)
def test_values_that_do_not_fit_the_type_are_refused_before_any_request(kind, text):
    with pytest.raises(errors.ValidationFailed) as caught:
        to_salesforce({"name": "X", "type": kind}, "X", text)

    assert "X" in caught.value.fields


def test_soql_literals_are_escaped_and_typed():
    assert quote('O\'Brien \\ "x"\n') == "'O\\'Brien \\\\ \\\"x\\\"\\n'"
    assert like_pattern("50%_off", prefix="%") == "'%50\\%\\_off'"
    assert literal({"name": "Amount", "type": "currency"}, "500") == "500"
    assert literal({"name": "IsWon", "type": "boolean"}, "true") == "true"
    assert literal({"name": "CloseDate", "type": "date"}, "2027-01-31") == "2027-01-31"
    assert literal({"name": "Stamp", "type": "datetime"}, "2024-01-15T10:30:00.000Z") == (
        "2024-01-15T10:30:00Z"
    )
    assert literal({"name": "Name", "type": "string"}, "500") == "'500'"


# --- against the sandbox ---------------------------------------------------------------------


@dataclass
class Org:
    url: str
    account: SandboxAccount
    user: SandboxUser

    def client_for(
        self, user: SandboxUser | None = None, *, timeout: float = 5.0, **token: object
    ) -> SalesforceClient:
        access_token = seed.issue_token(user or self.user, **token).access_token
        return SalesforceClient(access_token, base_url=self.url, timeout=timeout)


@pytest.fixture
def org(sandbox_server) -> Org:
    account = seed.create_account("salesforce", "Adapter org")
    user = seed.add_user(account, "ada@seller.example", first_name="Ada", team="East")
    return Org(sandbox_server.url, account, user)


def _deals(org: Org, count: int) -> list[SandboxRecord]:
    values = {"StageName": "Prospecting", "OwnerId": org.user.crm_user_id}
    rows = [({"Name": f"Deal {n:04d}", **values}, org.user) for n in range(count)]
    return store.bulk_create_records(org.account, "Opportunity", rows)


def test_typed_values_round_trip_through_custom_fields(org):
    for name, kind in [
        ("budget", "number"),
        ("signed", "bool"),
        ("kickoff", "date"),
        ("demo_at", "datetime"),
        ("forecast", "enumeration"),
        ("notes", "text"),
        ("direct_line", "phone"),
    ]:
        seed.add_custom_field(org.account, DEAL, name, kind, options=["commit", "pipeline"])
    deal = seed.add_record(org.account, DEAL, {"name": "Acme"}, owner=org.user)
    client = org.client_for()
    written = {
        "Budget__c": "1234.5",
        "Signed__c": "true",
        "Kickoff__c": "2027-02-01",
        "Demo_At__c": "2027-02-01T09:30:00Z",
        "Forecast__c": "commit",
        "Notes__c": "Line one\nLine 'two'",
        "Direct_Line__c": "+1 555 0100",
    }

    client.update(DEAL, deal.crm_id, written)
    read = client.get(DEAL, deal.crm_id, list(written))

    deal.refresh_from_db()
    assert deal.values["Budget__c"] == 1234.5
    assert deal.values["Signed__c"] is True
    assert deal.values["Demo_At__c"] == "2027-02-01T09:30:00.000+0000"
    assert read.properties == {**written, "Demo_At__c": "2027-02-01T09:30:00.000Z"}
    with pytest.raises(errors.ValidationFailed) as caught:
        client.update(DEAL, deal.crm_id, {"Forecast__c": "maybe"})
    assert caught.value.code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert list(caught.value.fields) == ["Forecast__c"]


def _last_write_requests(since_pk: int) -> list[tuple[str, int]]:
    sent = SandboxRequest.objects.filter(pk__gt=since_pk).exclude(kind="meta").order_by("pk")
    return [(log.method, log.status) for log in sent]


def _last_request_pk() -> int:
    return SandboxRequest.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def test_a_record_read_in_the_second_it_changed_is_checked_by_its_values(org):
    deal = seed.add_record(org.account, DEAL, {"name": "Acme", "amount": 100}, owner=org.user)
    client = org.client_for()
    read = client.get(DEAL, deal.crm_id, ["Amount"])
    # A human edit later in the same second leaves LastModifiedDate where it was, so
    # If-Unmodified-Since alone would let the write through, as it does on a real org.
    second = deal.updated_at.replace(microsecond=0)
    deal.refresh_from_db()
    store.update_record(deal, {"Amount": 200}, at=second + timedelta(microseconds=999_000))
    before = _last_request_pk()

    with pytest.raises(errors.Conflict) as caught:
        client.update(
            DEAL,
            deal.crm_id,
            {"Amount": "300"},
            precondition=Precondition(read.updated_at, expected=read.properties),
        )

    assert read.updated_at == second + timedelta(microseconds=999_999)
    assert caught.value.code == "PRECONDITION_FAILED"
    assert "(Amount)" in caught.value.message
    deal.refresh_from_db()
    assert deal.values["Amount"] == 200
    assert _last_write_requests(before) == [("GET", 200)]  # no PATCH was sent


def test_a_record_read_in_the_second_it_changed_is_written_when_its_values_hold(org):
    deal = seed.add_record(org.account, DEAL, {"name": "Acme", "amount": 100}, owner=org.user)
    client = org.client_for()
    read = client.get(DEAL, deal.crm_id, ["Amount"])
    before = _last_request_pk()

    client.update(
        DEAL,
        deal.crm_id,
        {"Amount": "300"},
        precondition=Precondition(read.updated_at, expected=read.properties),
    )

    deal.refresh_from_db()
    assert deal.values["Amount"] == 300
    assert _last_write_requests(before) == [("GET", 200), ("PATCH", 204)]


def test_a_record_read_after_the_second_it_changed_is_written_in_one_conditional_request(org):
    deal = seed.add_record(org.account, DEAL, {"name": "Acme", "amount": 100}, owner=org.user)
    changed = datetime(2026, 5, 4, 10, 0, 0, 400_000, tzinfo=UTC)
    SandboxRecord.objects.filter(pk=deal.pk).update(updated_at=changed)
    client = org.client_for()
    read = client.get(DEAL, deal.crm_id, ["Amount"])
    written = _last_request_pk()
    client.update(
        DEAL,
        deal.crm_id,
        {"Amount": "300"},
        precondition=Precondition(read.updated_at, expected=read.properties),
    )
    sent = _last_write_requests(written)
    deal.refresh_from_db()
    store.update_record(deal, {"Amount": 200}, at=deal.updated_at + timedelta(seconds=1))
    before = _last_request_pk()

    with pytest.raises(errors.Conflict):
        client.update(
            DEAL,
            deal.crm_id,
            {"Amount": "400"},
            precondition=Precondition(read.updated_at, expected=read.properties),
        )

    assert read.updated_at == changed.replace(microsecond=0)  # LastModifiedDate as given
    assert sent == [("PATCH", 204)]
    assert _last_write_requests(before) == [("PATCH", 412)]
    deal.refresh_from_db()
    assert deal.values["Amount"] == 200


@pytest.mark.parametrize(
    ("read_after", "reported"),
    [
        (timedelta(milliseconds=300), timedelta(microseconds=999_999)),
        (timedelta(seconds=1, milliseconds=500), timedelta(microseconds=999_999)),
        (timedelta(seconds=2), timedelta(0)),
        (timedelta(hours=3), timedelta(0)),
    ],
)
def test_a_last_change_in_the_second_of_the_read_is_reported_at_its_end(read_after, reported):
    second = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)

    assert _last_changed(second, now=second + read_after) == second + reported
    assert _last_changed(None) is None


def test_a_precondition_that_is_no_whole_second_checks_the_values_first(org):
    deal = seed.add_record(org.account, DEAL, {"name": "Acme", "amount": 100}, owner=org.user)
    moment = datetime(2026, 5, 4, 10, 0, 0, 700000, tzinfo=UTC)
    SandboxRecord.objects.filter(pk=deal.pk).update(updated_at=moment)
    client = org.client_for()
    before = _last_request_pk()

    client.update(DEAL, deal.crm_id, {"Amount": "300"}, precondition=Precondition(moment))

    deal.refresh_from_db()
    assert deal.values["Amount"] == 300
    # A time that is no LastModifiedDate (a read time, say) cannot be sent as one: the
    # record's date and values are read first, then one PATCH goes with its whole second.
    assert _last_write_requests(before) == [("GET", 200), ("PATCH", 204)]


def test_a_precondition_on_a_whole_second_writes_in_one_request(org):
    deal = seed.add_record(org.account, DEAL, {"name": "Acme", "amount": 100}, owner=org.user)
    moment = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)
    SandboxRecord.objects.filter(pk=deal.pk).update(updated_at=moment)
    client = org.client_for()
    before = _last_request_pk()

    client.update(DEAL, deal.crm_id, {"Amount": "300"}, precondition=Precondition(moment))

    assert _last_write_requests(before) == [("PATCH", 204)]


def test_update_many_sends_collections_of_200_and_leaves_out_refusals(org):
    deals = _deals(org, 450)
    other = seed.add_user(org.account, "omar@seller.example")
    hidden = seed.add_record(org.account, DEAL, {"name": "Not yours"}, owner=other)
    rep = seed.add_user(org.account, "rep@seller.example", access=Access.OWNED)
    SandboxRecord.objects.filter(pk__in=[d.pk for d in deals]).update(owner=rep)
    updates = {deal.crm_id: {"NextStep": "Call back"} for deal in deals}
    updates[hidden.crm_id] = {"NextStep": "Call back"}

    results = org.client_for(rep).update_many(DEAL, updates)

    assert results.ids() == [deal.crm_id for deal in deals]
    assert list(results.failed) == [hidden.crm_id]
    collections = SandboxRequest.objects.filter(path__endswith="/composite/sobjects")
    assert collections.count() == 3
    assert sum(len(log.written) for log in collections) == 450


def test_a_record_shared_read_only_is_read_but_its_writes_are_refusals(org):
    viewer = seed.add_user(
        org.account, "val@seller.example", access=Access.OWNED, read_access=Access.ALL
    )
    deal = seed.add_record(org.account, DEAL, {"name": "Acme"}, owner=org.user)
    client = org.client_for(viewer)

    read = client.get(DEAL, deal.crm_id, ["Name"])
    with pytest.raises(errors.PermissionDenied) as caught:
        client.update(
            DEAL,
            deal.crm_id,
            {"NextStep": "Call"},
            precondition=Precondition(read.updated_at, expected=read.properties),
        )
    batch = client.update_many(DEAL, {deal.crm_id: {"NextStep": "Call"}})

    assert read.properties == {"Name": "Acme"}
    assert (caught.value.status, caught.value.code) == (400, "INSUFFICIENT_ACCESS_OR_READONLY")
    assert caught.value.message == "insufficient access rights on object id"
    assert batch.ids() == []
    assert isinstance(batch.failed[deal.crm_id], errors.PermissionDenied)
    assert batch.failed[deal.crm_id].code == "INSUFFICIENT_ACCESS_OR_READONLY"


@pytest.mark.parametrize(("count", "limit", "pages"), [(450, 200, 3), (450, 100, 5)])
def test_search_pages_through_query_batches(org, count, limit, pages):
    deals = _deals(org, count)
    client = org.client_for()
    seen: list[str] = []
    cursor = None
    for _ in range(pages):
        page = client.search(SearchQuery(DEAL, properties=("Name",), limit=limit, cursor=cursor))
        assert len(page.records) <= limit
        assert page.total == count
        seen.extend(record.id for record in page.records)
        cursor = page.next_cursor

    assert cursor is None
    assert seen == sorted(deal.crm_id for deal in deals)


def test_search_pages_past_2000_records_and_within_one_short_batch(org):
    _deals(org, 2100)
    client = org.client_for()
    ending_25 = SearchQuery(
        DEAL, filter_groups=((SearchFilter("Name", Operator.ENDS_WITH, "25"),),), limit=10
    )

    first = client.search(SearchQuery(DEAL, limit=2000))
    second = client.search(SearchQuery(DEAL, limit=2000, cursor=first.next_cursor))
    short = [client.search(ending_25)]
    while short[-1].next_cursor:
        short.append(client.search(replace(ending_25, cursor=short[-1].next_cursor)))

    assert (len(first.records), len(second.records), second.next_cursor) == (2000, 100, None)
    # 21 matches fit one batch, so there is no query locator: later pages use OFFSET.
    assert short[0].next_cursor == "offset:10:21"
    assert [len(page.records) for page in short] == [10, 10, 1]
    assert {page.total for page in short} == {21}
    names = [record.properties["Name"] for page in short for record in page.records]
    assert names == [f"Deal {n:04d}" for n in range(2100) if n % 100 == 25]


def _pages(client: SalesforceClient, query: SearchQuery) -> list:
    pages = [client.search(query)]
    while pages[-1].next_cursor:
        pages.append(client.search(replace(query, cursor=pages[-1].next_cursor)))
    return pages


def test_search_pages_by_the_next_records_urls_salesforce_gives_and_nothing_else(org):
    deals = _deals(org, 650)
    before = _last_request_pk()

    pages = _pages(org.client_for(), SearchQuery(DEAL, properties=("Name",), limit=200))

    sent = list(SandboxRequest.objects.filter(pk__gt=before, kind="search").order_by("pk"))
    assert [len(page.records) for page in pages] == [200, 200, 200, 50]
    assert [r.id for page in pages for r in page.records] == [d.crm_id for d in deals]
    assert [log.status for log in sent] == [200] * 4
    # Each later request is the nextRecordsUrl the one before it answered, as given.
    handed_out = [page.next_cursor for page in pages[:-1]]
    assert [log.path for log in sent[1:]] == handed_out
    assert [int(url.rpartition("-")[2]) for url in handed_out] == [200, 400, 600]


def test_search_pages_smaller_than_a_batch_go_by_offset_never_by_a_made_up_locator(org):
    deals = _deals(org, 650)
    before = _last_request_pk()

    pages = _pages(org.client_for(), SearchQuery(DEAL, properties=("Name",), limit=150))

    sent = list(SandboxRequest.objects.filter(pk__gt=before, kind="search").order_by("pk"))
    assert [r.id for page in pages for r in page.records] == [d.crm_id for d in deals]
    assert [page.next_cursor for page in pages] == [
        "offset:150:650",
        "offset:300:650",
        "offset:450:650",
        "offset:600:650",
        None,
    ]
    assert all(log.status == 200 and log.path.endswith("/query/") for log in sent)
    assert "OFFSET 300" in unquote_plus(sent[2].query)


@pytest.mark.parametrize(
    ("query", "verb"),
    [
        (
            SearchQuery(
                DEAL, filter_groups=((SearchFilter("Description", Operator.CONTAINS, "MSA"),),)
            ),
            "filtered",
        ),
        (SearchQuery(DEAL, sorts=(Sort("Description"),)), "sorted"),
    ],
)
def test_a_search_on_a_field_salesforce_cannot_filter_or_sort_names_it(org, query, verb):
    seed.add_record(org.account, DEAL, {"name": "Acme"}, owner=org.user)

    with pytest.raises(errors.ValidationFailed) as caught:
        org.client_for().search(query)

    assert caught.value.code == "INVALID_FIELD"
    assert caught.value.fields == {
        "Description": caught.value.message,
    }
    assert caught.value.message.endswith(f"field 'Description' can not be {verb} in a query call")


def test_a_small_page_beyond_sqls_largest_offset_is_refused_before_any_request(org):
    client = org.client_for()
    before = _last_request_pk()

    with pytest.raises(errors.ValidationFailed) as caught:
        client.search(SearchQuery(DEAL, limit=150, cursor="offset:2100:5000"))

    assert "pages of 200 or more" in caught.value.message
    assert not SandboxRequest.objects.filter(pk__gt=before).exists()


def test_search_escapes_literals(org):
    match = seed.add_record(org.account, COMPANY, {"name": "O'Brien 100% Ltd"}, owner=org.user)
    seed.add_record(org.account, COMPANY, {"name": "OBrien 1000 Ltd"}, owner=org.user)
    client = org.client_for()

    exact = client.search(
        SearchQuery(
            COMPANY, filter_groups=((SearchFilter("Name", Operator.EQ, "o'brien 100% ltd"),),)
        )
    )
    contains = client.search(
        SearchQuery(COMPANY, filter_groups=((SearchFilter("Name", Operator.CONTAINS, "100%"),),))
    )

    assert [record.id for record in exact.records] == [match.crm_id]
    assert [record.id for record in contains.records] == [match.crm_id]


def test_get_many_reads_in_chunks_and_fields_the_user_cannot_see_read_none(org):
    deals = _deals(org, 250)
    rep = seed.add_user(org.account, "rep@seller.example", hidden_fields=["deal.next_step"])

    records = org.client_for(rep).get_many(
        DEAL, [deal.crm_id for deal in reversed(deals)], ["Name", "NextStep"]
    )

    assert [record.id for record in records] == [deal.crm_id for deal in reversed(deals)]
    assert records[0].properties == {"Name": "Deal 0249", "NextStep": None}
    assert SandboxRequest.objects.filter(kind="search", status=200).count() == 2


def test_create_links_contacts_through_contact_roles_and_accounts_by_lookup(org):
    acme = seed.add_record(org.account, COMPANY, {"name": "Acme"}, owner=org.user)
    jane = seed.add_record(org.account, CONTACT, {"last_name": "Lee"}, owner=org.user)
    client = org.client_for()

    deal = client.create(
        DEAL,
        {"Name": "New", "StageName": "Prospecting", "CloseDate": "2027-01-31", "Amount": "10"},
        associations={COMPANY: [acme.crm_id], CONTACT: [jane.crm_id]},
    )
    company = client.create(COMPANY, {"Name": "Globex"}, associations={CONTACT: [jane.crm_id]})

    assert client.associated_ids(DEAL, deal.id, CONTACT) == [jane.crm_id]
    assert client.associated_ids(DEAL, deal.id, COMPANY) == [acme.crm_id]
    assert client.associated_ids(CONTACT, jane.crm_id, COMPANY) == [company.id]
    created = SandboxRecord.objects.get(crm_id=deal.id)
    assert created.values["Amount"] == 10
    with pytest.raises(errors.ValidationFailed):
        client.create(CONTACT, {"LastName": "X"}, associations={COMPANY: ["a", "b"]})


def test_associations_many_answers_15_character_ids_as_asked(org):
    acme = seed.add_record(org.account, COMPANY, {"name": "Acme"}, owner=org.user)
    jane = seed.add_record(org.account, CONTACT, {"last_name": "Lee"}, owner=org.user)
    deal = seed.add_record(
        org.account, DEAL, {"name": "Acme platform"}, owner=org.user, associations=[acme, jane]
    )
    client = org.client_for()

    by_company = client.associations_many(COMPANY, [acme.crm_id[:15]], DEAL)
    by_contact = client.associations_many(CONTACT, [jane.crm_id[:15]], DEAL)

    assert by_company == {acme.crm_id[:15]: [deal.crm_id]}
    assert by_contact == {jane.crm_id[:15]: [deal.crm_id]}
    with pytest.raises(errors.NotFound):
        client.associations_many(COMPANY, ["../query"], DEAL)


def test_describe_reflects_field_level_security_and_owners_carry_teams(org):
    rep = seed.add_user(
        org.account,
        "rep@seller.example",
        readonly_fields=["deal.amount"],
        hidden_fields=["deal.next_step"],
    )
    client = org.client_for(rep)

    specs = {spec.name: spec for spec in client.describe(DEAL)}
    owners = {owner.email: owner for owner in client.owners()}

    assert specs["Amount"].read_only
    assert "NextStep" not in specs
    assert not specs["Name"].read_only
    assert owners["ada@seller.example"].teams == ("East",)
    assert owners["rep@seller.example"].id == rep.crm_user_id


def test_limits_and_sessions_map_to_their_errors(org):
    expired = org.client_for(expires_in=timedelta(seconds=-1))
    with pytest.raises(errors.AuthExpired):
        expired.search(SearchQuery(DEAL))

    org.account.daily_limit = 1
    org.account.save()
    client = org.client_for()
    client.search(SearchQuery(DEAL))
    with pytest.raises(errors.RateLimited) as caught:
        client.search(SearchQuery(DEAL))
    assert caught.value.code == "REQUEST_LIMIT_EXCEEDED"
    # The daily limit waits for the next UTC midnight, in Salesforce's words.
    assert caught.value.retry_after == pytest.approx(seconds_to_next_day(), abs=60)
    assert caught.value.message == "TotalRequests Limit exceeded."


def test_a_token_without_api_access_must_be_connected_again(org):
    client = org.client_for(scopes=["id", "openid"])

    with pytest.raises(errors.AuthExpired) as caught:
        client.search(SearchQuery(DEAL))

    assert (caught.value.status, caught.value.code) == (401, "INVALID_SESSION_ID")
    assert caught.value.message == "This session is not valid for use with the REST API"


def test_the_concurrent_request_limit_is_retried_within_seconds(org):
    org.account.concurrent_limit = 1
    org.account.latency_ms = 600
    org.account.save()
    client = org.client_for()

    def search() -> Exception | None:
        try:
            client.search(SearchQuery(DEAL))
        except errors.CrmError as error:
            return error
        return None

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda _: search(), range(2)))

    refused = [outcome for outcome in outcomes if outcome is not None]
    assert len(refused) == 1
    assert isinstance(refused[0], errors.RateLimited)
    assert refused[0].code == "REQUEST_LIMIT_EXCEEDED"
    assert refused[0].retry_after == CONCURRENT_RETRY_SECONDS <= 10
    assert refused[0].message == "ConcurrentPerOrgLongTxn Limit exceeded."


@pytest.mark.parametrize(
    ("message", "retry_after"),
    [
        ("ConcurrentPerOrgLongTxn Limit exceeded.", CONCURRENT_RETRY_SECONDS),
        ("ConcurrentRequests (Concurrent API Requests) Limit exceeded.", CONCURRENT_RETRY_SECONDS),
        ("Some new limit exceeded.", None),
    ],
)
def test_each_request_limit_gets_its_own_retry_time(message, retry_after):
    error = translate(
        _error(
            SalesforceRefusedRequest,
            403,
            [{"message": message, "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
        )
    )

    assert isinstance(error, errors.RateLimited)
    assert error.retry_after == retry_after
    assert error.message == message


def test_amounts_keep_their_decimal_value():
    assert normalise(float(Decimal("1234.56"))) == "1234.56"
    assert to_salesforce({"name": "A", "type": "currency"}, "A", "0.10") == 0.1


def test_timeouts_apply_to_every_request(org):
    org.account.timeout_rate = 1.0
    org.account.timeout_seconds = 1.0
    org.account.save()
    client = org.client_for(timeout=0.3)

    with pytest.raises(errors.Transient) as caught:
        client.update(DEAL, store.salesforce_id("006", 5), {"Name": "x"})

    assert isinstance(caught.value.__cause__, requests.Timeout)
    deadline = time.monotonic() + 5  # let the server finish its slow answer inside the test
    while not SandboxRequest.objects.filter(status=504).exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
