"""What a model proposes for a CRM property, as the CRM's wire value, or a refusal with a reason.

Wire values follow integrations/crm/types.py: numbers in plain decimal notation, dates
``YYYY-MM-DD``, datetimes ISO 8601 UTC ending in ``Z``, booleans ``"true"`` / ``"false"``, no
value as None. Everything here is deterministic and pure, so a proposal can be re-checked at
approval time and give the same answer. Dates are read in coerce_dates.py.

Numbers: currency marks ("$", "€", "USD") and thousands commas are dropped, "k", "M",
"thousand", "million", "bn" multiply, and scientific notation is read (but never written). A
dot is always the decimal point, so "€ 12.500" is 12.5 (European thousands dots are not
guessed at), and a comma that does not separate thousands is refused. Ranges, percentages,
"(500)" and numbers in words are refused: each needs a choice the model, not this module,
should make explicitly.

Text: what a transcript says reaches the CRM as plain words. Markup is stripped (with what
script and style hold), control characters removed, whitespace normalised; appended notes
start a new line in a multi-line field and follow " | " in a one-line one.
"""

import re
from dataclasses import dataclass
from datetime import date
from decimal import Context, Decimal, InvalidOperation
from enum import StrEnum

from crm_agents.coerce_dates import (
    CoercionError,
    format_datetime,
    parse_date,
    parse_datetime,
    quoted,
    wire_moment,
)
from crm_agents.coerce_text import clean_text
from crm_agents.coerce_text import collapse as _collapse
from integrations.crm.types import PropertySpec, PropertyType

__all__ = [
    "CoercionError",
    "Planned",
    "WriteMode",
    "apply_write_mode",
    "coerce_value",
    "same_value",
]

# --- coercion ------------------------------------------------------------------------------

# Wide enough that nothing within the size limits below is ever rounded.
_EXACT = Context(prec=100)
_MAX_DIGITS = 34  # what a decimal128 holds; more is not a figure anyone says on a call
_MAX_MAGNITUDE = 30  # powers of ten either side of the point

_MULTIPLIERS = {"k": 3, "thousand": 3, "m": 6, "mm": 6, "mn": 6, "mil": 6, "million": 6}
_MULTIPLIERS |= {"b": 9, "bn": 9, "billion": 9}
_CURRENCY_PREFIXES = ("$", "€", "£", "¥", "₹", "usd", "eur", "gbp", "cad", "aud", "chf", "inr")
_CURRENCY_SUFFIXES = (*_CURRENCY_PREFIXES, "dollars", "dollar", "euros", "euro", "pounds")


def _either(words: tuple[str, ...] | dict[str, int]) -> str:
    return "|".join(sorted(map(re.escape, words), key=len, reverse=True))


_NUMBER = re.compile(
    rf"(?P<sign>[-+])? ?(?:(?:{_either(_CURRENCY_PREFIXES)}) ?)?(?P<sign2>[-+])? ?"
    r"(?P<digits>(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?:e[-+]?\d{1,3})?)"
    rf"(?: ?(?P<multiplier>{_either(_MULTIPLIERS)}))?(?: ?(?:{_either(_CURRENCY_SUFFIXES)}))?",
    re.ASCII,
)
_RANGE = re.compile(r"\d ?[a-z]{0,8} ?(?:[-\u2013\u2014]|to|and|or) ?\D{0,4}\d|between", re.ASCII)
_TRUTHS = {"true": True, "yes": True, "y": True, "1": True}
_TRUTHS |= {"false": False, "no": False, "n": False, "0": False}
_EMAIL = re.compile(r"[^@\s<>,;]+@[^@\s<>,;.]+(?:\.[^@\s<>,;.]+)+")
_PHONE = re.compile(
    r"(?P<main>\+?[\d ().-]+?) ?(?:(?:x|ext\.?|extension) ?(?P<extension>\d{1,6}))?",
    re.ASCII | re.IGNORECASE,
)


