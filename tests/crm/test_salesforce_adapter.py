"""What is Salesforce-specific in the Salesforce adapter: error mapping, typed values,
If-Unmodified-Since, collections in chunks of 200, and paging across query batches.

The behaviour both CRMs share is pinned by the conformance suite (test_conformance.py).
"""

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

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
from integrations.crm.salesforce import SalesforceClient
from integrations.crm.salesforce_errors import (
    CONCURRENT_RETRY_SECONDS,
    seconds_to_next_day,
    translate,
)
from integrations.crm.salesforce_soql import like_pattern, literal, quote
from integrations.crm.salesforce_values import normalise, to_salesforce
from integrations.crm.types import ObjectType, Operator, Precondition, SearchFilter, SearchQuery
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


def test_a_precondition_conflicts_after_a_human_edit_in_the_same_second(org):
    deal = seed.add_record(org.account, DEAL, {"name": "Acme", "amount": 100}, owner=org.user)
    client = org.client_for()
    read = client.get(DEAL, deal.crm_id, ["Amount"])
    store.update_record(deal, {"Amount": 200}, at=read.updated_at + timedelta(milliseconds=300))

    with pytest.raises(errors.Conflict) as caught:
        client.update(
            DEAL, deal.crm_id, {"Amount": "300"}, precondition=Precondition(read.updated_at)
        )

    assert caught.value.code == "PRECONDITION_FAILED"
    deal.refresh_from_db()
    assert deal.values["Amount"] == 200
    # LastModifiedDate decided it, before any PATCH was sent.
    assert not SandboxRequest.objects.filter(method="PATCH").exists()


def test_a_precondition_on_an_unchanged_record_writes_despite_whole_second_headers(org):
    deal = seed.add_record(org.account, DEAL, {"name": "Acme", "amount": 100}, owner=org.user)
    moment = datetime(2026, 5, 4, 10, 0, 0, 700000, tzinfo=UTC)
    SandboxRecord.objects.filter(pk=deal.pk).update(updated_at=moment)
    client = org.client_for()

    client.update(DEAL, deal.crm_id, {"Amount": "300"}, precondition=Precondition(moment))

    deal.refresh_from_db()
    assert deal.values["Amount"] == 300
    # A sub-second read time cannot be a whole-second header: one read of LastModifiedDate,
    # then one PATCH with the next whole second (not a PATCH doomed to 412 first).
    sent = SandboxRequest.objects.filter(method__in=["GET", "PATCH"]).order_by("pk")
    assert [(log.method, log.status) for log in sent][-2:] == [("GET", 200), ("PATCH", 204)]
    assert not SandboxRequest.objects.filter(method="PATCH", status=412).exists()


def test_a_precondition_on_a_whole_second_writes_in_one_request(org):
    deal = seed.add_record(org.account, DEAL, {"name": "Acme", "amount": 100}, owner=org.user)
    moment = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)
    SandboxRecord.objects.filter(pk=deal.pk).update(updated_at=moment)
    client = org.client_for()
    last = SandboxRequest.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

    client.update(DEAL, deal.crm_id, {"Amount": "300"}, precondition=Precondition(moment))

    sent = SandboxRequest.objects.filter(pk__gt=last).exclude(kind="meta").order_by("pk")
    assert [(log.method, log.status) for log in sent] == [("PATCH", 204)]


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
