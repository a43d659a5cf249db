"""What is HubSpot-specific in HubSpotClient, driven through hubspot-api-client against the
sandbox over HTTP: error mapping, retry-after, the re-read precondition, batching, paging
and value normalisation. Behaviour shared with Salesforce is in test_conformance.py."""

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from integrations.crm import errors
from integrations.crm.base import by_domain, by_email, search_all
from integrations.crm.hubspot import HubSpotClient
from integrations.crm.hubspot_mapping import normalise, retry_after
from integrations.crm.types import (
    ObjectType,
    Operator,
    Precondition,
    PropertyType,
    SearchFilter,
    SearchQuery,
    Sort,
)
from integrations.sandbox import seed, store
from integrations.sandbox.hubspot import associations as sandbox_associations
from integrations.sandbox.models import (
    SandboxAccount,
    SandboxAssociation,
    SandboxRecord,
    SandboxRequest,
    SandboxUser,
)

DEAL, CONTACT, COMPANY = ObjectType.DEAL, ObjectType.CONTACT, ObjectType.COMPANY


@dataclass
class Hub:
    url: str
    account: SandboxAccount
    user: SandboxUser
    client: HubSpotClient

    def client_with(self, **token: object) -> HubSpotClient:
        timeout = token.pop("timeout", 5.0)
        access = seed.issue_token(self.user, **token).access_token
        return HubSpotClient(access, base_url=self.url, timeout=timeout)

    def add(self, object_type: str, fields: dict, **kwargs) -> SandboxRecord:
        kwargs.setdefault("owner", self.user)
        return seed.add_record(self.account, object_type, fields, **kwargs)

    def bulk_deals(self, count: int) -> list[SandboxRecord]:
        rows = [({"dealname": f"Deal {n:03d}", "amount": str(n)}, self.user) for n in range(count)]
        return store.bulk_create_records(self.account, "deals", rows)

    def human_edit(self, record: SandboxRecord, values: dict, *, after: float = 2) -> None:
        record.refresh_from_db()
        store.update_record(
            record,
            values,
            source_type="CRM_UI",
            source_id=f"userId:{self.user.crm_user_id}",
            at=store.now() + timedelta(seconds=after),
        )

    def requests(self, path_suffix: str = "") -> list[SandboxRequest]:
        return list(SandboxRequest.objects.filter(account=self.account, path__endswith=path_suffix))

    def written(self) -> dict:
        merged: dict = {}
        for request in self.requests():
            for crm_id, values in request.written.items():
                merged.setdefault(crm_id, {}).update(values)
        return merged

    def limit(self, **settings: float) -> None:
        for name, value in settings.items():
            setattr(self.account, name, value)
        self.account.save()


@pytest.fixture
def hub(sandbox_server) -> Hub:
    account = seed.create_account("hubspot", "Adapter Portal")
    user = seed.add_user(account, "ops@seller.example", first_name="Avery", team="West")
    token = seed.issue_token(user)
    client = HubSpotClient(token.access_token, base_url=sandbox_server.url, timeout=5)
    return Hub(sandbox_server.url, account, user, client)


# --- metadata and values -------------------------------------------------------------------


def test_describe_maps_hubspot_types_onto_the_normalised_ones(hub):
    seed.add_custom_field(hub.account, DEAL, "signed_on", "date")
    seed.add_custom_field(hub.account, DEAL, "forecast", "enumeration", options=["commit"])

    deal = {spec.name: spec for spec in hub.client.describe(DEAL)}
    contact = {spec.name: spec for spec in hub.client.describe(CONTACT)}

    kinds = {name: spec.type for name, spec in deal.items()}
    assert kinds["closedate"] is PropertyType.DATE  # a datetime at midnight on HubSpot
    assert kinds["signed_on"] is PropertyType.DATE
    assert kinds["amount"] is PropertyType.NUMBER
    assert kinds["hs_lastmodifieddate"] is PropertyType.DATETIME
    assert kinds["hubspot_owner_id"] is PropertyType.REFERENCE
    assert kinds["description"] is PropertyType.TEXT
    assert kinds["hs_is_closed"] is PropertyType.BOOL
    assert kinds["hs_object_id"] is PropertyType.ID
    assert contact["phone"].type is PropertyType.PHONE
    assert contact["email"].type is PropertyType.EMAIL
    assert deal["hs_is_closed"].read_only
    assert deal["hs_lastmodifieddate"].read_only
    assert not deal["amount"].read_only
    assert deal["forecast"].custom
    assert not deal["amount"].custom
    assert deal["dealstage"].option_values()[-2:] == ("closedwon", "closedlost")


