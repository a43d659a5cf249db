"""What differs between the CRMs besides their wire protocol (DESIGN.md invariant 7).

A profile names each object and canonical field in the CRM's own terms, names custom
fields, and says how records are associated. Everything else in the product speaks
canonical names and asks the profile.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass

from integrations.crm.types import ObjectType, Provider

CANONICAL_FIELDS: dict[ObjectType, tuple[str, ...]] = {
    ObjectType.COMPANY: ("name", "domain", "industry", "owner"),
    ObjectType.CONTACT: (
        "first_name",
        "last_name",
        "email",
        "phone",
        "title",
        "owner",
        "company",  # the primary company's id (read-only on HubSpot)
    ),
    ObjectType.DEAL: (
        "name",
        "amount",
        "stage",
        "close_date",
        "next_step",
        "description",
        "owner",
    ),
}


@dataclass(frozen=True)
class AssociationPath:
    """How ``source`` records point at ``target`` records in one CRM."""

    source: ObjectType
    target: ObjectType
    # HubSpot: the v4 default association type id. Salesforce: the lookup field on
    # ``source`` (Contact.AccountId), or the junction object (OpportunityContactRole).
    hubspot_type_id: int | None = None
    salesforce_lookup: str | None = None
    salesforce_junction: tuple[str, str, str] | None = None  # object, source field, target field


@dataclass(frozen=True)
class CrmProfile:
    provider: Provider
    object_names: Mapping[ObjectType, str]
    fields: Mapping[ObjectType, Mapping[str, str]]
    last_modified: Mapping[ObjectType, str]

    def object_name(self, object_type: ObjectType) -> str:
        return self.object_names[object_type]

    def object_type_of(self, native: str) -> ObjectType:
        for object_type, name in self.object_names.items():
            if name.lower() == native.lower():
                return object_type
        raise KeyError(f"{native!r} is not an object CRM Steward works with on {self.provider}")

    def native_field(self, object_type: ObjectType, field: str) -> str:
        """The CRM's name for a canonical field; any other name is a custom or native one."""
        mapped = self.fields[object_type].get(field)
        if mapped is not None:
            return mapped
        return self.custom_field(field) if _looks_canonical_custom(field) else field

    def canonical_field(self, object_type: ObjectType, native: str) -> str:
        for canonical, name in self.fields[object_type].items():
            if name == native:
                return canonical
        if self.provider is Provider.SALESFORCE and native.endswith("__c"):
            return native[: -len("__c")].lower()
        return native

    def custom_field(self, name: str) -> str:
        """``pain_points`` -> ``pain_points`` (HubSpot) / ``Pain_Points__c`` (Salesforce)."""
        if self.provider is Provider.HUBSPOT:
            return name
        return "_".join(part.capitalize() for part in name.split("_")) + "__c"


def _looks_canonical_custom(field: str) -> bool:
    # Lower-case snake case is how scenario files and workflows name custom fields;
    # anything else (``Pain_Points__c``, ``hs_next_step``) is already native.
    return bool(re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", field))


HUBSPOT = CrmProfile(
    provider=Provider.HUBSPOT,
    object_names={
        ObjectType.COMPANY: "companies",
        ObjectType.CONTACT: "contacts",
        ObjectType.DEAL: "deals",
    },
    fields={
        ObjectType.COMPANY: {
            "name": "name",
            "domain": "domain",
            "industry": "industry",
            "owner": "hubspot_owner_id",
        },
        ObjectType.CONTACT: {
            "first_name": "firstname",
            "last_name": "lastname",
            "email": "email",
            "phone": "phone",
            "title": "jobtitle",
            "owner": "hubspot_owner_id",
            # HubSpot keeps the primary company's id on the contact (read-only); its
            # ``company`` property is free text (a company name), not a link.
            "company": "associatedcompanyid",
        },
        ObjectType.DEAL: {
            "name": "dealname",
            "amount": "amount",
            "stage": "dealstage",
            "close_date": "closedate",
            "next_step": "hs_next_step",
            "description": "description",
            "owner": "hubspot_owner_id",
        },
    },
    last_modified={
        ObjectType.COMPANY: "hs_lastmodifieddate",
        ObjectType.CONTACT: "lastmodifieddate",
        ObjectType.DEAL: "hs_lastmodifieddate",
    },
)

SALESFORCE = CrmProfile(
    provider=Provider.SALESFORCE,
    object_names={
        ObjectType.COMPANY: "Account",
        ObjectType.CONTACT: "Contact",
        ObjectType.DEAL: "Opportunity",
    },
    fields={
        ObjectType.COMPANY: {
            "name": "Name",
            "domain": "Website",
            "industry": "Industry",
            "owner": "OwnerId",
        },
        ObjectType.CONTACT: {
            "first_name": "FirstName",
            "last_name": "LastName",
            "email": "Email",
            "phone": "Phone",
            "title": "Title",
            "owner": "OwnerId",
            "company": "AccountId",
        },
        ObjectType.DEAL: {
            "name": "Name",
            "amount": "Amount",
            "stage": "StageName",
            "close_date": "CloseDate",
            "next_step": "NextStep",
            "description": "Description",
            "owner": "OwnerId",
        },
    },
    last_modified=dict.fromkeys(ObjectType, "LastModifiedDate"),
)

PROFILES: dict[Provider, CrmProfile] = {Provider.HUBSPOT: HUBSPOT, Provider.SALESFORCE: SALESFORCE}

# contact<->company, deal<->company, deal<->contact, in both CRMs.
ASSOCIATIONS: tuple[AssociationPath, ...] = (
    AssociationPath(ObjectType.CONTACT, ObjectType.COMPANY, 279, salesforce_lookup="AccountId"),
    AssociationPath(ObjectType.DEAL, ObjectType.COMPANY, 341, salesforce_lookup="AccountId"),
    AssociationPath(
        ObjectType.DEAL,
        ObjectType.CONTACT,
        3,
        salesforce_junction=("OpportunityContactRole", "OpportunityId", "ContactId"),
    ),
)


def association_path(source: ObjectType, target: ObjectType) -> tuple[AssociationPath, bool]:
    """The path between two object types, and whether it runs backwards (target -> source)."""
    for path in ASSOCIATIONS:
        if (path.source, path.target) == (source, target):
            return path, False
        if (path.source, path.target) == (target, source):
            return path, True
    raise KeyError(f"CRM Steward does not associate {source} with {target}")
