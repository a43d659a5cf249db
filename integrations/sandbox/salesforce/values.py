"""How the Salesforce sandbox reads, checks and stores field values.

Salesforce holds typed values and answers them as typed JSON, which is what records store:

* double, currency, percent: JSON numbers (an integral value as an integer, ``1500``);
  int: integers;
* boolean: ``true`` / ``false``, never null (a missing boolean reads as ``false``);
* date: ``"YYYY-MM-DD"``; datetime: ``"2024-01-15T10:30:00.000+0000"`` (offset ``+0000``,
  not ``Z``), the form of ``CreatedDate`` in every record;
* text of any kind (string, textarea, picklist, phone, email, url) and ids: strings. An
  empty string is stored as null, as Salesforce does.

``coerce`` is what the REST API applies to a value written through it, with Salesforce's
error codes and wording; ``to_native`` (schema.py) is the seeders' lenient counterpart.
"""

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

from integrations.sandbox.gateway import SandboxError

NUMBER_TYPES = frozenset({"double", "currency", "percent"})
INTEGER_TYPES = frozenset({"int", "long"})
TEXT_TYPES = frozenset(
    {"string", "textarea", "picklist", "multipicklist", "combobox", "phone", "email", "url"}
    | {"encryptedstring"}
)
ID_PATTERN = re.compile(r"[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?")
# Deliberately loose: Salesforce rejects obviously broken addresses, not unusual ones.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# What Jackson (Salesforce's JSON reader) names a JSON token in its messages.
_JSON_TOKENS = {dict: "START_OBJECT", list: "START_ARRAY", bool: "VALUE_TRUE", str: "VALUE_STRING"}


def format_datetime(moment: datetime) -> str:
    """Salesforce's record timestamp form: ``2013-05-20T20:49:32.000+0000``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def format_stamp(moment: datetime) -> str:
    """A system timestamp (CreatedDate, LastModifiedDate, SystemModstamp) as Salesforce
    answers it: whole seconds (``.000``). The sandbox keeps the exact time, so writes within
    one second stay in order (history, caches, ETags); Salesforce only shows the second."""
    return format_datetime(moment.replace(microsecond=0))


def parse_datetime(text: str) -> datetime | None:
    """An ISO 8601 timestamp as Salesforce accepts it (``Z``, ``+0000``, ``+00:00`` or no
    offset, which means UTC); None when it is not one."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_date(text: str) -> date | None:
    text = text.strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        moment = parse_datetime(text) if "T" in text else None
        return moment.date() if moment else None


def number(value: Decimal) -> int | float:
    """A JSON number: integral values as integers, as Salesforce answers ``1500`` for 1500.0."""
    return int(value) if value == value.to_integral_value() else float(value)


def is_id(value: object) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def _cannot_deserialize(kind: str, value: object) -> SandboxError:
    token = "VALUE_NUMBER" if isinstance(value, int | float) else _JSON_TOKENS.get(type(value))
    shown = json.dumps(value) if isinstance(value, dict | list) else value
    return SandboxError(
        400,
        f"Cannot deserialize instance of {kind} from {token or 'VALUE_STRING'} value {shown} "
        "or request may be missing a required field",
        "JSON_PARSER_ERROR",
    )


def coerce(field: dict, value: object) -> object:
    """``value`` as Salesforce stores it in ``field`` (a describe field dict), or the
    SandboxError Salesforce answers for it. References are only checked for form here."""
    kind = field["type"]
    if value is None or (value == "" and kind != "boolean"):
        return None
    if kind in TEXT_TYPES:
        return _text(field, value)
    if kind in NUMBER_TYPES | INTEGER_TYPES:
        return _number(field, value)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _cannot_deserialize("boolean", value)
    if kind == "date":
        parsed_date = parse_date(value) if isinstance(value, str) else None
        if parsed_date is None:
            raise _cannot_deserialize("date", value)
        return parsed_date.isoformat()
    if kind == "datetime":
        moment = parse_datetime(value) if isinstance(value, str) else None
        if moment is None:
            raise _cannot_deserialize("datetime", value)
        return format_datetime(moment)
    if kind in ("reference", "id"):
        if not is_id(value):
            raise SandboxError(
                400,
                f"{field['label']}: id value of incorrect type: {value}",
                "MALFORMED_ID",
                fields=[field["name"]],
            )
        return value
    raise _cannot_deserialize(kind, value)


def _text(field: dict, value: object) -> str:
    if isinstance(value, dict | list):
        raise _cannot_deserialize("string", value)
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if "\x00" in text:
        # Not something Salesforce documents; the sandbox's database cannot hold it, and a
        # refusal naming the field is what an integration should be ready for.
        raise SandboxError(
            400,
            f"{field['label']}: the value contains a NUL character",
            "FIELD_INTEGRITY_EXCEPTION",
            fields=[field["name"]],
        )
    length = field.get("length") or 0
    if length and len(text) > length:
        raise SandboxError(
            400,
            f"{field['label']}: data value too large: {text} (max length={length})",
            "STRING_TOO_LONG",
            fields=[field["name"]],
        )
    if field["type"] == "email" and not _EMAIL.fullmatch(text):
        raise SandboxError(
            400,
            f"{field['label']}: invalid email address: {text}",
            "INVALID_EMAIL_ADDRESS",
            fields=[field["name"]],
        )
    if field["type"] == "picklist" and field.get("restrictedPicklist"):
        allowed = {entry["value"] for entry in field.get("picklistValues", []) if entry["active"]}
        if text not in allowed:
            raise SandboxError(
                400,
                f"{field['label']}: bad value for restricted picklist field: {text}",
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                fields=[field["name"]],
            )
    return text


def _number(field: dict, value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _cannot_deserialize(field["type"], value)
    try:
        parsed = Decimal(str(value).strip())
    except InvalidOperation:
        raise _cannot_deserialize(field["type"], value) from None
    if not parsed.is_finite():
        raise _cannot_deserialize(field["type"], value)
    precision, scale = field.get("precision") or 0, field.get("scale") or 0
    digits = (precision - scale) if precision else (field.get("digits") or 18)
    if parsed and parsed.adjusted() >= digits:
        raise SandboxError(
            400,
            f"{field['label']}: value outside of valid range on numeric field: {value}",
            "NUMBER_OUTSIDE_VALID_RANGE",
            fields=[field["name"]],
        )
    if field["type"] in INTEGER_TYPES:
        if parsed != parsed.to_integral_value():
            raise _cannot_deserialize(field["type"], value)
        return int(parsed)
    scale = field.get("scale")
    if scale is not None and field["type"] == "currency":
        parsed = parsed.quantize(Decimal(1).scaleb(-scale))
    return number(parsed)