def coerce_value(
    raw: object, spec: PropertySpec, *, call_date: date, max_length: int | None = None
) -> str | None:
    """``raw`` as ``spec``'s wire value; None for no value (the caller decides whether
    clearing is allowed). Raises CoercionError when it cannot be read without guessing."""
    if spec.type in (PropertyType.REFERENCE, PropertyType.ID):
        raise CoercionError(
            f"{spec.label} links to an owner or record: owners and record links are not set "
            "from a transcript"
        )
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    # bool is an int subclass: True must not quietly become 1 in a number field.
    if isinstance(raw, bool) and spec.type is not PropertyType.BOOL:
        raise CoercionError(f"{raw!r} is a yes/no answer, not a value for {spec.label}")
    match spec.type:
        case PropertyType.NUMBER:
            value = _number(raw)
        case PropertyType.DATE:
            value = parse_date(_text(raw, "a date"), call_date=call_date).isoformat()
        case PropertyType.DATETIME:
            value = format_datetime(parse_datetime(_text(raw, "a date"), call_date=call_date))
        case PropertyType.ENUMERATION:
            value = _option(raw, spec)
        case PropertyType.BOOL:
            value = _bool(raw)
        case PropertyType.EMAIL:
            value = _email(raw)
        case PropertyType.PHONE:
            value = _phone(raw)
        case PropertyType.TEXT:
            value = clean_text(_text(raw, "text", numbers=True), lines=True)
        case PropertyType.STRING:
            value = clean_text(_text(raw, "text", numbers=True), lines=False)
        case _:
            raise CoercionError(f"{spec.label} is a {spec.type} field, which this cannot set")
    if max_length is not None and len(value) > max_length:
        raise CoercionError(
            f"{quoted(value)} is {len(value)} characters; the field holds at most {max_length}"
        )
    return value


def _plain_number(number: Decimal) -> str:
    text = format(number.normalize(_EXACT), "f")
    return "0" if text == "-0" else text


def _text(raw: object, kind: str, *, numbers: bool = False) -> str:
    if isinstance(raw, str):
        return raw
    if numbers and isinstance(raw, int | float | Decimal):
        return _number(raw)
    raise CoercionError(f"{quoted(raw)} is not {kind}")


def _number(raw: object) -> str:
    if isinstance(raw, int):
        number = Decimal(raw)
    elif isinstance(raw, float):
        number = Decimal(str(raw))  # str gives the shortest repr, not the binary expansion
    elif isinstance(raw, Decimal):
        number = raw
    elif isinstance(raw, str):
        number = _parse_number(raw)
    else:
        raise CoercionError(f"{quoted(raw)} is not a number")
    if not number.is_finite():
        raise CoercionError(f"{quoted(raw)} is not a number")
    if not number.is_zero():
        digits = len("".join(map(str, number.as_tuple().digits)).rstrip("0"))
        if digits > _MAX_DIGITS or abs(number.adjusted()) > _MAX_MAGNITUDE:
            raise CoercionError(f"{quoted(raw)} is beyond what a number field holds")
    return _plain_number(number)


def _parse_number(raw: str) -> Decimal:
    text = " ".join(raw.replace("\u2212", "-").lower().split())
    match = _NUMBER.fullmatch(text)
    if match is None or (match["sign"] and match["sign2"]):
        raise CoercionError(_why_not_a_number(raw, text))
    number = Decimal(match["digits"].replace(",", ""))
    if match["multiplier"]:
        number = number.scaleb(_MULTIPLIERS[match["multiplier"]], _EXACT)
    # copy_negate, not unary minus: that rounds to the default context's 28 digits.
    return number.copy_negate() if "-" in (match["sign"], match["sign2"]) else number


def _why_not_a_number(raw: str, text: str) -> str:
    if not re.search(r"\d", text, re.ASCII):
        return f"{quoted(raw)} is not a number written in digits"
    if _RANGE.search(text):
        return f"{quoted(raw)} is a range, not a single number"
    if "%" in text:
        return f"{quoted(raw)} is a percentage; whether the field stores 15 or 0.15 is not known"
    if "(" in text:
        return f"{quoted(raw)} uses parentheses; a negative amount needs a minus sign"
    if "," in text:
        return f"{quoted(raw)} has a comma that is not a thousands separator"
    return f"{quoted(raw)} is not a number"


def _option(raw: object, spec: PropertySpec) -> str:
    wanted = _text(raw, "an option", numbers=True).strip()
    folded = _collapse(wanted).casefold()
    # Exact first, so that options differing only in case stay reachable.
    for matches in (
        {option.value for option in spec.options if option.value == wanted},
        {option.value for option in spec.options if option.value.casefold() == folded},
        {option.value for option in spec.options if _collapse(option.label).casefold() == folded},
    ):
        if len(matches) == 1:
            return matches.pop()
        if matches:
            raise CoercionError(f"{quoted(raw)} matches more than one option of {spec.label}")
    if not spec.options:
        raise CoercionError(f"{quoted(raw)} is not an option: {spec.label} has no options")
    labels = ", ".join(option.label for option in spec.options)
    raise CoercionError(f"{quoted(raw)} is not an option of {spec.label} ({labels})")


def _bool(raw: object) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    text = _text(raw, "a yes/no answer", numbers=True).strip().lower()
    if text not in _TRUTHS:
        raise CoercionError(f"{quoted(raw)} is not a yes/no answer")
    return "true" if _TRUTHS[text] else "false"


def _email(raw: object) -> str:
    text = _text(raw, "an email address").strip()
    text = text.removeprefix("mailto:").removeprefix("<").removesuffix(">").strip()
    if not _EMAIL.fullmatch(text):
        raise CoercionError(f"{quoted(raw)} is not an email address")
    return text.lower()


