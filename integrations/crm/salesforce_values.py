"""Salesforce values for the Salesforce adapter (salesforce.py).

Reads: Salesforce answers typed JSON, and its JSON types say enough to normalise a value to
the conventions of types.py without a describe: numbers become plain decimal strings
(``1500.0`` -> ``"1500"``), booleans ``"true"`` / ``"false"``, datetimes (always in the
form ``2024-01-15T10:30:00.000+0000``) ISO 8601 UTC with milliseconds and ``Z`` (as the
HubSpot adapter answers them), dates and text stay as they are.

Writes: a canonical string becomes the JSON type the field's describe type calls for.
"""

import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from integrations.crm import errors
from integrations.crm.types import PropertyOption, PropertySpec, PropertyType

PROVIDER = "salesforce"
_SF_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?[+-]\d{4}")

PROPERTY_TYPES: dict[str, PropertyType] = {
    "id": PropertyType.ID,
    "reference": PropertyType.REFERENCE,
    "string": PropertyType.STRING,
    "encryptedstring": PropertyType.STRING,
    "combobox": PropertyType.STRING,
    "url": PropertyType.STRING,
    "time": PropertyType.STRING,
    "anyType": PropertyType.STRING,
    "textarea": PropertyType.TEXT,
    "base64": PropertyType.TEXT,
    "email": PropertyType.EMAIL,
    "phone": PropertyType.PHONE,
    "picklist": PropertyType.ENUMERATION,
    "multipicklist": PropertyType.ENUMERATION,
    "double": PropertyType.NUMBER,
    "currency": PropertyType.NUMBER,
    "percent": PropertyType.NUMBER,
    "int": PropertyType.NUMBER,
    "long": PropertyType.NUMBER,
    "date": PropertyType.DATE,
    "datetime": PropertyType.DATETIME,
    "boolean": PropertyType.BOOL,
}
# Describe types whose ``length`` limits the characters of a value (0: no stated limit).
LENGTH_TYPES = frozenset({"string", "textarea", "phone", "email", "url"})
# Compound fields (BillingAddress…) only repeat their component fields.
COMPOUND_TYPES = frozenset({"address", "location", "complexvalue"})


# --- reads ---------------------------------------------------------------------------------


def plain_number(number: Decimal) -> str:
    text = format(number.normalize(), "f")
    return "0" if text == "-0" else text


def iso_utc(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_moment(value: str) -> datetime | None:
    """A Salesforce or ISO 8601 timestamp in UTC; None when ``value`` is not one."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def normalise(value: object) -> str | None:
    """A value of a Salesforce record in the conventions of types.py."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return plain_number(Decimal(str(value)))
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    text = str(value)
    if _SF_DATETIME.fullmatch(text):
        moment = parse_moment(text)
        return iso_utc(moment) if moment else text
    return text


# --- writes --------------------------------------------------------------------------------


def invalid(name: str, value: str, kind: str) -> errors.ValidationFailed:
    message = f"{value!r} is not a valid {kind} for {name}"
    return errors.ValidationFailed(message, fields={name: message}, provider=PROVIDER)


def to_salesforce(field: dict | None, name: str, value: str | None) -> object:
    """A canonical string as the JSON value Salesforce's field type takes. Fields the user
    cannot see are sent as they are: Salesforce names the problem better than a guess."""
    if value is None or value == "":
        return None
    kind = PROPERTY_TYPES.get(field["type"]) if field else None
    if kind is PropertyType.NUMBER:
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise invalid(name, value, "number") from None
        if not number.is_finite():
            raise invalid(name, value, "number")
        if field and field["type"] in ("int", "long"):
            if number != number.to_integral_value():
                raise invalid(name, value, "whole number")
            return int(number)
        return int(number) if number == number.to_integral_value() else float(number)
    if kind is PropertyType.BOOL:
        if value.strip().lower() not in ("true", "false"):
            raise invalid(name, value, "boolean")
        return value.strip().lower() == "true"
    if kind is PropertyType.DATE:
        text = value.strip()
        moment = parse_moment(text) if "T" in text else None
        try:
            return moment.date().isoformat() if moment else date.fromisoformat(text).isoformat()
        except ValueError:
            raise invalid(name, value, "date") from None
    if kind is PropertyType.DATETIME:
        moment = parse_moment(value)
        if moment is None:
            raise invalid(name, value, "datetime")
        return iso_utc(moment)
    return value


def spec(field: Mapping[str, Any]) -> PropertySpec:
    """A describe field as the connection's user sees it (describe is per user)."""
    return PropertySpec(
        name=field["name"],
        label=field["label"],
        type=PROPERTY_TYPES.get(field["type"], PropertyType.STRING),
        options=tuple(
            PropertyOption(entry["value"], entry.get("label") or entry["value"])
            for entry in field.get("picklistValues") or []
            if entry.get("active", True)
        ),
        read_only=not field.get("updateable") or bool(field.get("calculated")),
        custom=bool(field.get("custom")),
        description=field.get("inlineHelpText") or "",
        max_length=(field.get("length") or None) if field["type"] in LENGTH_TYPES else None,
    )
