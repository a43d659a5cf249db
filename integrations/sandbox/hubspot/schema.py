"""A HubSpot portal's standard CRM schema: properties of contacts, companies and deals.

``install`` gives a new sandbox account the properties a fresh portal has (the subset CRM
Steward and realistic demo data touch), with HubSpot's names, labels, types, field types,
groups and options. The deal pipelines live on the ``dealstage`` property (``extra
["pipelines"]``): its options are their stages, and the pipelines API answers from there.

Properties HubSpot maintains itself (``createdate``, ``hs_object_id``, the last-modified
date, ``hs_email_domain``, ``hs_is_closed``…) are read-only and computed from the record
when it is read (see ``COMPUTED``), never stored.
"""

from collections.abc import Iterable

from integrations.sandbox.hubspot import values
from integrations.sandbox.models import SandboxAccount, SandboxProperty, SandboxUser

OBJECT_TYPE_IDS = {"contacts": "0-1", "companies": "0-2", "deals": "0-3"}
LAST_MODIFIED = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}
GROUPS = {
    "contacts": "contactinformation",
    "companies": "companyinformation",
    "deals": "dealinformation",
}
# Properties an object can be fetched by with ``idProperty``.
UNIQUE_PROPERTIES = {
    "contacts": ("hs_object_id", "email"),
    "companies": ("hs_object_id",),
    "deals": ("hs_object_id",),
}
COMPUTED = {
    "contacts": (
        "createdate",
        "hs_object_id",
        "lastmodifieddate",
        "hs_email_domain",
        "associatedcompanyid",  # from the contact's associations (common.LINKED)
    ),
    "companies": ("createdate", "hs_object_id", "hs_lastmodifieddate"),
    "deals": (
        "createdate",
        "hs_object_id",
        "hs_lastmodifieddate",
        "hs_is_closed",
        "hs_is_closed_won",
        "hs_deal_stage_probability",
    ),
}


def _stage(order: int, stage_id: str, label: str, closed: bool, probability: str) -> dict:
    # HubSpot answers stage metadata as strings.
    return {
        "id": stage_id,
        "label": label,
        "displayOrder": order,
        "metadata": {"isClosed": "true" if closed else "false", "probability": probability},
    }


DEFAULT_PIPELINE = {
    "id": "default",
    "label": "Sales Pipeline",
    "displayOrder": 0,
    "stages": [
        _stage(0, "appointmentscheduled", "Appointment Scheduled", False, "0.2"),
        _stage(1, "qualifiedtobuy", "Qualified To Buy", False, "0.4"),
        _stage(2, "presentationscheduled", "Presentation Scheduled", False, "0.6"),
        _stage(3, "decisionmakerboughtin", "Decision Maker Bought-In", False, "0.8"),
        _stage(4, "contractsent", "Contract Sent", False, "0.9"),
        _stage(5, "closedwon", "Closed Won", True, "1.0"),
        _stage(6, "closedlost", "Closed Lost", True, "0.0"),
    ],
}

# A part of HubSpot's industry list (LinkedIn's industries): internal value and label.
INDUSTRIES = (
    ("ACCOUNTING", "Accounting"),
    ("BANKING", "Banking"),
    ("BIOTECHNOLOGY", "Biotechnology"),
    ("CHEMICALS", "Chemicals"),
    ("COMPUTER_HARDWARE", "Computer Hardware"),
    ("COMPUTER_SOFTWARE", "Computer Software"),
    ("CONSTRUCTION", "Construction"),
    ("CONSUMER_GOODS", "Consumer Goods"),
    ("DEFENSE_SPACE", "Defense & Space"),
    ("EDUCATION_MANAGEMENT", "Education Management"),
    ("ELECTRICAL_ELECTRONIC_MANUFACTURING", "Electrical/Electronic Manufacturing"),
    ("ENTERTAINMENT", "Entertainment"),
    ("FINANCIAL_SERVICES", "Financial Services"),
    ("FOOD_BEVERAGES", "Food & Beverages"),
    ("FOOD_PRODUCTION", "Food Production"),
    ("HOSPITAL_HEALTH_CARE", "Hospital & Health Care"),
    ("IMPORT_AND_EXPORT", "Import and Export"),
    ("INFORMATION_TECHNOLOGY_AND_SERVICES", "Information Technology and Services"),
    ("INSURANCE", "Insurance"),
    ("INTERNATIONAL_TRADE_AND_DEVELOPMENT", "International Trade and Development"),
    ("INTERNET", "Internet"),
    ("INVESTMENT_MANAGEMENT", "Investment Management"),
    ("LOGISTICS_AND_SUPPLY_CHAIN", "Logistics and Supply Chain"),
    ("MACHINERY", "Machinery"),
    ("MANAGEMENT_CONSULTING", "Management Consulting"),
    ("MARKETING_AND_ADVERTISING", "Marketing and Advertising"),
    ("MEDICAL_DEVICES", "Medical Devices"),
    ("NONPROFIT_ORGANIZATION_MANAGEMENT", "Non-Profit Organization Management"),
    ("OIL_ENERGY", "Oil & Energy"),
    ("PAPER_FOREST_PRODUCTS", "Paper & Forest Products"),
    ("PHARMACEUTICALS", "Pharmaceuticals"),
    ("REAL_ESTATE", "Real Estate"),
    ("RESEARCH", "Research"),
    ("RESTAURANTS", "Restaurants"),
    ("RETAIL", "Retail"),
    ("TELECOMMUNICATIONS", "Telecommunications"),
    ("TRANSPORTATION_TRUCKING_RAILROAD", "Transportation/Trucking/Railroad"),
    ("UTILITIES", "Utilities"),
)
LIFECYCLE_STAGES = (
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
)
LEAD_STATUSES = (
    ("NEW", "New"),
    ("OPEN", "Open"),
    ("IN_PROGRESS", "In Progress"),
    ("OPEN_DEAL", "Open Deal"),
    ("UNQUALIFIED", "Unqualified"),
    ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"),
    ("CONNECTED", "Connected"),
    ("BAD_TIMING", "Bad Timing"),
)
BOOL_OPTIONS = (("true", "Yes"), ("false", "No"))


