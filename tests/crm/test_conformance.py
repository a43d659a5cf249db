"""One behaviour suite, both CRMs: the adapters through the real client libraries, over
HTTP, against the sandbox (DESIGN.md invariant 7). Every test runs once per CRM."""

import time
from datetime import timedelta

import pytest

from integrations.crm import errors, hubspot, salesforce
from integrations.crm.base import by_domain, by_email, search_all
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
from integrations.sandbox.models import Access, SandboxRecord, SandboxRequest

DEAL, CONTACT, COMPANY = ObjectType.DEAL, ObjectType.CONTACT, ObjectType.COMPANY


def _ids(records) -> list[str]:
    return [record.id for record in records]


def test_describe_lists_standard_and_custom_properties_with_types(crm):
    crm.custom_field(DEAL, "forecast", "enumeration", options=["commit", "pipeline"])

    specs = {spec.name: spec for spec in crm.client.describe(DEAL)}

    amount = specs[crm.field(DEAL, "amount")]
    assert amount.type is PropertyType.NUMBER
    stage = specs[crm.field(DEAL, "stage")]
    assert stage.type is PropertyType.ENUMERATION
    assert crm.stage("closedwon") in stage.option_values()
    forecast = specs[crm.field(DEAL, "forecast")]
    assert forecast.custom
    assert forecast.option_values() == ("commit", "pipeline")
    assert specs[crm.last_modified(DEAL)].read_only
    name_length = 65_536 if crm.provider == "hubspot" else 120
    assert specs[crm.field(DEAL, "name")].max_length == name_length
    assert amount.max_length is None


def test_search_by_email_finds_contacts_case_insensitively(crm):
    jane = crm.add(CONTACT, {"first_name": "Jane", "email": "jane@acme.example"})
    crm.add(CONTACT, {"first_name": "Omar", "email": "omar@globex.example"})

    page = crm.client.search(by_email(CONTACT, crm.field(CONTACT, "email"), ["Jane@Acme.example"]))

    assert _ids(page.records) == [jane.crm_id]
    assert page.total == 1


def test_search_by_domain_finds_the_company(crm):
    domain = "acme.example" if crm.provider == "hubspot" else "https://www.acme.example"
    acme = crm.add(COMPANY, {"name": "Acme", "domain": domain})
    crm.add(COMPANY, {"name": "Globex", "domain": "globex.example"})

    page = crm.client.search(by_domain(COMPANY, crm.field(COMPANY, "domain"), "www.acme.example"))

    assert _ids(page.records) == [acme.crm_id]


def test_search_filters_and_sorts_by_property(crm):
    small = crm.add(DEAL, {"name": "Small", "amount": 1000, "stage": crm.stage("qualifiedtobuy")})
    large = crm.add(DEAL, {"name": "Large", "amount": 90000, "stage": crm.stage("qualifiedtobuy")})
    crm.add(DEAL, {"name": "Won", "amount": 50000, "stage": crm.stage("closedwon")})
    amount = crm.field(DEAL, "amount")

    page = crm.client.search(
        SearchQuery(
            DEAL,
            filter_groups=(
                (
                    SearchFilter(
                        crm.field(DEAL, "stage"), Operator.EQ, crm.stage("qualifiedtobuy")
                    ),
                    SearchFilter(amount, Operator.GTE, "500"),
                ),
            ),
            properties=(crm.field(DEAL, "name"), amount),
            sorts=(Sort(amount, descending=True),),
        )
    )

    assert _ids(page.records) == [large.crm_id, small.crm_id]
    assert page.records[0].properties[amount] == "90000"


def test_search_pages_past_200_records(crm):
    created = crm.bulk_add(DEAL, [{"name": f"Deal {i:03d}", "amount": i} for i in range(450)])

    query = SearchQuery(DEAL, properties=(crm.field(DEAL, "name"),), limit=200)
    first = crm.client.search(query)
    everything = search_all(crm.client, query)

    assert len(first.records) == 200
    assert first.next_cursor is not None
    assert first.total == 450
    assert sorted(_ids(everything)) == sorted(record.crm_id for record in created)


def test_get_returns_normalised_values_and_change_times(crm):
    edited_at = store.now() - timedelta(days=3)
    deal = crm.add(
        DEAL,
        {
            "name": "Acme platform",
            "amount": 50000,
            "close_date": "2026-12-31",
            "stage": crm.stage("qualifiedtobuy"),
        },
        modified_at={"amount": edited_at},
    )
    fields = [crm.field(DEAL, name) for name in ("name", "amount", "close_date", "next_step")]

    record = crm.client.get(DEAL, deal.crm_id, fields)

    assert record.id == deal.crm_id
    assert record.properties[crm.field(DEAL, "amount")] == "50000"
    assert record.properties[crm.field(DEAL, "close_date")] == "2026-12-31"
    assert record.properties[crm.field(DEAL, "name")] == "Acme platform"
    assert record.properties.get(crm.field(DEAL, "next_step")) is None
    changed = record.modified_at[crm.field(DEAL, "amount")]
    assert changed is not None
    if crm.provider == "hubspot":  # per-property history
        assert abs((changed - edited_at).total_seconds()) < 1
    else:  # Salesforce tells only when the record last changed
        assert changed >= edited_at - timedelta(seconds=1)


