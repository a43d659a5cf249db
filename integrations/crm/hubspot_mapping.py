"""How HubSpot's answers map onto the normalised types and errors (integrations/crm/hubspot.py).

Pure functions over hubspot-api-client's models and HubSpot's JSON: error translation with
the retry-after rules, value normalisation, property specs, owners and search filters.
"""

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

from hubspot.crm.objects import Filter

from integrations.crm import errors
from integrations.crm.types import (
    Operator,
    Owner,
    PropertyOption,
    PropertySpec,
    PropertyType,
    SearchFilter,
)

PROVIDER = "hubspot"
# HubSpot keeps these as datetimes at midnight UTC; they mean a calendar date.
CALENDAR_DATES = frozenset({"closedate"})
SEARCH_OPERATORS = {
    Operator.EQ: "EQ",
    Operator.NEQ: "NEQ",
    Operator.LT: "LT",
    Operator.LTE: "LTE",
    Operator.GT: "GT",
    Operator.GTE: "GTE",
    Operator.IN: "IN",
    Operator.NOT_IN: "NOT_IN",
    Operator.HAS_VALUE: "HAS_PROPERTY",
    Operator.NO_VALUE: "NOT_HAS_PROPERTY",
}
# HubSpot's limit for single- and multi-line text values (its property type ``string``).
STRING_MAX_LENGTH = 65_536


# --- errors ----------------------------------------------------------------------------


def translate(exc: Any) -> errors.CrmError:
    """An ApiException as the error hierarchy, with HubSpot's own message and category."""
    status = exc.status or 0
    body = _json(exc.body)
    message = body.get("message") if isinstance(body, dict) else None
    message = message or (exc.body.decode() if isinstance(exc.body, bytes) else exc.body)
    message = message or exc.reason or f"HubSpot answered {status}"
    code = (body.get("category") or body.get("errorType")) if isinstance(body, dict) else None
    kwargs: dict = {"provider": PROVIDER, "status": status or None, "code": code, "body": body}
    if status == 0 or status >= 500:
        return errors.Transient(message, **kwargs)
    if status == 401:
        return errors.AuthExpired(message, **kwargs)
    if status == 403:
        return errors.PermissionDenied(message, **kwargs)
    if status == 404:
        return errors.NotFound(message, **kwargs)
    if status == 409:
        return errors.Conflict(message, **kwargs)
    if status == 429:
        return errors.RateLimited(
            message, retry_after=retry_after(exc.headers or {}, body), **kwargs
        )
    if status == 400:
        return errors.ValidationFailed(message, fields=_bad_fields(body), **kwargs)
    return errors.CrmError(message, **kwargs)


def retry_after(headers: Mapping[str, str], body: object, *, now: datetime | None = None) -> float:
    """Seconds to wait after a 429: Retry-After if HubSpot sent one, else by policy."""
    now = now or datetime.now(UTC)
    header = _header(headers, "Retry-After")
    if header:
        try:
            return max(float(header), 0.0)
        except ValueError:
            try:
                return max((parsedate_to_datetime(header) - now).total_seconds(), 0.0)
            except (TypeError, ValueError):
                pass
    policy = body.get("policyName") if isinstance(body, dict) else None
    if policy == "DAILY":
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return (midnight - now).total_seconds()
    if policy == "SECONDLY":
        return 1.0
    interval = _header(headers, "X-HubSpot-RateLimit-Interval-Milliseconds")
    if interval and interval.isdigit():
        return int(interval) / 1000
    return 10.0  # HubSpot's burst window


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def _json(raw: object) -> Any:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _bad_fields(body: object) -> dict[str, str]:
    """Property name -> HubSpot's reason, from ``errors[].context.propertyName``."""
    fields: dict[str, str] = {}
    if not isinstance(body, dict):
        return fields
    for error in body.get("errors") or []:
        if not isinstance(error, dict):
            continue
        names = (error.get("context") or {}).get("propertyName") or []
        for name in names if isinstance(names, list) else [names]:
            fields[str(name)] = str(error.get("message") or error.get("code") or "")
    return fields


