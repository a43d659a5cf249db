"""Salesforce describe metadata the sandbox serves: recorded bodies, and a few derived ones.

Account, Contact, Opportunity, OpportunityContactRole and the global describe are real
bodies recorded from an org (describes/, from CumulusCI's cassettes, BSD-3). The org they
came from had a few custom fields of its own on Account; a fresh sandbox org leaves those
out (``custom: true``) and gets custom fields only through ``schema.custom_property``.

User, OpportunityStage and UserRecordAccess have no recording. Their describes are derived
here: every field dict is a recorded field of the same type with its name, label and a few
documented properties replaced, so each one keeps the exact key set of a real field, and
the object-level body is the recorded OpportunityContactRole body with its identity replaced.
Field lists and lengths follow Salesforce's object reference for those objects.
"""

import copy
import json
from functools import cache
from pathlib import Path

DESCRIBES = Path(__file__).with_name("describes")
RECORDED_OBJECTS = ("Account", "Contact", "Opportunity", "OpportunityContactRole")
DERIVED_OBJECTS = ("User", "OpportunityStage", "UserRecordAccess")
OBJECTS = RECORDED_OBJECTS + DERIVED_OBJECTS
# Records of these objects belong to owners and follow the user's sharing; the junction
# follows its opportunity (sharing "controlled by parent"); the rest are readable by all.
SHARED_OBJECTS = ("Account", "Contact", "Opportunity")

# The recorded field each derived field is copied from, per describe type.
_TEMPLATES = {
    "id": ("Account", "Id"),
    "string": ("Contact", "Title"),
    "textarea": ("Account", "Description"),
    "email": ("Contact", "Email"),
    "phone": ("Contact", "Phone"),
    "boolean": ("Opportunity", "IsPrivate"),
    "int": ("Account", "NumberOfEmployees"),
    "double": ("Account", "BillingLatitude"),
    "percent": ("Opportunity", "Probability"),
    "date": ("Contact", "Birthdate"),
    "datetime": ("Contact", "EmailBouncedDate"),
    "picklist": ("Opportunity", "Type"),
    "reference": ("Contact", "ReportsToId"),
}


@cache
def recorded(object_name: str) -> dict:
    """A recorded describe body (treat as read-only: it is shared)."""
    path = DESCRIBES / f"GET_sobjects_{object_name}_describe.json"
    return json.loads(path.read_text(encoding="utf-8"))


def template_field(kind: str, **changes: object) -> dict:
    """A recorded field dict of describe type ``kind`` with ``changes`` applied."""
    object_name, field_name = _TEMPLATES[kind]
    source = next(f for f in recorded(object_name)["fields"] if f["name"] == field_name)
    field = copy.deepcopy(source)
    field.update(
        {
            "calculatedFormula": None,
            "compoundFieldName": None,
            "defaultValue": False if kind == "boolean" else None,
            "inlineHelpText": None,
            "relationshipName": None,
            "referenceTo": [],
            "picklistValues": [],
        }
    )
    field.update(changes)
    if field["type"] in ("string", "textarea", "email", "phone", "picklist"):
        field["byteLength"] = field["length"] * 3
    return dict(sorted(field.items()))


def _system(label: str, name: str, kind: str, **changes: object) -> dict:
    """A field Salesforce maintains: never created or updated through the API."""
    return template_field(
        kind, name=name, label=label, createable=False, updateable=False, **changes
    )


def _user_reference(name: str, label: str, relationship: str) -> dict:
    return _system(
        label,
        name,
        "reference",
        referenceTo=["User"],
        relationshipName=relationship,
        nillable=False,
        defaultedOnCreate=True,
    )


def _audit_fields() -> list[dict]:
    return [
        _system("Created Date", "CreatedDate", "datetime", nillable=False, defaultedOnCreate=True),
        _user_reference("CreatedById", "Created By ID", "CreatedBy"),
        _system(
            "Last Modified Date",
            "LastModifiedDate",
            "datetime",
            nillable=False,
            defaultedOnCreate=True,
        ),
        _user_reference("LastModifiedById", "Last Modified By ID", "LastModifiedBy"),
        _system(
            "System Modstamp",
            "SystemModstamp",
            "datetime",
            nillable=False,
            defaultedOnCreate=True,
        ),
    ]


def _options(*values: str) -> list[dict]:
    return [
        {"active": True, "defaultValue": False, "label": value, "validFor": None, "value": value}
        for value in values
    ]


def _id_field(label: str) -> dict:
    return _system(label, "Id", "id")


