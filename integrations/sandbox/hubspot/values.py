"""How the HubSpot sandbox reads, checks and stores property values.

HubSpot holds every value as a string. What this sandbox stores, and answers:

* number: plain decimal notation without exponent or trailing zeros (``"1500"``,
  ``"1500.5"``), as HubSpot answers ``amount``;
* date: ``"YYYY-MM-DD"``. Writes may also send epoch milliseconds, which must fall on
  midnight UTC (HubSpot's rule for date properties);
* datetime: ISO 8601 UTC with milliseconds (``"2024-01-15T10:30:00.000Z"``), the format of
  ``createdate``. Writes may send epoch milliseconds, an ISO date or an ISO datetime;
* bool: ``"true"`` / ``"false"``; multi-checkbox enumerations: options joined with ``;``;
* email addresses are lower-cased, as HubSpot does.

An empty string clears a value (stored as absent).
"""

import json
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from integrations.sandbox.models import SandboxProperty

DOUBLE_DIGITS = 308  # decimal exponents a double can hold


class ValueProblem(Exception):
    """One invalid property value, with HubSpot's error code and wording."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@lru_cache(maxsize=1 << 14)
def format_datetime(moment: datetime) -> str:
    """HubSpot's timestamp format: ``2019-10-30T03:30:17.883Z``.

    Remembered: every read answers each record's two timestamps, often more than once."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def format_number(number: Decimal) -> str:
    text = format(number.normalize(), "f")
    return "0" if text in {"-0", ""} else text


def option_values(prop: SandboxProperty) -> list[str]:
    return [option["value"] for option in prop.options]


def normalise(prop: SandboxProperty, raw: object, *, owners: set[str]) -> str | None:
    """The stored form of ``raw`` written through the API, or ValueProblem.

    ``owners`` are the account's owner ids, the options of OWNER-referencing properties.
    """
    if raw is None:
        return None
    text = _as_text(raw)
    if text == "":
        return None
    if "\x00" in text:
        # The sandbox's database cannot hold it (PostgreSQL refuses it in JSON).
        raise ValueProblem(
            "INVALID_PROPERTY_VALUE", f"{json.dumps(text)} contains a NUL character."
        )
    if prop.type == "number":
        return _number(text)
    if prop.type == "date":
        return _date(text)
    if prop.type == "datetime":
        return _datetime(text)
    if prop.type == "bool":
        return _bool(text)
    if prop.type == "enumeration":
        return _enumeration(prop, text, owners)
    if prop.name == "email":
        return text.strip().lower()
    return text


def _as_text(raw: object) -> str:
    # HubSpot's JSON reader turns numbers and booleans into their text.
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int | float | Decimal):
        return str(raw)
    if isinstance(raw, str):
        return raw
    raise ValueProblem("INVALID_PROPERTY_VALUE", f"{json.dumps(raw)} is not a valid value.")


def _number(text: str) -> str:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        raise ValueProblem("INVALID_LONG", f"{text} was not a valid long.") from None
    # HubSpot holds numbers as doubles; beyond their range (1e999999999 would be a
    # billion-digit string in plain notation) a value is refused, not written out.
    out_of_range = number and abs(number.adjusted()) > DOUBLE_DIGITS
    if not number.is_finite() or out_of_range:
        raise ValueProblem("INVALID_LONG", f"{text} was not a valid long.")
    return format_number(number)


def _epoch(text: str) -> datetime | None:
    stripped = text.strip()
    digits = stripped.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()):
        return None
    try:
        return datetime.fromtimestamp(int(stripped) / 1000, tz=UTC)
    except (OverflowError, ValueError, OSError):
        raise ValueProblem("INVALID_DATE", f"{text} was not a valid date.") from None


def _iso(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _date(text: str) -> str:
    moment = _epoch(text)
    if moment is not None:
        if moment.time() != time(0):
            at = f"{moment.hour}:{moment.minute}:{moment.second}.{moment.microsecond // 1000}"
            raise ValueProblem("INVALID_DATE", f"{text} is at {at} UTC, not midnight!")
        return moment.date().isoformat()
    moment = _iso(text)
    if moment is None:
        raise ValueProblem("INVALID_DATE", f"{text} was not a valid date.")
    return moment.astimezone(UTC).date().isoformat()


def _datetime(text: str) -> str:
    moment = _epoch(text) or _iso(text)
    if moment is None:
        raise ValueProblem("INVALID_DATE", f"{text} was not a valid date.")
    return format_datetime(moment)


def _bool(text: str) -> str:
    lowered = text.strip().lower()
    if lowered not in {"true", "false"}:
        raise ValueProblem("INVALID_BOOLEAN", f"{text} was not a valid boolean.")
    return lowered


def _enumeration(prop: SandboxProperty, text: str, owners: set[str]) -> str:
    if prop.extra.get("referencedObjectType") == "OWNER":
        if text not in owners:
            raise ValueProblem("INVALID_OWNER_ID", f"{text} is not a valid owner id.")
        return text
    allowed = option_values(prop)
    chosen = text.split(";") if prop.field_type == "checkbox" else [text]
    for value in chosen:
        if value not in allowed:
            raise ValueProblem(
                "INVALID_OPTION", f"{value} was not one of the allowed options: {_listing(prop)}"
            )
    return ";".join(chosen)


def _listing(prop: SandboxProperty) -> str:
    # HubSpot prints the options the way its Java service renders them.
    entries = [
        f'label: "{option["label"]}"\nvalue: "{option["value"]}"\n'
        f"display_order: {option.get('displayOrder', -1)}\n"
        f"hidden: {'true' if option.get('hidden') else 'false'}\nread_only: false\n"
        for option in prop.options
    ]
    return "[" + ", ".join(entries) + "]"


def to_native(prop: SandboxProperty, value: object) -> str | None:
    """A plain Python value (seed data, scenario files) in HubSpot's stored form.

    Unlike API writes this does not check options or read-only flags: seeding writes what
    the portal's history would hold.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (
            moment.astimezone(UTC).date().isoformat()
            if prop.type == "date"
            else (format_datetime(moment))
        )
    if isinstance(value, date):
        if prop.type == "datetime":
            return format_datetime(datetime.combine(value, time(0), tzinfo=UTC))
        return value.isoformat()
    if isinstance(value, list | tuple | set):
        return ";".join(_option_value(prop, str(item)) for item in value)
    if prop.type == "enumeration" and isinstance(value, str):
        return _option_value(prop, value)
    text = _as_text(value)
    if prop.type == "number":
        return _number(text)
    if prop.type == "date":
        return _date(text)
    if prop.type == "datetime":
        return _datetime(text)
    if prop.type == "bool":
        return _bool(text)
    if prop.name == "email":
        return text.strip().lower()
    return text


def _option_value(prop: SandboxProperty, text: str) -> str:
    """Seed data may name an option by its label ("Computer Software"); HubSpot stores the
    option's internal value ("COMPUTER_SOFTWARE")."""
    wanted = _comparable(text)
    for option in prop.options:
        if wanted in (_comparable(option["value"]), _comparable(option["label"])):
            return option["value"]
    return text


def _comparable(text: str) -> str:
    # "Marketing & Advertising" names the option labelled "Marketing and Advertising".
    return " ".join(text.replace("&", " and ").lower().split())