# --- values ----------------------------------------------------------------------------


def normalise(kind: PropertyType, value: str) -> str | None:
    """A HubSpot value in the conventions of types.py."""
    if value == "":
        return None
    if kind is PropertyType.NUMBER:
        number = as_decimal(value)
        return _plain(number) if number is not None else value
    if kind is PropertyType.DATE:
        moment = _moment(value)
        return moment.date().isoformat() if moment else value
    if kind is PropertyType.DATETIME:
        moment = _moment(value)
        return _iso(moment) if moment else value
    if kind is PropertyType.BOOL:
        return value.strip().lower()
    return value


def as_decimal(value: object) -> Decimal | None:
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _plain(number: Decimal) -> str:
    text = format(number.normalize(), "f")
    return "0" if text == "-0" else text


def _moment(value: str) -> datetime | None:
    """Epoch milliseconds or an ISO date/datetime, in UTC."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# --- mapping SDK models --------------------------------------------------------------------


def _property_type(prop: Any) -> PropertyType:
    if prop.name in CALENDAR_DATES or prop.type == "date":
        return PropertyType.DATE
    if prop.name == "hs_object_id":
        return PropertyType.ID
    if getattr(prop, "referenced_object_type", None):
        return PropertyType.REFERENCE
    simple = {
        "number": PropertyType.NUMBER,
        "datetime": PropertyType.DATETIME,
        "bool": PropertyType.BOOL,
        "enumeration": PropertyType.ENUMERATION,
        "phone_number": PropertyType.PHONE,
    }
    if prop.type in simple:
        return simple[prop.type]
    if prop.field_type == "phonenumber":
        return PropertyType.PHONE
    if prop.name == "email" or prop.field_type == "email":
        return PropertyType.EMAIL
    if prop.field_type in {"textarea", "html"}:
        return PropertyType.TEXT
    return PropertyType.STRING


def spec_of(prop: Any) -> PropertySpec:
    metadata = prop.modification_metadata
    read_only = bool(prop.calculated) or bool(metadata and metadata.read_only_value)
    return PropertySpec(
        name=prop.name,
        label=prop.label or prop.name,
        type=_property_type(prop),
        options=tuple(
            PropertyOption(value=option.value, label=option.label)
            for option in prop.options or []
            if not option.hidden
        ),
        read_only=read_only,
        custom=not prop.hubspot_defined,
        description=prop.description or "",
        max_length=STRING_MAX_LENGTH if prop.type == "string" else None,
    )


def owner_of(owner: Any) -> Owner:
    user_id = owner.user_id if owner.user_id is not None else owner.user_id_including_inactive
    return Owner(
        id=str(owner.id),
        email=owner.email or "",
        first_name=owner.first_name or "",
        last_name=owner.last_name or "",
        user_id=str(user_id) if user_id is not None else None,
        teams=tuple(team.name for team in owner.teams or []),
    )


def search_filter(item: SearchFilter) -> Filter:
    if item.operator is Operator.ENDS_WITH:
        # CONTAINS_TOKEN with a leading wildcard is HubSpot's only suffix match.
        return Filter(
            property_name=item.property, operator="CONTAINS_TOKEN", value=f"*{item.value}"
        )
    if item.operator is Operator.CONTAINS:
        return Filter(
            property_name=item.property, operator="CONTAINS_TOKEN", value=f"*{item.value}*"
        )
    operator = SEARCH_OPERATORS[item.operator]
    if item.operator in (Operator.IN, Operator.NOT_IN):
        # HubSpot matches IN / NOT_IN on strings only with lower-case values.
        return Filter(
            property_name=item.property,
            operator=operator,
            values=[value.lower() for value in item.values],
        )
    if item.operator in (Operator.HAS_VALUE, Operator.NO_VALUE):
        return Filter(property_name=item.property, operator=operator)
    return Filter(property_name=item.property, operator=operator, value=item.value)
