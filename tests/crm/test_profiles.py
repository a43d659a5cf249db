"""Canonical names map to each CRM's own, and back."""

import pytest

from integrations.crm.profiles import HUBSPOT, PROFILES, SALESFORCE, association_path
from integrations.crm.types import ObjectType


@pytest.mark.parametrize(
    ("object_type", "field", "hubspot", "salesforce"),
    [
        (ObjectType.COMPANY, "domain", "domain", "Website"),
        (ObjectType.CONTACT, "title", "jobtitle", "Title"),
        (ObjectType.DEAL, "stage", "dealstage", "StageName"),
        (ObjectType.DEAL, "close_date", "closedate", "CloseDate"),
        (ObjectType.DEAL, "next_step", "hs_next_step", "NextStep"),
        (ObjectType.DEAL, "owner", "hubspot_owner_id", "OwnerId"),
        (ObjectType.DEAL, "pain_points", "pain_points", "Pain_Points__c"),
        (ObjectType.DEAL, "Pain_Points__c", "Pain_Points__c", "Pain_Points__c"),
    ],
)
def test_fields_map_to_native_names(object_type, field, hubspot, salesforce):
    assert HUBSPOT.native_field(object_type, field) == hubspot
    assert SALESFORCE.native_field(object_type, field) == salesforce


@pytest.mark.parametrize("profile", PROFILES.values(), ids=lambda p: p.provider)
def test_every_canonical_field_round_trips(profile):
    for object_type, fields in profile.fields.items():
        for canonical, native in fields.items():
            assert profile.canonical_field(object_type, native) == canonical


def test_objects_map_both_ways():
    assert SALESFORCE.object_name(ObjectType.DEAL) == "Opportunity"
    assert HUBSPOT.object_type_of("DEALS") is ObjectType.DEAL
    with pytest.raises(KeyError, match="Lead"):
        SALESFORCE.object_type_of("Lead")


def test_association_paths_run_both_ways():
    path, reverse = association_path(ObjectType.COMPANY, ObjectType.CONTACT)
    assert (path.source, path.target, reverse) == (ObjectType.CONTACT, ObjectType.COMPANY, True)
    assert path.hubspot_type_id == 279
    assert path.salesforce_lookup == "AccountId"
    junction, _ = association_path(ObjectType.DEAL, ObjectType.CONTACT)
    assert junction.salesforce_junction == ("OpportunityContactRole", "OpportunityId", "ContactId")
