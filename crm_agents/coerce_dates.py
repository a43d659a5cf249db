"""Dates and datetimes as a model states them from a call, for coerce.py.

What is read, besides ISO 8601:

- Named dates: "January 15, 2027", "Jan 15th 2027", "15 January 2027", "the 15th of January",
  "Friday November 27". Without a year, the year is the first one that puts the date on or
  after the call; a weekday that contradicts the date is refused rather than guessed around.
- Slashed dates are US month/day: "1/15/2027", "01/15/27" (a two-digit year is 20xx).
- Relative to the call: "today", "tomorrow", "yesterday"; "in 3 days", "in two weeks", "in a
  month" (a month later on the same day, or that month's last day when it is shorter).
- Weekdays: "Friday" and "next Friday" are the first Friday strictly after the call (a week
  later when the call is on a Friday); "this Friday" is the Friday of the seven days starting
  with the call day, so the call day itself when it is a Friday. "Next Friday" is not read
  as "Friday of next week": speakers disagree, and the reviewer sees the resulting date.
- Period ends: "end of (the) month/quarter/year" (the call's own), "end of next month/
  quarter/year", "EOM"/"EOQ"/"EOY", "end of January", "end of 2027", and "Q1 2027" or
  "end of Q1" (that calendar quarter's last day; without a year, the first on or after the
  call). Fiscal quarters are not understood because the company's fiscal calendar is not known.

A datetime given for a date field becomes its UTC date, as the CRM adapters do; a date given
for a datetime field becomes midnight UTC, and a datetime without an offset is taken as UTC.
"""

import calendar
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,6})?)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?",
    re.ASCII,
)

# Spelled out here rather than taken from `calendar` because those follow the process locale.
_MONTH_NAMES = (
    *("january", "february", "march", "april", "may", "june"),
    *("july", "august", "september", "october", "november", "december"),
)
_WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
    | {name[:3]: number for number, name in enumerate(_MONTH_NAMES, 1)}
    | {"sept": 9}
)
WEEKDAYS = (
    {name: number for number, name in enumerate(_WEEKDAY_NAMES)}
    | {name[:3]: number for number, name in enumerate(_WEEKDAY_NAMES)}
    | {"tues": 1, "weds": 2, "thur": 3, "thurs": 3}
)
_COUNTS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
_COUNTS |= {"seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}


def _either(words: Iterable[str]) -> str:
    # Longest first, so "june" is not matched as "jun" followed by a stray "e".
    return "|".join(sorted(map(re.escape, words), key=len, reverse=True))


_MONTH = rf"(?P<month>{_either(MONTHS)})"
_WEEKDAY = rf"(?P<weekday>{_either(WEEKDAYS)})"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?: (?P<year>[1-9]\d{3}))?"
_NAMED = (
    re.compile(rf"(?:{_WEEKDAY} )?(?:the )?{_MONTH} (?:the )?{_DAY}{_YEAR}", re.ASCII),
    re.compile(rf"(?:{_WEEKDAY} )?(?:the )?{_DAY} (?:of )?{_MONTH}{_YEAR}", re.ASCII),
)
_SLASHED = re.compile(
    rf"(?:{_WEEKDAY} )?(?P<month>\d{{1,2}})/(?P<day>\d{{1,2}})(?:/(?P<year>[1-9]\d{{3}}|\d{{2}}))?",
    re.ASCII,
)
_ON_WEEKDAY = re.compile(rf"(?:(?P<which>this|next) )?{_WEEKDAY}", re.ASCII)
_IN = re.compile(
    rf"(?P<in>in )?(?P<count>\d{{1,3}}|{_either(_COUNTS)}) (?P<unit>day|week|month)s?"
    r"(?P<from> from (?:now|today))?",
    re.ASCII,
)
_END_OF_SPAN = re.compile(
    r"end of (?:the |this )?(?P<this>month|quarter|year)|end of next (?P<next>month|quarter|year)"
    r"|eo(?P<abbr>[mqy])",
    re.ASCII,
)
_QUARTER = re.compile(r"(?:end of )?q(?P<quarter>[1-4])(?: (?P<year>[1-9]\d{3}))?", re.ASCII)
_END_OF_MONTH = re.compile(rf"end of {_MONTH}{_YEAR}", re.ASCII)
_END_OF_YEAR = re.compile(r"end of (?P<year>[1-9]\d{3})", re.ASCII)


class CoercionError(ValueError):
    """A value that cannot be written to a property. The message is a sentence naming the
    value and why, e.g. "'sometime soon' is not a date", fit to show a reviewer."""


def quoted(raw: object) -> str:
    """The value as a message shows it: quoted, and cut short when long."""
    if isinstance(raw, str) and len(raw) > 60:
        raw = raw[:57] + "…"
    return repr(raw)


def format_datetime(moment: datetime) -> str:
    # isoformat rather than strftime: glibc does not zero-pad years before 1000.
    return moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def wire_moment(text: str) -> datetime | None:
    """A wire date or datetime as an aware UTC datetime; None when it is neither."""
    text = text.strip()
    if _ISO_DATE.fullmatch(text):
        try:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        except ValueError:
            return None
    if _ISO_DATETIME.fullmatch(text):
        try:
            return _iso_moment(text, text)
        except CoercionError:
            return None
    return None