def test_values_in_hubspots_other_formats_are_normalised(hub):
    seed.add_custom_field(hub.account, DEAL, "signed_on", "date")
    seed.add_custom_field(hub.account, DEAL, "kickoff_at", "datetime")
    seed.add_custom_field(hub.account, DEAL, "renewal", "bool")
    deal = hub.add("deal", {"name": "Acme"})
    # What the real API may answer: decimals with zeros, epoch milliseconds, upper case.
    store.update_record(
        deal,
        {
            "amount": "1500.50",
            "closedate": "1798675200000",
            "signed_on": "1798675200000",
            "kickoff_at": "2026-12-31T10:30:00+01:00",
            "renewal": "TRUE",
        },
    )

    record = hub.client.get(
        DEAL,
        deal.crm_id,
        ["amount", "closedate", "signed_on", "kickoff_at", "renewal", "hs_next_step"],
    )

    assert record.properties == {
        "amount": "1500.5",
        "closedate": "2026-12-31",
        "signed_on": "2026-12-31",
        "kickoff_at": "2026-12-31T09:30:00.000Z",
        "renewal": "true",
        "hs_next_step": None,
    }


def test_normalise_keeps_what_it_cannot_read():
    assert normalise(PropertyType.NUMBER, "1e3") == "1000"
    assert normalise(PropertyType.NUMBER, "n/a") == "n/a"
    assert normalise(PropertyType.DATE, "2026-12-31T23:30:00-05:00") == "2027-01-01"
    assert normalise(PropertyType.DATETIME, "soon") == "soon"
    assert normalise(PropertyType.STRING, "") is None


def test_modified_at_is_each_propertys_newest_history_entry(hub):
    deal = hub.add("deal", {"name": "Acme", "amount": 100})
    hub.human_edit(deal, {"amount": "200"}, after=30)

    record = hub.client.get(DEAL, deal.crm_id, ["amount", "dealname"])

    amount_changed = record.modified_at["amount"]
    assert amount_changed - record.modified_at["dealname"] >= timedelta(seconds=29)
    assert record.updated_at == amount_changed
    assert record.owner_id is None  # the owner was not asked for


def test_owners_carry_user_ids_and_team_names(hub):
    owners = hub.client.owners()

    assert len(owners) == 1
    owner = owners[0]
    assert (owner.id, owner.email, owner.user_id) == (
        hub.user.owner_id,
        "ops@seller.example",
        hub.user.crm_user_id,
    )
    assert owner.teams == ("West",)


def test_deal_stages_are_closed_and_won_by_pipeline_metadata(hub):
    stages = {stage.value: stage for stage in hub.client.deal_stages()}

    assert stages["closedwon"].label == "Closed Won"
    assert (stages["closedwon"].closed, stages["closedwon"].won) == (True, True)
    assert (stages["closedlost"].closed, stages["closedlost"].won) == (True, False)
    assert not any(stages[name].closed for name in ("appointmentscheduled", "contractsent"))


# --- errors --------------------------------------------------------------------------------


def test_an_unknown_token_is_auth_expired_with_hubspots_words(hub):
    client = HubSpotClient("pat-na1-unknown", base_url=hub.url, timeout=5)

    with pytest.raises(errors.AuthExpired) as caught:
        client.get(DEAL, "1", ["dealname"])

    assert caught.value.status == 401
    assert caught.value.code == "INVALID_AUTHENTICATION"
    assert caught.value.message.startswith("Authentication credentials not found.")
    assert caught.value.provider == "hubspot"


def test_an_expired_token_is_auth_expired(hub):
    client = hub.client_with(expires_in=timedelta(seconds=-30), refresh=True)

    with pytest.raises(errors.AuthExpired) as caught:
        client.search(SearchQuery(DEAL))

    assert caught.value.code == "EXPIRED_AUTHENTICATION"
    assert "expired" in caught.value.message


def test_a_missing_scope_is_permission_denied(hub):
    deal = hub.add("deal", {"name": "Acme"})
    client = hub.client_with(scopes=["crm.objects.deals.read"])

    with pytest.raises(errors.PermissionDenied) as caught:
        client.update(DEAL, deal.crm_id, {"hs_next_step": "Call"})

    assert (caught.value.status, caught.value.code) == (403, "MISSING_SCOPES")
    assert hub.written() == {}


