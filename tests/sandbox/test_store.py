"""The sandbox's state layer: ids, history, access, associations."""

import re
from datetime import timedelta

import pytest

from integrations.sandbox import store
from integrations.sandbox.models import (
    Access,
    Provider,
    SandboxAccount,
    SandboxAssociation,
    SandboxUser,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    return SandboxAccount.objects.create(
        provider=Provider.SALESFORCE, external_id="00Dx", name="Org"
    )


@pytest.fixture
def portal():
    return SandboxAccount.objects.create(
        provider=Provider.HUBSPOT, external_id="123", name="Portal"
    )


def _user(account, email, access=Access.ALL, team=""):
    return SandboxUser.objects.create(
        account=account, email=email, crm_user_id=email, owner_id=email, access=access, team=team
    )


def test_salesforce_ids_are_18_characters_with_a_valid_checksum(account):
    ids = store.new_ids(account, "Opportunity", 3)

    assert len(set(ids)) == 3
    for crm_id in ids:
        assert re.fullmatch(r"006[0-9A-Za-z]{15}", crm_id)
    # The checksum encodes which of each five characters are upper case.
    assert store.salesforce_id("001", 1) == "0015g0000000001AAA"
    assert store.salesforce_id("001", 10) == "0015g000000000AAAQ"  # "A" is 5th in chunk 3


def test_hubspot_ids_are_numeric_and_never_reused(portal):
    first = store.new_ids(portal, "deals", 2)
    second = store.new_ids(portal, "contacts", 1)

    assert all(crm_id.isdigit() for crm_id in first + second)
    assert len(set(first + second)) == 3


def test_an_update_records_history_only_for_changed_values(portal):
    record = store.create_record(portal, "deals", {"amount": "100", "dealname": "Acme"})
    later = record.updated_at + timedelta(minutes=5)

    changed = store.update_record(
        record, {"amount": "200", "dealname": "Acme"}, source_type="CRM_UI", at=later
    )

    assert changed == {"amount": "200"}
    history = store.history([record], ["amount", "dealname"])[record.pk]
    assert [change.value for change in history["amount"]] == ["200", "100"]
    assert history["amount"][0].source_type == "CRM_UI"
    assert len(history["dealname"]) == 1
    record.refresh_from_db()
    assert record.updated_at == later


def test_clearing_a_value_removes_it_and_keeps_the_history(portal):
    record = store.create_record(portal, "deals", {"hs_next_step": "Send MSA"})

    store.update_record(record, {"hs_next_step": None})

    record.refresh_from_db()
    assert "hs_next_step" not in record.values
    latest = store.latest_changes([record], ["hs_next_step"])[record.pk]["hs_next_step"]
    assert latest.value is None


def test_access_levels_follow_owner_and_team(account):
    owner = _user(account, "owner@x.example", Access.OWNED, team="west")
    teammate = _user(account, "mate@x.example", Access.TEAM, team="west")
    outsider = _user(account, "east@x.example", Access.TEAM, team="east")
    admin = _user(account, "admin@x.example", Access.ALL)
    record = store.create_record(account, "Opportunity", {"Name": "Deal"}, owner=owner)
    records = store.live_records(account, "Opportunity")

    assert [u.email for u in (owner, teammate, outsider, admin) if store.can_access(u, record)] == [
        "owner@x.example",
        "mate@x.example",
        "admin@x.example",
    ]
    assert list(store.visible_to(outsider, records)) == []
    assert list(store.visible_to(teammate, records)) == [record]


def test_deleted_records_are_not_live(account):
    record = store.create_record(account, "Account", {"Name": "Gone"})

    store.delete_record(record)

    assert not store.live_records(account, "Account").exists()


def test_associations_are_stored_in_both_directions_once(portal):
    contact = store.create_record(portal, "contacts", {"email": "jane@acme.example"})
    company = store.create_record(portal, "companies", {"name": "Acme"})

    store.associate(contact, company, type_id=279, reverse_type_id=280)
    store.associate(contact, company, type_id=279, reverse_type_id=280)

    links = sorted(SandboxAssociation.objects.values_list("type_id", flat=True))
    assert links == [279, 280]
    assert store.dissociate(company, contact) == 2


def test_bulk_create_writes_history_for_every_value(portal):
    records = store.bulk_create_records(
        portal,
        "companies",
        [({"name": f"Co {i}", "domain": f"co{i}.example"}, None) for i in range(50)],
    )

    assert len(records) == 50
    latest = store.latest_changes(records, ["name", "domain"])
    assert all(set(latest[record.pk]) == {"name", "domain"} for record in records)