def test_get_many_keeps_order_and_skips_missing_ids(crm):
    first = crm.add(DEAL, {"name": "First"})
    second = crm.add(DEAL, {"name": "Second"})
    gone = crm.add(DEAL, {"name": "Gone"})
    store.delete_record(gone)

    records = crm.client.get_many(
        DEAL, [second.crm_id, gone.crm_id, first.crm_id], [crm.field(DEAL, "name")]
    )

    assert _ids(records) == [second.crm_id, first.crm_id]


def test_associations_are_read_both_ways(crm):
    acme = crm.add(COMPANY, {"name": "Acme"})
    jane = crm.add(CONTACT, {"email": "jane@acme.example"}, associations=[acme])
    deal = crm.add(DEAL, {"name": "Acme platform"}, associations=[acme, jane])

    assert crm.client.associated_ids(CONTACT, jane.crm_id, COMPANY) == [acme.crm_id]
    assert crm.client.associated_ids(COMPANY, acme.crm_id, DEAL) == [deal.crm_id]
    assert crm.client.associated_ids(DEAL, deal.crm_id, CONTACT) == [jane.crm_id]
    assert crm.client.associated_ids(CONTACT, jane.crm_id, DEAL) == [deal.crm_id]


def test_associations_many_answers_every_id_asked_in_order(crm):
    acme = crm.add(COMPANY, {"name": "Acme"})
    globex = crm.add(COMPANY, {"name": "Globex"})
    lonely = crm.add(COMPANY, {"name": "Lonely"})
    jane = crm.add(CONTACT, {"email": "jane@acme.example"}, associations=[acme])
    omar = crm.add(CONTACT, {"email": "omar@globex.example"}, associations=[globex])
    platform = crm.add(DEAL, {"name": "Acme platform"}, associations=[acme, jane])
    renewal = crm.add(DEAL, {"name": "Acme renewal"}, associations=[acme, jane])
    pilot = crm.add(DEAL, {"name": "Globex pilot"}, associations=[globex])
    asked = [globex.crm_id, lonely.crm_id, acme.crm_id]

    by_company = crm.client.associations_many(COMPANY, asked, DEAL)
    by_contact = crm.client.associations_many(CONTACT, [omar.crm_id, jane.crm_id], DEAL)
    by_deal = crm.client.associations_many(DEAL, [pilot.crm_id, platform.crm_id], COMPANY)

    assert list(by_company) == asked
    assert by_company == {
        globex.crm_id: [pilot.crm_id],
        lonely.crm_id: [],
        acme.crm_id: [platform.crm_id, renewal.crm_id],
    }
    assert by_contact == {omar.crm_id: [], jane.crm_id: [platform.crm_id, renewal.crm_id]}
    assert by_deal == {pilot.crm_id: [globex.crm_id], platform.crm_id: [acme.crm_id]}
    assert crm.client.associations_many(COMPANY, [], DEAL) == {}


def test_associations_many_sends_one_request_per_chunk(crm, monkeypatch):
    monkeypatch.setattr(hubspot, "ASSOCIATIONS_BATCH", 2)
    monkeypatch.setattr(salesforce, "IDS_PER_QUERY", 2)
    companies = [crm.add(COMPANY, {"name": f"Company {n}"}) for n in range(5)]
    deals = {
        company.crm_id: crm.add(DEAL, {"name": f"{n}"}, associations=[company]).crm_id
        for n, company in enumerate(companies)
        if n % 2 == 0
    }
    asked = [company.crm_id for company in reversed(companies)]
    before = SandboxRequest.objects.filter(account=crm.account).count()

    found = crm.client.associations_many(COMPANY, asked, DEAL)

    assert SandboxRequest.objects.filter(account=crm.account).count() - before == 3
    assert list(found) == asked
    assert found == {
        company_id: [deals[company_id]] if company_id in deals else [] for company_id in asked
    }