def test_a_missing_record_is_not_found_with_hubspots_message(hub):
    with pytest.raises(errors.NotFound) as caught:
        hub.client.update(DEAL, "987654", {"hs_next_step": "Call"})

    assert caught.value.message == "resource not found"
    assert caught.value.code is None


def test_invalid_values_are_a_validation_error_naming_every_property(hub):
    deal = hub.add("deal", {"name": "Acme"})

    with pytest.raises(errors.ValidationFailed) as caught:
        hub.client.update(
            DEAL,
            deal.crm_id,
            {"amount": "a lot", "dealstage": "signed", "no_such_thing": "x", "dealname": "ok"},
        )

    assert set(caught.value.fields) == {"amount", "dealstage", "no_such_thing"}
    assert caught.value.fields["no_such_thing"] == 'Property "no_such_thing" does not exist'
    assert caught.value.code == "VALIDATION_ERROR"
    assert caught.value.message.startswith("Property values were not valid:")


def test_a_duplicate_contact_is_a_conflict_naming_the_existing_one(hub):
    jane = hub.add("contact", {"email": "jane@acme.example"})

    with pytest.raises(errors.Conflict) as caught:
        hub.client.create(CONTACT, {"email": "jane@acme.example", "firstname": "Jane"})

    assert caught.value.status == 409
    assert caught.value.message == f"Contact already exists. Existing ID: {jane.crm_id}"


def test_the_burst_limit_says_retry_after_the_ten_second_window(hub):
    hub.limit(burst_limit=1)
    hub.client.owners()

    with pytest.raises(errors.RateLimited) as caught:
        hub.client.owners()

    assert caught.value.retry_after == 10.0
    assert (caught.value.status, caught.value.code) == (429, "RATE_LIMIT")


def test_the_search_limit_says_retry_after_a_second(hub):
    hub.limit(search_per_second=1)
    hub.client.search(SearchQuery(DEAL))

    with pytest.raises(errors.RateLimited) as caught:
        hub.client.search(SearchQuery(DEAL))

    assert caught.value.retry_after == 1.0


def test_the_daily_limit_says_retry_after_midnight_utc(hub):
    hub.limit(daily_limit=1)
    hub.client.owners()

    with pytest.raises(errors.RateLimited) as caught:
        hub.client.owners()

    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert abs(caught.value.retry_after - (midnight - now).total_seconds()) < 5


def test_a_retry_after_header_wins_over_the_policy():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    daily = {"policyName": "DAILY"}

    assert retry_after({"Retry-After": "7"}, daily, now=now) == 7.0
    assert retry_after({"retry-after": "Thu, 01 Jan 2026 12:00:30 GMT"}, daily, now=now) == 30.0
    assert retry_after({}, daily, now=now) == 12 * 3600
    assert retry_after({"X-HubSpot-RateLimit-Interval-Milliseconds": "1000"}, {}, now=now) == 1.0


def test_server_errors_are_transient(hub):
    hub.limit(error_rate=1.0)

    with pytest.raises(errors.Transient) as caught:
        hub.client.get(DEAL, "1", ["dealname"])

    assert caught.value.status == 502


def test_a_dropped_connection_is_transient_at_once(hub):
    hub.limit(drop_rate=1.0)
    started = time.monotonic()

    with pytest.raises(errors.Transient):
        hub.client.search(SearchQuery(DEAL))

    assert time.monotonic() - started < 2


def test_a_timeout_is_transient(hub):
    hub.limit(timeout_rate=1.0, timeout_seconds=0.6)
    client = hub.client_with(timeout=0.2)

    with pytest.raises(errors.Transient):
        client.owners()

    deadline = time.monotonic() + 5  # let the sleeping server thread log before teardown
    while not SandboxRequest.objects.filter(account=hub.account, status=504).exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)


# --- the precondition ----------------------------------------------------------------------


def test_a_human_edit_between_read_and_write_is_a_conflict(hub):
    deal = hub.add("deal", {"name": "Acme", "amount": 50000})
    read = hub.client.get(DEAL, deal.crm_id, ["amount"])
    hub.human_edit(deal, {"amount": "60000"})

    with pytest.raises(errors.Conflict) as caught:
        hub.client.update(
            DEAL,
            deal.crm_id,
            {"amount": "75000"},
            precondition=Precondition(read.updated_at, {"amount": "50000"}),
        )

    assert caught.value.code == "PRECONDITION_FAILED"
    assert "amount" in caught.value.message
    assert hub.written() == {}
    assert hub.requests("/batch/update") == []