def _options(pairs: Iterable[tuple[str, str]]) -> list[dict]:
    return [
        {"label": label, "value": value, "displayOrder": order, "hidden": False, "description": ""}
        for order, (value, label) in enumerate(pairs)
    ]


def _stage_options(pipelines: list[dict]) -> list[dict]:
    return _options(
        (stage["id"], stage["label"]) for pipeline in pipelines for stage in pipeline["stages"]
    )


def _definition(
    name: str,
    label: str,
    type: str,
    field_type: str,
    *,
    group: str = "",
    options: list[dict] | None = None,
    read_only: bool = False,
    calculated: bool = False,
    description: str = "",
    **extra: object,
) -> dict:
    return {
        "name": name,
        "label": label,
        "type": type,
        "field_type": field_type,
        "group_name": group,
        "options": options or [],
        "read_only": read_only,
        "description": description,
        "extra": {"calculated": calculated, **extra},
    }


def _owner(label: str) -> dict:
    return _definition(
        "hubspot_owner_id",
        label,
        "enumeration",
        "select",
        group="sales_properties",
        externalOptions=True,
        referencedObjectType="OWNER",
        description="The owner of the record.",
    )


def _system(object_name: str) -> list[dict]:
    last_modified = LAST_MODIFIED[object_name]
    return [
        _definition("createdate", "Create Date", "datetime", "date", read_only=True),
        _definition(
            "hs_object_id",
            "Record ID",
            "number",
            "number",
            read_only=True,
            hasUniqueValue=True,
            description="The unique ID for this record. This value is set automatically.",
        ),
        _definition(last_modified, "Last Modified Date", "datetime", "date", read_only=True),
    ]


def _contacts() -> list[dict]:
    return [
        _definition("firstname", "First Name", "string", "text"),
        _definition("lastname", "Last Name", "string", "text"),
        _definition("email", "Email", "string", "text", description="A contact's email address"),
        _definition("phone", "Phone Number", "string", "phonenumber"),
        _definition("mobilephone", "Mobile Phone Number", "string", "phonenumber"),
        _definition("jobtitle", "Job Title", "string", "text"),
        _definition("company", "Company Name", "string", "text"),
        _definition("website", "Website URL", "string", "text"),
        _definition("city", "City", "string", "text"),
        _definition("country", "Country/Region", "string", "text"),
        _definition(
            "lifecyclestage",
            "Lifecycle Stage",
            "enumeration",
            "radio",
            options=_options(LIFECYCLE_STAGES),
        ),
        _definition(
            "hs_lead_status",
            "Lead Status",
            "enumeration",
            "radio",
            group="sales_properties",
            options=_options(LEAD_STATUSES),
        ),
        _owner("Contact owner"),
        _definition(
            "hs_email_domain",
            "Email Domain",
            "string",
            "text",
            read_only=True,
            calculated=True,
        ),
        _definition(
            "associatedcompanyid",
            "Primary associated company ID",
            "number",
            "number",
            read_only=True,
            description="The ID of the contact's primary associated company.",
        ),
        _definition(
            "hs_marketable_status",
            "Marketing contact status",
            "enumeration",
            "select",
            options=_options(BOOL_OPTIONS),
            read_only=True,
        ),
        *_system("contacts"),
    ]


def _companies() -> list[dict]:
    return [
        _definition("name", "Company name", "string", "text"),
        _definition("domain", "Company Domain Name", "string", "text"),
        _definition("website", "Website URL", "string", "text"),
        _definition(
            "industry",
            "Industry",
            "enumeration",
            "select",
            options=_options(INDUSTRIES),
        ),
        _definition("phone", "Phone Number", "string", "phonenumber"),
        _definition("city", "City", "string", "text"),
        _definition("country", "Country/Region", "string", "text"),
        _definition("numberofemployees", "Number of Employees", "number", "number"),
        _definition("annualrevenue", "Annual Revenue", "number", "number", showCurrencySymbol=True),
        _definition("description", "Description", "string", "textarea"),
        _definition(
            "lifecyclestage",
            "Lifecycle Stage",
            "enumeration",
            "radio",
            options=_options(LIFECYCLE_STAGES),
        ),
        _owner("Company owner"),
        *_system("companies"),
    ]