def test_a_contacts_company_is_its_primary_company_id(crm):
    acme = crm.add(COMPANY, {"name": "Acme"})
    jane = crm.add(CONTACT, {"email": "jane@acme.example"}, associations=[acme])
    loner = crm.add(CONTACT, {"email": "loner@nowhere.example"})
    company = crm.field(CONTACT, "company")

    read = crm.client.get(CONTACT, jane.crm_id, [company])
    many = crm.client.get_many(CONTACT, [jane.crm_id, loner.crm_id], [company])
    found = crm.client.search(by_email(CONTACT, crm.field(CONTACT, "email"), ["jane@acme.example"]))

    assert read.properties[company] == acme.crm_id
    assert [record.properties[company] for record in many] == [acme.crm_id, None]
    assert found.records[0].id == jane.crm_id
    assert (
        crm.client.search(
            SearchQuery(
                CONTACT,
                filter_groups=((SearchFilter(company, Operator.EQ, acme.crm_id),),),
                properties=(company,),
            )
        )
        .records[0]
        .properties[company]
        == acme.crm_id
    )
    assert company in {spec.name for spec in crm.client.describe(CONTACT)}


def test_update_writes_only_the_given_properties(crm):
    deal = crm.add(DEAL, {"name": "Acme", "amount": 100})
    next_step = crm.field(DEAL, "next_step")

    result = crm.client.update(DEAL, deal.crm_id, {next_step: "Send the MSA"})

    assert result.id == deal.crm_id
    record = crm.client.get(DEAL, deal.crm_id, [next_step, crm.field(DEAL, "amount")])
    assert record.properties[next_step] == "Send the MSA"
    assert record.properties[crm.field(DEAL, "amount")] == "100"
    assert crm.written() == {deal.crm_id: {next_step: crm.native_value("Send the MSA")}}


def test_a_precondition_refuses_to_clobber_a_newer_human_edit(crm):
    deal = crm.add(DEAL, {"name": "Acme", "amount": 50000})
    amount = crm.field(DEAL, "amount")
    read = crm.client.get(DEAL, deal.crm_id, [amount])
    crm.human_edit(deal, {amount: 60000})

    with pytest.raises(errors.Conflict):
        crm.client.update(
            DEAL,
            deal.crm_id,
            {amount: "75000"},
            precondition=Precondition(read.updated_at or store.now(), {amount: "50000"}),
        )

    assert crm.client.get(DEAL, deal.crm_id, [amount]).properties[amount] == "60000"
    assert crm.written() == {}


def test_a_precondition_lets_an_unchanged_record_be_written(crm):
    deal = crm.add(DEAL, {"name": "Acme", "amount": 50000})
    amount = crm.field(DEAL, "amount")
    read = crm.client.get(DEAL, deal.crm_id, [amount])

    crm.client.update(
        DEAL,
        deal.crm_id,
        {amount: "75000"},
        precondition=Precondition(read.updated_at, {amount: "50000"}),
    )

    assert crm.client.get(DEAL, deal.crm_id, [amount]).properties[amount] == "75000"


def test_update_many_writes_every_record(crm):
    deals = crm.bulk_add(DEAL, [{"name": f"Deal {i}"} for i in range(230)])
    next_step = crm.field(DEAL, "next_step")

    results = crm.client.update_many(
        DEAL, {deal.crm_id: {next_step: "Call back"} for deal in deals}
    )

    assert sorted(results.ids()) == sorted(deal.crm_id for deal in deals)
    assert results.failed == {}
    assert len(crm.written()) == 230


def test_update_many_reports_each_record_it_did_not_write(crm):
    deals = crm.bulk_add(DEAL, [{"name": f"Deal {i}"} for i in range(3)])
    missing = crm.missing_id(DEAL)
    next_step = crm.field(DEAL, "next_step")

    results = crm.client.update_many(
        DEAL,
        {
            **{deal.crm_id: {next_step: "Call back"} for deal in deals},
            missing: {next_step: "Call back"},
        },
    )

    assert sorted(results.ids()) == sorted(deal.crm_id for deal in deals)
    assert list(results.failed) == [missing]
    assert isinstance(results.failed[missing], errors.CrmError)
    assert missing not in crm.written()


def test_create_with_associations(crm):
    acme = crm.add(COMPANY, {"name": "Acme"})

    created = crm.client.create(
        DEAL,
        {
            crm.field(DEAL, "name"): "Acme analytics",
            crm.field(DEAL, "amount"): "12000",
            crm.field(DEAL, "stage"): crm.stage("appointmentscheduled"),
            crm.field(DEAL, "close_date"): "2027-01-31",
        },
        associations={COMPANY: [acme.crm_id]},
    )

    assert created.created
    assert crm.client.associated_ids(DEAL, created.id, COMPANY) == [acme.crm_id]
    record = crm.client.get(DEAL, created.id, [crm.field(DEAL, "amount")])
    assert record.properties[crm.field(DEAL, "amount")] == "12000"