def test_an_edit_that_was_undone_still_counts_as_newer(hub):
    deal = hub.add("deal", {"name": "Acme", "amount": 50000})
    read = hub.client.get(DEAL, deal.crm_id, ["amount"])
    hub.human_edit(deal, {"amount": "60000"}, after=1)
    hub.human_edit(deal, {"amount": "50000"}, after=2)

    with pytest.raises(errors.Conflict):
        hub.client.update(
            DEAL,
            deal.crm_id,
            {"amount": "75000"},
            precondition=Precondition(read.updated_at, {"amount": "50000"}),
        )


def test_an_edit_of_another_property_does_not_block_the_write(hub):
    deal = hub.add("deal", {"name": "Acme", "amount": 50000})
    read = hub.client.get(DEAL, deal.crm_id, ["amount"])
    hub.human_edit(deal, {"dealname": "Acme (renamed)"})

    result = hub.client.update(
        DEAL,
        deal.crm_id,
        {"amount": "75000.00"},
        precondition=Precondition(read.updated_at, {"amount": "50000"}),
    )

    assert result.properties == {"amount": "75000"}
    assert hub.written() == {deal.crm_id: {"amount": "75000"}}
    methods = [request.method for request in hub.requests(f"/deals/{deal.crm_id}")]
    assert methods == ["GET", "GET", "PATCH"]  # the agent's read, the re-read, the write


# --- batching and paging -------------------------------------------------------------------


def test_get_many_reads_in_batches_of_50_with_history_and_100_without(hub):
    deals = hub.bulk_deals(230)
    ids = [deal.crm_id for deal in reversed(deals)]

    with_history = hub.client.get_many(DEAL, [*ids, "987654"], ["amount"])
    history_batches = len(hub.requests("/batch/read"))
    plain = hub.client.get_many(DEAL, ids, [])

    assert [record.id for record in with_history] == ids
    assert history_batches == 5
    assert len(hub.requests("/batch/read")) - history_batches == 3
    assert len(plain) == 230
    assert with_history[0].properties == {"amount": "229"}
    assert with_history[0].modified_at["amount"] is not None


def test_update_many_writes_in_batches_of_100_and_leaves_out_missing_ids(hub):
    deals = hub.bulk_deals(230)
    updates = {deal.crm_id: {"hs_next_step": "Call back"} for deal in deals}
    updates["987654"] = {"hs_next_step": "Call back"}

    results = hub.client.update_many(DEAL, updates)

    assert len(hub.requests("/batch/update")) == 3
    assert sorted(results.ids()) == sorted(deal.crm_id for deal in deals)
    assert all(result.properties == {"hs_next_step": "Call back"} for result in results.written)
    assert isinstance(results.failed["987654"], errors.NotFound)
    assert len(hub.written()) == 230


def test_search_pages_past_200_records_in_order(hub):
    hub.bulk_deals(450)
    query = SearchQuery(
        DEAL,
        filter_groups=((SearchFilter("amount", Operator.GTE, "10"),),),
        properties=("amount",),
        sorts=(Sort("amount"),),
        limit=200,
    )

    first = hub.client.search(query)
    records = search_all(hub.client, query)

    assert (first.total, len(first.records), first.next_cursor) == (440, 200, "200")
    assert [record.properties["amount"] for record in records] == [str(n) for n in range(10, 450)]
    assert len(hub.requests("/search")) == 4


def test_ends_with_and_in_become_hubspot_search_operators(hub):
    acme = hub.add("company", {"name": "Acme", "domain": "acme.example"})
    sub = hub.add("company", {"name": "Acme EU", "domain": "eu.acme.example"})
    hub.add("company", {"name": "Other", "domain": "acme.example.org"})
    jane = hub.add("contact", {"email": "jane@acme.example"})

    companies = hub.client.search(by_domain(COMPANY, "domain", "www.acme.example"))
    contacts = hub.client.search(by_email(CONTACT, "email", ["JANE@Acme.Example"]))

    assert sorted(record.id for record in companies.records) == [acme.crm_id, sub.crm_id]
    assert [record.id for record in contacts.records] == [jane.crm_id]


def test_associated_ids_follow_the_v4_paging(hub):
    acme = hub.add("company", {"name": "Acme"})
    rows = [({"email": f"p{n}@acme.example"}, hub.user) for n in range(520)]
    people = store.bulk_create_records(hub.account, "contacts", rows)
    SandboxAssociation.objects.bulk_create(
        SandboxAssociation(account=hub.account, from_record=acme, to_record=person, type_id=280)
        for person in people
    )

    ids = hub.client.associated_ids(COMPANY, acme.crm_id, CONTACT)

    assert ids == [person.crm_id for person in people]
    assert len(hub.requests("/associations/contacts")) == 2