def _deals() -> list[dict]:
    pipelines = [DEFAULT_PIPELINE]
    return [
        _definition("dealname", "Deal Name", "string", "text"),
        _definition("amount", "Amount", "number", "number", showCurrencySymbol=True),
        _definition(
            "dealstage",
            "Deal Stage",
            "enumeration",
            "select",
            options=_stage_options(pipelines),
            externalOptions=True,
            pipelines=pipelines,
        ),
        _definition(
            "pipeline",
            "Pipeline",
            "enumeration",
            "select",
            options=_options((pipeline["id"], pipeline["label"]) for pipeline in pipelines),
            externalOptions=True,
        ),
        _definition("closedate", "Close Date", "datetime", "date"),
        _definition("hs_next_step", "Next step", "string", "textarea"),
        _definition("description", "Deal Description", "string", "textarea"),
        _definition(
            "dealtype",
            "Deal Type",
            "enumeration",
            "radio",
            options=_options(
                (("newbusiness", "New Business"), ("existingbusiness", "Existing Business"))
            ),
        ),
        _definition(
            "hs_priority",
            "Priority",
            "enumeration",
            "select",
            options=_options((("low", "Low"), ("medium", "Medium"), ("high", "High"))),
        ),
        _owner("Deal owner"),
        _definition(
            "hs_is_closed",
            "Is Deal Closed?",
            "bool",
            "booleancheckbox",
            options=_options(BOOL_OPTIONS),
            read_only=True,
            calculated=True,
        ),
        _definition(
            "hs_is_closed_won",
            "Is Closed Won",
            "bool",
            "booleancheckbox",
            options=_options(BOOL_OPTIONS),
            read_only=True,
            calculated=True,
        ),
        _definition(
            "hs_deal_stage_probability",
            "Deal probability",
            "number",
            "number",
            read_only=True,
            calculated=True,
        ),
        *_system("deals"),
    ]


STANDARD = {"contacts": _contacts, "companies": _companies, "deals": _deals}


def install(account: SandboxAccount) -> None:
    """Create the standard properties of contacts, companies and deals."""
    rows = []
    for object_name, definitions in STANDARD.items():
        for order, definition in enumerate(definitions()):
            rows.append(
                SandboxProperty(
                    account=account,
                    object_name=object_name,
                    display_order=order,
                    custom=False,
                    group_name=definition.pop("group_name") or GROUPS[object_name],
                    **definition,
                )
            )
    SandboxProperty.objects.bulk_create(rows)


# Canonical custom-field types (seed.add_custom_field) -> HubSpot type and fieldType.
CUSTOM_TYPES = {
    "string": ("string", "text"),
    "text": ("string", "textarea"),
    "number": ("number", "number"),
    "date": ("date", "date"),
    "datetime": ("datetime", "date"),
    "bool": ("bool", "booleancheckbox"),
    "enumeration": ("enumeration", "select"),
    "phone": ("phone_number", "phonenumber"),
}


def custom_property(
    account: SandboxAccount,
    object_name: str,
    name: str,
    type: str,
    label: str,
    options: list[str],
) -> SandboxProperty:
    """A portal-defined property, as the properties API would create it."""
    try:
        native_type, field_type = CUSTOM_TYPES[type]
    except KeyError:
        raise ValueError(f"unknown custom field type {type!r}") from None
    choices: list[dict] = []
    if native_type == "bool":
        choices = _options(BOOL_OPTIONS)
    elif native_type == "enumeration":
        choices = _options((value, value.replace("_", " ").capitalize()) for value in options)
    return SandboxProperty.objects.create(
        account=account,
        object_name=object_name,
        name=name,
        label=label,
        type=native_type,
        field_type=field_type,
        options=choices,
        custom=True,
        group_name=GROUPS.get(object_name, ""),
        extra={"calculated": False},
    )


def to_native(prop: SandboxProperty, value: object) -> str | None:
    return values.to_native(prop, value)


def owner_value(user: SandboxUser) -> str:
    """HubSpot stores the owner id (not the user id) in ``hubspot_owner_id``."""
    return user.owner_id


def pipelines(account: SandboxAccount) -> list[dict]:
    stage_property = SandboxProperty.objects.filter(
        account=account, object_name="deals", name="dealstage"
    ).first()
    return stage_property.extra.get("pipelines", []) if stage_property else []


def stage_metadata(pipeline_list: list[dict]) -> dict[str, dict[str, str]]:
    """Stage id -> its metadata (``isClosed``, ``probability``), across pipelines."""
    return {
        stage["id"]: stage["metadata"] for pipeline in pipeline_list for stage in pipeline["stages"]
    }