def parse_datetime(raw: str, *, call_date: date) -> datetime:
    text = raw.strip()
    if _ISO_DATETIME.fullmatch(text):
        return _iso_moment(text, raw)
    return datetime.combine(parse_date(raw, call_date=call_date), time(), UTC)


def parse_date(raw: str, *, call_date: date) -> date:
    text = raw.strip()
    if _ISO_DATE.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise CoercionError(f"{quoted(raw)} is not a real date") from None
    if _ISO_DATETIME.fullmatch(text):
        return _iso_moment(text, raw).date()
    spoken = _spoken(text)
    for read in (_relative, _period_end, _named, _slashed):
        found = read(spoken, call_date, raw)
        if found is not None:
            return found
    raise CoercionError(f"{quoted(raw)} is not a date")


def _iso_moment(text: str, raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.upper())
        # Converting can leave the range datetime covers (year 1 with a positive offset).
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise CoercionError(f"{quoted(raw)} is not a real date and time") from None


def _spoken(text: str) -> str:
    text = text.lower().replace(",", " ")
    text = re.sub(r"(?<=[a-z])\.", "", text)  # "Jan. 15", "Fri."
    text = " ".join(text.split())
    return re.sub(r"^(?:on|by) (?:the )?|^the ", "", text)


def _relative(spoken: str, call_date: date, raw: str) -> date | None:
    named = {"today": 0, "tomorrow": 1, "yesterday": -1}
    if spoken in named:
        return call_date + timedelta(days=named[spoken])
    if match := _ON_WEEKDAY.fullmatch(spoken):
        ahead = (WEEKDAYS[match["weekday"]] - call_date.weekday()) % 7
        return call_date + timedelta(days=ahead if match["which"] == "this" else ahead or 7)
    match = _IN.fullmatch(spoken)
    if match and (match["in"] or match["from"]):
        count = _COUNTS.get(match["count"]) or int(match["count"])
        if match["unit"] == "month":
            return _add_months(call_date, count)
        return call_date + timedelta(days=count * (7 if match["unit"] == "week" else 1))
    return None


def _period_end(spoken: str, call_date: date, raw: str) -> date | None:
    if match := _END_OF_SPAN.fullmatch(spoken):
        span = (
            match["this"]
            or match["next"]
            or {"m": "month", "q": "quarter", "y": "year"}[match["abbr"]]
        )
        later = 1 if match["next"] else 0
        if span == "month":
            return _month_end(_add_months(call_date.replace(day=1), later))
        if span == "quarter":
            last_month = (call_date.month - 1) // 3 * 3 + 3
            return _month_end(_add_months(date(call_date.year, last_month, 1), 3 * later))
        return date(call_date.year + later, 12, 31)
    if match := _QUARTER.fullmatch(spoken):
        last_month = int(match["quarter"]) * 3
        if match["year"]:
            return _month_end(date(int(match["year"]), last_month, 1))
        end = _month_end(date(call_date.year, last_month, 1))
        return end if end >= call_date else end.replace(year=end.year + 1)
    if match := _END_OF_MONTH.fullmatch(spoken):
        month = MONTHS[match["month"]]
        if match["year"]:
            return _month_end(date(int(match["year"]), month, 1))
        end = _month_end(date(call_date.year, month, 1))
        return end if end >= call_date else _month_end(date(call_date.year + 1, month, 1))
    if match := _END_OF_YEAR.fullmatch(spoken):
        return date(int(match["year"]), 12, 31)
    return None


def _named(spoken: str, call_date: date, raw: str) -> date | None:
    for pattern in _NAMED:
        if match := pattern.fullmatch(spoken):
            return _checked(match, MONTHS[match["month"]], call_date, raw, hint="")
    return None


def _slashed(spoken: str, call_date: date, raw: str) -> date | None:
    match = _SLASHED.fullmatch(spoken)
    if match is None:
        return None
    hint = " (slashed dates are read month/day)"
    return _checked(match, int(match["month"]), call_date, raw, hint=hint)


def _checked(match: re.Match[str], month: int, call_date: date, raw: str, *, hint: str) -> date:
    """The date a named or slashed form names, with its year settled and its weekday checked."""
    day = int(match["day"])
    year = match["year"]
    if year is None:
        found = _next_occurrence(month, day, call_date)
    else:
        try:
            found = date(int(year) + (2000 if len(year) == 2 else 0), month, day)
        except ValueError:
            found = None
    if found is None:
        raise CoercionError(f"{quoted(raw)} is not a real date{hint}")
    weekday = match["weekday"]
    if weekday and WEEKDAYS[weekday] != found.weekday():
        actual = _WEEKDAY_NAMES[found.weekday()].title()
        said = _WEEKDAY_NAMES[WEEKDAYS[weekday]].title()
        raise CoercionError(
            f"{quoted(raw)} does not add up: {_MONTH_NAMES[found.month - 1].title()} "
            f"{found.day}, {found.year} is a "
            f"{actual}, not a {said}"
        )
    return found


def _next_occurrence(month: int, day: int, call_date: date) -> date | None:
    # Nine years reach a February 29 from anywhere; an impossible day never matches.
    for year in range(call_date.year, call_date.year + 9):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate >= call_date:
            return candidate
    return None


def _add_months(day: date, months: int) -> date:
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])
