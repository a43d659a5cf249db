"""A Salesforce org's standard schema, and how seeders name, type and store values.

``install`` gives a new sandbox org the fields of Account, Contact, Opportunity,
OpportunityContactRole, User, OpportunityStage and UserRecordAccess (see metadata.py), one
SandboxProperty per describe field: name, label and type in their columns, picklist values
in ``options``, and every other key of the describe field dict in ``extra``, so the
describe can be served back exactly. It also creates the OpportunityStage records behind
the StageName picklist, with Salesforce's default probabilities and forecast categories.

Users are not records: the ``User`` object is answered from SandboxUser rows.
"""

from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from decimal import Decimal

from django.db import transaction
from django.db.models import Max

from integrations.sandbox import store
from integrations.sandbox.models import SandboxAccount, SandboxProperty, SandboxRecord, SandboxUser
from integrations.sandbox.salesforce import metadata
from integrations.sandbox.salesforce.values import (
    INTEGER_TYPES,
    NUMBER_TYPES,
    format_datetime,
    number,
    parse_date,
    parse_datetime,
)

# Keys of a describe field dict kept in SandboxProperty columns rather than in ``extra``.
COLUMN_KEYS = ("name", "label", "type", "custom", "picklistValues")

# Salesforce's default sales process: (stage, probability, forecast category, closed, won).
DEFAULT_STAGES = (
    ("Prospecting", 10, "Pipeline", False, False),
    ("Qualification", 10, "Pipeline", False, False),
    ("Needs Analysis", 20, "Pipeline", False, False),
    ("Value Proposition", 50, "Pipeline", False, False),
    ("Id. Decision Makers", 60, "Pipeline", False, False),
    ("Perception Analysis", 70, "Pipeline", False, False),
    ("Proposal/Price Quote", 75, "Pipeline", False, False),
    ("Negotiation/Review", 90, "Pipeline", False, False),
    ("Closed Won", 100, "Closed", True, True),
    ("Closed Lost", 0, "Omitted", True, False),
)

# Canonical custom-field type -> (template describe type, changes to the template).
_CUSTOM_TYPES: dict[str, tuple[str, dict]] = {
    "string": ("string", {"length": 255}),
    "text": ("textarea", {"length": 32768, "extraTypeInfo": "plaintextarea"}),
    "number": ("double", {"precision": 18, "scale": 2, "digits": 0}),
    "date": ("date", {}),
    "datetime": ("datetime", {}),
    "bool": ("boolean", {"nillable": False, "defaultedOnCreate": True, "defaultValue": False}),
    "enumeration": ("picklist", {"length": 255, "restrictedPicklist": True}),
    "phone": ("phone", {"length": 40}),
}


def property_from_field(
    account: SandboxAccount, object_name: str, field: dict, order: int
) -> SandboxProperty:
    return SandboxProperty(
        account=account,
        object_name=object_name,
        name=field["name"],
        label=field["label"],
        type=field["type"],
        options=field["picklistValues"],
        read_only=not field["updateable"] or field["calculated"],
        custom=field["custom"],
        description=field.get("inlineHelpText") or "",
        display_order=order,
        extra={key: value for key, value in field.items() if key not in COLUMN_KEYS},
    )


def field_dict(prop: SandboxProperty) -> dict:
    """The describe field dict of a property, keys in Salesforce's (alphabetical) order."""
    field = {
        **prop.extra,
        "name": prop.name,
        "label": prop.label,
        "type": prop.type,
        "custom": prop.custom,
        "picklistValues": prop.options,
    }
    return dict(sorted(field.items()))


@transaction.atomic
def install(account: SandboxAccount) -> None:
    properties = [
        property_from_field(account, object_name, field, order)
        for object_name in metadata.OBJECTS
        for order, field in enumerate(metadata.describe_body(object_name)["fields"])
        if not field["custom"]
    ]
    SandboxProperty.objects.bulk_create(properties)
    store.bulk_create_records(
        account,
        "OpportunityStage",
        [(_stage_values(order, *stage), None) for order, stage in enumerate(DEFAULT_STAGES, 1)],
    )


def _stage_values(
    order: int, name: str, probability: int, category: str, closed: bool, won: bool
) -> dict:
    return {
        "MasterLabel": name,
        "ApiName": name,
        "IsActive": True,
        "SortOrder": order,
        "IsClosed": closed,
        "IsWon": won,
        "ForecastCategory": category,
        "ForecastCategoryName": category,
        "DefaultProbability": probability,
        "Description": None,
    }


def custom_property(
    account: SandboxAccount,
    object_name: str,
    name: str,
    type: str,
    label: str,
    options: Iterable[str],
) -> SandboxProperty:
    """A custom field as Setup creates it; ``type`` is canonical (see seed.add_custom_field)."""
    if not name.endswith("__c"):
        raise ValueError(f"Salesforce custom field names end with __c, not {name!r}")
    if type not in _CUSTOM_TYPES:
        raise ValueError(f"unknown custom field type {type!r}")
    kind, changes = _CUSTOM_TYPES[type]
    settings = {
        "createable": True,
        "updateable": True,
        "nillable": True,
        "permissionable": True,
        "filterable": kind != "textarea",
        "sortable": kind != "textarea",
        "groupable": kind not in ("textarea", "double", "datetime"),
        **changes,
        "name": name,
        "label": label,
        "custom": True,
        "picklistValues": [
            {
                "active": True,
                "defaultValue": False,
                "label": option,
                "validFor": None,
                "value": option,
            }
            for option in options
        ],
    }
    field = metadata.template_field(kind, **settings)
    last = SandboxProperty.objects.filter(account=account, object_name=object_name).aggregate(
        top=Max("display_order")
    )["top"]
    prop = property_from_field(account, object_name, field, (last or 0) + 1)
    prop.save()
    return prop


def to_native(prop: SandboxProperty, value: object) -> object:
    """A plain Python value as Salesforce stores it in ``prop`` (lenient: for seeders)."""
    if value is None or value == "":
        return None
    if isinstance(value, SandboxRecord):
        return value.crm_id
    if isinstance(value, SandboxUser):
        return value.crm_user_id
    kind = prop.type
    if kind in NUMBER_TYPES | INTEGER_TYPES:
        parsed = Decimal(str(value))
        return int(parsed) if kind in INTEGER_TYPES else number(parsed)
    if kind == "boolean":
        return value.strip().lower() == "true" if isinstance(value, str) else bool(value)
    if kind == "date":
        return _as_date(value).isoformat()
    if kind == "datetime":
        return format_datetime(_as_datetime(value))
    return str(value)


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    parsed = parse_date(str(value))
    if parsed is None:
        raise ValueError(f"{value!r} is not a date")
    return parsed


def _as_datetime(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    parsed = parse_datetime(str(value))
    if parsed is None:
        raise ValueError(f"{value!r} is not a datetime")
    return parsed


def owner_value(user: SandboxUser) -> str:
    return user.crm_user_id