def _phone(raw: object) -> str:
    text = " ".join(_text(raw, "a phone number", numbers=True).split())
    match = _PHONE.fullmatch(text)
    if match is None or match["main"].count("(") != match["main"].count(")"):
        raise CoercionError(f"{quoted(raw)} is not a phone number")
    digits = len(re.sub(r"\D", "", match["main"], flags=re.ASCII))
    if not 7 <= digits <= 15:
        raise CoercionError(
            f"{quoted(raw)} has {digits} digits; a phone number has between 7 and 15"
        )
    main = match["main"].strip()
    return f"{main} x{match['extension']}" if match["extension"] else main


# --- comparison ----------------------------------------------------------------------------


def same_value(a: str | None, b: str | None, spec: PropertySpec) -> bool:
    """Whether two wire values mean the same thing for ``spec`` ("84000" and "84000.00")."""
    a, b = _blank_to_none(a), _blank_to_none(b)
    if a is None or b is None:
        return a is b
    return _comparable(a, spec.type) == _comparable(b, spec.type)


def _blank_to_none(value: str | None) -> str | None:
    return value if value is not None and value.strip() else None


def _comparable(value: str, kind: PropertyType) -> object:
    """A key that is equal for equal meanings; the text itself when ``value`` does not parse,
    so that malformed values compare as text rather than raising."""
    text = value.strip()
    match kind:
        case PropertyType.NUMBER:
            try:
                number = Decimal(text)
            except InvalidOperation:
                return text
            return number if number.is_finite() else text
        case PropertyType.DATE | PropertyType.DATETIME:
            moment = wire_moment(text)
            if moment is None:
                return text
            return moment.date() if kind is PropertyType.DATE else moment
        case PropertyType.BOOL:
            return _TRUTHS.get(text.lower(), text.lower())
        case PropertyType.ENUMERATION | PropertyType.EMAIL:
            return text.casefold()
        case PropertyType.PHONE:
            # Formatting differs between what reps type and what the CRM shows.
            return re.sub(r"\D", "", text, flags=re.ASCII)
        case _:
            return _collapse(text)


# --- write modes ---------------------------------------------------------------------------


class WriteMode(StrEnum):
    OVERWRITE = "overwrite"
    APPEND = "append"
    APPEND_IF_DIFFERENT = "append_if_different"
    FILL_EMPTY = "fill_empty"


@dataclass(frozen=True)
class Planned:
    value: str | None  # what to write; meaningless when skip is set
    skip: str | None = None  # a human reason when nothing should be written (a no-op)


# Appended notes start a new line in a multi-line field (HubSpot textarea, Salesforce
# textarea); STRING fields are single-line in both CRMs, so there they follow a " | " (the
# separator scenario files already expect).
_APPEND_SEPARATORS = {PropertyType.TEXT: "\n", PropertyType.STRING: " | "}


def apply_write_mode(
    mode: WriteMode | str,
    current: str | None,
    proposed: str | None,
    spec: PropertySpec,
    *,
    max_length: int | None = None,
) -> Planned:
    """What to write given the CRM's ``current`` value and the coerced ``proposed`` one.

    Appending only makes sense for text: two amounts, dates or options joined together are
    not a value of the field, so the append modes overwrite for every other type. Absence is
    never a reason to clear a field: a None proposal is always skipped.
    """
    mode = WriteMode(mode)
    if proposed is None or not proposed.strip():
        return Planned(None, skip="no value in the transcript")
    current = _blank_to_none(current)
    if mode is WriteMode.FILL_EMPTY and current is not None:
        return Planned(None, skip="the field already has a value (fill-empty)")
    separator = _APPEND_SEPARATORS.get(spec.type)
    if mode in (WriteMode.OVERWRITE, WriteMode.FILL_EMPTY) or separator is None or not current:
        if same_value(current, proposed, spec):
            return Planned(None, skip="the CRM already holds this value")
        return _within(proposed, max_length, appended=False)
    if mode is WriteMode.APPEND_IF_DIFFERENT and (
        _collapse(proposed).casefold() in _collapse(current).casefold()
    ):
        return Planned(None, skip="the field already contains this text")
    # "Pricing |" + "Security" reads "Pricing | Security", not "Pricing | | Security".
    held = current.rstrip().removesuffix(separator.strip()).rstrip()
    return _within(held + separator + proposed.strip(), max_length, appended=True)


def _within(value: str, max_length: int | None, *, appended: bool) -> Planned:
    if max_length is None or len(value) <= max_length:
        return Planned(value)
    subject = "appending would make the value" if appended else "the value is"
    return Planned(
        None, skip=f"{subject} {len(value)} characters; the field holds at most {max_length}"
    )