def _user_fields() -> list[dict]:
    def editable(label: str, name: str, kind: str, **changes: object) -> dict:
        return template_field(kind, name=name, label=label, **changes)

    return [
        _id_field("User ID"),
        editable(
            "Username", "Username", "string", length=80, nillable=False, unique=True, idLookup=True
        ),
        editable("Last Name", "LastName", "string", length=80, nillable=False),
        editable("First Name", "FirstName", "string", length=40),
        _system("Full Name", "Name", "string", length=121, nillable=False, nameField=True),
        editable("Company Name", "CompanyName", "string", length=80),
        editable("Department", "Department", "string", length=80),
        editable("Title", "Title", "string", length=80),
        editable("Email", "Email", "email", length=128, nillable=False, idLookup=True),
        editable("Alias", "Alias", "string", length=8, nillable=False),
        editable("Active", "IsActive", "boolean", nillable=False, defaultedOnCreate=True),
        _system(
            "User Type",
            "UserType",
            "picklist",
            length=40,
            restrictedPicklist=True,
            picklistValues=_options("Standard", "PowerPartner", "CsnOnly", "Guest"),
        ),
        editable(
            "Manager ID", "ManagerId", "reference", referenceTo=["User"], relationshipName="Manager"
        ),
        *_audit_fields(),
    ]


def _stage_fields() -> list[dict]:
    categories = ("Omitted", "Pipeline", "BestCase", "Forecast", "Closed")
    return [
        _id_field("Opportunity Stage ID"),
        _system("Master Label", "MasterLabel", "string", length=255, nillable=False),
        _system("Api Name", "ApiName", "string", length=255, nillable=False),
        _system("Is Active", "IsActive", "boolean", nillable=False),
        _system("Sort Order", "SortOrder", "int"),
        _system("Is Closed", "IsClosed", "boolean", nillable=False),
        _system("Is Won", "IsWon", "boolean", nillable=False),
        _system(
            "Forecast Category",
            "ForecastCategory",
            "picklist",
            length=40,
            nillable=False,
            restrictedPicklist=True,
            picklistValues=_options(*categories),
        ),
        _system(
            "Forecast Category Name",
            "ForecastCategoryName",
            "picklist",
            length=255,
            restrictedPicklist=True,
            picklistValues=_options("Omitted", "Pipeline", "Best Case", "Commit", "Closed"),
        ),
        _system("Probability (%)", "DefaultProbability", "percent", precision=3, scale=0),
        _system("Description", "Description", "string", length=255),
        *_audit_fields(),
    ]


def _record_access_fields() -> list[dict]:
    flags = [
        ("Read Access", "HasReadAccess"),
        ("Edit Access", "HasEditAccess"),
        ("Delete Access", "HasDeleteAccess"),
        ("Transfer Access", "HasTransferAccess"),
        ("All Access", "HasAllAccess"),
    ]
    return [
        _id_field("User Record Access ID"),
        _system("User ID", "UserId", "reference", referenceTo=["User"], nillable=False),
        _system("Record ID", "RecordId", "reference", nillable=False),
        *(_system(label, name, "boolean", nillable=False) for label, name in flags),
        _system(
            "Max Access Level",
            "MaxAccessLevel",
            "picklist",
            length=40,
            restrictedPicklist=True,
            picklistValues=_options("None", "Read", "Edit", "Delete", "Transfer", "All"),
        ),
    ]


def _global_entry(object_name: str) -> dict:
    for entry in recorded("Global")["sobjects"]:
        if entry["name"] == object_name:
            return entry
    # OpportunityStage is not in the recorded global describe: shaped like UserRecordAccess,
    # another read-only setup object.
    entry = copy.deepcopy(_global_entry("UserRecordAccess"))
    entry.update(
        {
            "keyPrefix": "01J",
            "label": "Opportunity Stage",
            "labelPlural": "Opportunity Stage",
            "name": "OpportunityStage",
            "replicateable": True,
            "retrieveable": True,
            "updateable": False,
            "urls": {
                key: value.replace("UserRecordAccess", "OpportunityStage")
                for key, value in entry["urls"].items()
            },
        }
    )
    return entry


@cache
def global_entry(object_name: str) -> dict:
    """The object's entry in the global describe (``GET /sobjects``)."""
    return _global_entry(object_name)


@cache
def describe_body(object_name: str) -> dict:
    """The full describe body of an installed object, as recorded or derived."""
    if object_name in RECORDED_OBJECTS:
        return recorded(object_name)
    fields = {
        "User": _user_fields,
        "OpportunityStage": _stage_fields,
        "UserRecordAccess": _record_access_fields,
    }[object_name]()
    entry = global_entry(object_name)
    body = copy.deepcopy(recorded("OpportunityContactRole"))
    body.update({key: value for key, value in entry.items() if key in body})
    body.update(
        {
            "childRelationships": [],
            "fields": fields,
            "recordTypeInfos": [],
            "supportedScopes": [
                {"label": f"All {entry['labelPlural'].lower()}", "name": "everything"}
            ],
            "urls": dict(entry["urls"]),
        }
    )
    return body


def cascade_children(object_name: str) -> list[tuple[str, str]]:
    """(child object, lookup field) pairs deleted along with a record of ``object_name``."""
    return [
        (relation["childSObject"], relation["field"])
        for relation in describe_body(object_name)["childRelationships"]
        if relation["cascadeDelete"] and relation["childSObject"] in OBJECTS
    ]