def test_associations_many_follows_each_records_paging_in_one_batch(hub, monkeypatch):
    monkeypatch.setattr(sandbox_associations, "PAGE_LIMIT", 2)
    acme = hub.add("company", {"name": "Acme"})
    globex = hub.add("company", {"name": "Globex"})
    acme_deals = [hub.add("deal", {"name": f"A{n}"}, associations=[acme]) for n in range(5)]
    globex_deals = [hub.add("deal", {"name": f"G{n}"}, associations=[globex]) for n in range(3)]
    before = len(hub.requests("/batch/read"))

    found = hub.client.associations_many(COMPANY, [acme.crm_id, globex.crm_id], DEAL)

    assert found == {
        acme.crm_id: [deal.crm_id for deal in acme_deals],
        globex.crm_id: [deal.crm_id for deal in globex_deals],
    }
    # Pages of 2: both records, then both again with their ``after``, then Acme's last.
    assert len(hub.requests("/batch/read")) - before == 3


def _no_associations_as(**changes: object):
    """The sandbox's "nothing associated" 207 error with ``changes`` (None: key left out)."""
    original = sandbox_associations._no_associations

    def answer(source_name: str, target_name: str, crm_id: str) -> dict:
        error = {**original(source_name, target_name, crm_id), **changes}
        return {key: value for key, value in error.items() if value is not None}

    return answer


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"subCategory": {"name": "crm.associations.NO_ASSOCIATIONS_FOUND"}},
        {"subCategory": {"name": "NO_ASSOCIATIONS_FOUND", "id": 7}},
        {"subCategory": "NO_ASSOCIATIONS_FOUND"},
        {"subCategory": None},
        {"subCategory": None, "category": "NO_ASSOCIATIONS_FOUND", "message": "Nothing here"},
    ],
    ids=["string", "object", "object-without-prefix", "short", "missing", "category"],
)
def test_no_associations_is_an_empty_answer_whatever_shape_its_subcategory_has(
    hub, monkeypatch, changes
):
    monkeypatch.setattr(sandbox_associations, "_no_associations", _no_associations_as(**changes))
    acme = hub.add("company", {"name": "Acme"})
    lonely = hub.add("company", {"name": "Lonely"})
    deal = hub.add("deal", {"name": "A"}, associations=[acme])

    found = hub.client.associations_many(COMPANY, [acme.crm_id, lonely.crm_id], DEAL)

    assert found == {acme.crm_id: [deal.crm_id], lonely.crm_id: []}


@pytest.mark.parametrize(
    "changes",
    [
        {"subCategory": {"name": "crm.associations.TOO_MANY_ASSOCIATIONS"}},
        {"subCategory": None, "message": "Something else went wrong"},
    ],
    ids=["other-subcategory", "other-message"],
)
def test_any_other_batch_error_is_raised(hub, monkeypatch, changes):
    monkeypatch.setattr(sandbox_associations, "_no_associations", _no_associations_as(**changes))
    lonely = hub.add("company", {"name": "Lonely"})

    with pytest.raises(errors.CrmError) as caught:
        hub.client.associations_many(COMPANY, [lonely.crm_id], DEAL)

    assert caught.value.status == 207
    assert caught.value.code == "OBJECT_NOT_FOUND"


def test_create_associates_in_either_direction_with_the_default_types(hub):
    acme = hub.add("company", {"name": "Acme"})
    jane = hub.add("contact", {"email": "jane@acme.example"})

    contact = hub.client.create(
        CONTACT,
        {"email": "omar@acme.example", "jobtitle": None},
        associations={COMPANY: [acme.crm_id]},
    )
    company = hub.client.create(COMPANY, {"name": "Globex"}, associations={CONTACT: [jane.crm_id]})

    assert contact.created
    assert contact.properties == {
        "email": "omar@acme.example",
        "jobtitle": None,
    }
    links = SandboxAssociation.objects.filter(account=hub.account)
    assert set(links.values_list("from_record__crm_id", "to_record__crm_id", "type_id")) == {
        (contact.id, acme.crm_id, 279),
        (acme.crm_id, contact.id, 280),
        (company.id, jane.crm_id, 280),
        (jane.crm_id, company.id, 279),
    }