def test_owners_and_deal_stages_come_from_the_crm(crm):
    owners = {owner.email: owner for owner in crm.client.owners()}
    stages = {stage.value: stage for stage in crm.client.deal_stages()}

    assert crm.user.email in owners
    won, lost = stages[crm.stage("closedwon")], stages[crm.stage("closedlost")]
    assert (won.closed, won.won) == (True, True)
    assert (lost.closed, lost.won) == (True, False)
    assert not stages[crm.stage("qualifiedtobuy")].closed


# --- every error class ---------------------------------------------------------------------


def test_a_missing_record_is_not_found(crm):
    missing = crm.missing_id(DEAL)

    with pytest.raises(errors.NotFound) as caught:
        crm.client.get(DEAL, missing, [crm.field(DEAL, "name")])

    assert caught.value.status == 404


def test_an_unknown_property_is_a_validation_error_naming_it(crm):
    deal = crm.add(DEAL, {"name": "Acme"})

    with pytest.raises(errors.ValidationFailed) as caught:
        crm.client.update(DEAL, deal.crm_id, {"no_such_field__x": "1"})

    assert "no_such_field__x" in caught.value.fields or "no_such_field__x" in caught.value.message
    assert crm.written() == {}


def test_a_read_only_property_is_refused(crm):
    deal = crm.add(DEAL, {"name": "Acme"})

    with pytest.raises(errors.ValidationFailed) as caught:
        crm.client.update(DEAL, deal.crm_id, {crm.last_modified(DEAL): "2020-01-01T00:00:00Z"})

    assert crm.last_modified(DEAL) in caught.value.fields


def test_a_token_without_write_access_is_permission_denied(crm):
    deal = crm.add(DEAL, {"name": "Acme"})
    if crm.provider == "hubspot":  # an app granted read scopes only: 403 MISSING_SCOPES
        client, status = crm.client_for(crm.user, scopes=["crm.objects.deals.read"]), 403
    else:  # a user the record is shared with read-only: 400 INSUFFICIENT_ACCESS_OR_READONLY
        viewer = seed.add_user(
            crm.account, "val@seller.example", access=Access.OWNED, read_access=Access.ALL
        )
        client, status = crm.client_for(viewer), 400

    with pytest.raises(errors.PermissionDenied) as caught:
        client.update(DEAL, deal.crm_id, {crm.field(DEAL, "next_step"): "Send the MSA"})

    assert caught.value.status == status
    assert crm.written() == {}


def test_exhausted_rate_limits_say_when_to_retry(crm):
    crm.add(DEAL, {"name": "Acme"})
    crm.limit_to_one_request()

    crm.client.search(SearchQuery(DEAL))  # the one request the limit allows

    with pytest.raises(errors.RateLimited) as caught:
        crm.client.search(SearchQuery(DEAL))

    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 0


def test_an_expired_token_is_auth_expired(crm):
    client = crm.client_for(crm.user, expires_in=timedelta(seconds=-5))

    with pytest.raises(errors.AuthExpired) as caught:
        client.search(SearchQuery(DEAL))

    assert caught.value.status == 401


def test_server_errors_are_transient(crm):
    crm.inject(error_rate=1.0)

    with pytest.raises(errors.Transient):
        crm.client.search(SearchQuery(DEAL))


def test_a_dropped_connection_is_transient(crm):
    crm.inject(drop_rate=1.0)

    with pytest.raises(errors.Transient):
        crm.client.search(SearchQuery(DEAL))


def test_a_timeout_is_transient(crm):
    crm.inject(timeout_rate=1.0, timeout_seconds=1.0)
    client = crm.client_for(crm.user, timeout=0.3)

    with pytest.raises(errors.Transient):
        client.search(SearchQuery(DEAL))

    # The sandbox answers 504 once its delay is over; let it finish inside this test.
    deadline = time.monotonic() + 5
    while not SandboxRequest.objects.filter(account=crm.account, status=504).exists():
        assert time.monotonic() < deadline, "the sandbox never finished the delayed request"
        time.sleep(0.05)


def test_record_access_is_enforced_the_crms_way(crm):
    """Salesforce hides records outside the user's sharing; HubSpot's API does not scope
    by user at all (the guard applies record access for HubSpot, see DESIGN.md)."""
    rep = crm.add_user("riley@seller.example", access="owned")
    others = crm.add(DEAL, {"name": "Someone else's deal"}, owner=crm.user)
    client = crm.client_for(rep)

    if crm.provider == "salesforce":
        with pytest.raises(errors.NotFound):
            client.get(DEAL, others.crm_id, [crm.field(DEAL, "name")])
        assert client.search(SearchQuery(DEAL)).total == 0
    else:
        assert client.get(DEAL, others.crm_id, [crm.field(DEAL, "name")]).id == others.crm_id
    assert SandboxRecord.objects.filter(pk=others.pk).exists()
    assert SandboxRequest.objects.filter(account=crm.account, user=rep).exists()
