"""Date expressions in transcript text, resolved against the call's date.

Resolution rules (the call date is the reference, weeks start on Monday):

- a stated date with a year is taken as said; "12/31/2026" is month first unless the first
  number cannot be a month;
- a month and day without a year is its next occurrence on or after the call date;
- a bare weekday ("Friday", "by Friday", "on Friday") is the first one after the call date,
  "this Friday" may be the call date itself, "next Friday" is the Friday of next week;
- a period resolves to its last day, a week to its Friday: "end of the quarter",
  "next month", "EOY", "Q1" (the first Q1 not yet over), "by December";
- "today", "tomorrow", "in two weeks", "within 30 days" count from the call date.
"""

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sept", "sep"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_FULL_MONTH = "|".join(name for name in _MONTHS if len(name) > 4 or name in {"may", "june", "july"})
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=lambda n: (-len(n), n))) + r")\b\.?"
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?\b"
_YEAR = r"(?P<year>(?:19|20)\d{2})\b"
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_COUNT_WORDS = "two three four five six seven eight nine ten eleven twelve"
_COUNTS = {"a": 1, "an": 1, "one": 1, "a couple of": 2, "a few": 3} | {
    word: index + 2 for index, word in enumerate(_COUNT_WORDS.split())
}
_QUARTER_WORDS = {"first": 1, "second": 2, "third": 3, "fourth": 4}
_PERIOD_ABBREVIATIONS = {"eow": "week", "eom": "month", "eoq": "quarter", "eoy": "year"}


@dataclass(frozen=True)
class DateMention:
    start: int
    end: int
    value: date
    relative: bool  # worked out from the call date rather than stated as a calendar date


def find_dates(text: str, reference: date) -> list[DateMention]:
    """Date mentions in ``text`` in order; where two readings overlap the more specific wins."""
    found: list[DateMention] = []
    for pattern, resolve, relative in _PATTERNS:
        for match in pattern.finditer(text):
            try:
                value = resolve(match, reference)
            except (ValueError, OverflowError):
                # "in 99999999 days" falls off the calendar; such a phrase names no date.
                value = None
            overlaps = any(match.start() < m.end and m.start < match.end() for m in found)
            if value is not None and not overlaps:
                found.append(DateMention(*match.span(), value, relative))
    return sorted(found, key=lambda m: m.start)


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _next_occurrence(month: int, day: int, reference: date) -> date | None:
    # Eight years reach the next 29 February from any date.
    for year in range(reference.year, reference.year + 9):
        candidate = _safe_date(year, month, day)
        if candidate is not None and candidate >= reference:
            return candidate
    return None


def _calendar_date(match: re.Match[str], reference: date) -> date | None:
    month = _MONTHS[match.group("month").lower()]
    day = int(match.group("day"))
    year = match.group("year")
    if year is not None:
        return _safe_date(int(year), month, day)
    return _next_occurrence(month, day, reference)


def _iso_date(match: re.Match[str], reference: date) -> date | None:
    return _safe_date(*(int(match.group(g)) for g in ("year", "a", "b")))


def _numeric_date(match: re.Match[str], reference: date) -> date | None:
    first, second, year = (int(match.group(g)) for g in ("a", "b", "year"))
    year = year + 2000 if year < 100 else year
    month, day = (second, first) if first > 12 else (first, second)
    return _safe_date(year, month, day)


def _quarter_end(year: int, quarter: int) -> date:
    return _month_end(year, quarter * 3)


def _quarter(match: re.Match[str], reference: date) -> date:
    quarter = int(match.group("q") or _QUARTER_WORDS[match.group("qword").lower()])
    if match.group("year"):
        return _quarter_end(int(match.group("year")), quarter)
    year = reference.year
    return _quarter_end(year if _quarter_end(year, quarter) >= reference else year + 1, quarter)


def _month_only(match: re.Match[str], reference: date) -> date:
    month = _MONTHS[match.group("month").lower()]
    if match.group("year"):
        return _month_end(int(match.group("year")), month)
    end = _month_end(reference.year, month)
    return end if end >= reference else _month_end(reference.year + 1, month)


def period_end(period: str, later: bool, reference: date) -> date:
    """The last day of the call's week (its Friday), month, quarter or year, or of the next."""
    if period == "week":
        friday = reference + timedelta(days=4 - reference.weekday())
        # Said on a weekend, "this week" can only mean the coming one.
        return friday + timedelta(days=7 if later or friday < reference else 0)
    if period == "month":
        year, month = divmod(reference.year * 12 + reference.month - 1 + int(later), 12)
        return _month_end(year, month + 1)
    if period == "quarter":
        index = reference.year * 4 + (reference.month - 1) // 3 + int(later)
        return _quarter_end(index // 4, index % 4 + 1)
    return date(reference.year + int(later), 12, 31)


def _period(match: re.Match[str], reference: date) -> date:
    abbreviation = match.groupdict().get("abbr")
    if abbreviation:
        return period_end(_PERIOD_ABBREVIATIONS[abbreviation.lower()], False, reference)
    later = (match.groupdict().get("which") or "").lower() == "next"
    return period_end(match.group("period").lower(), later, reference)


def _weekday(match: re.Match[str], reference: date) -> date:
    weekday = _WEEKDAYS.index(match.group("weekday").lower())
    modifier = (match.group("mod") or "").lower()
    if modifier == "next":
        return reference + timedelta(days=7 - reference.weekday() + weekday)
    ahead = (weekday - reference.weekday()) % 7
    if ahead == 0 and modifier != "this":
        ahead = 7
    return reference + timedelta(days=ahead)


def _simple_day(match: re.Match[str], reference: date) -> date:
    word = match.group("word").lower()
    return reference + timedelta(days={"today": 0, "tonight": 0, "tomorrow": 1}.get(word, 2))


def _in_count(match: re.Match[str], reference: date) -> date:
    raw = match.group("count").lower()
    count = int(raw) if raw.isdigit() else _COUNTS[re.sub(r"\s+", " ", raw)]
    unit = match.group("unit").lower()
    if unit.startswith("day"):
        return reference + timedelta(days=count)
    if unit.startswith("week"):
        return reference + timedelta(weeks=count)
    year, month = divmod(reference.year * 12 + reference.month - 1 + count, 12)
    month += 1
    return date(year, month, min(reference.day, calendar.monthrange(year, month)[1]))


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


_Resolver = Callable[[re.Match[str], date], date | None]
_COUNT = "|".join(sorted(_COUNTS, key=lambda w: (-len(w), w)))
# In priority order, most specific first.
_PATTERNS: tuple[tuple[re.Pattern[str], _Resolver, bool], ...] = (
    (_compile(r"\b(?P<year>\d{4})-(?P<a>\d{2})-(?P<b>\d{2})\b"), _iso_date, False),
    (_compile(r"\b(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<year>\d{4}|\d{2})\b"), _numeric_date, False),
    (_compile(rf"\b{_MONTH}\s+(?:the\s+)?{_DAY}(?:,?\s+{_YEAR})?"), _calendar_date, False),
    (_compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH}(?:,?\s+{_YEAR})?"), _calendar_date, False),
    (
        _compile(
            r"\b(?:end of\s+)?(?:the\s+)?(?:Q(?P<q>[1-4])|(?P<qword>first|second|third|fourth)"
            rf"\s+quarter)\b(?:\s+(?:of\s+)?{_YEAR})?"
        ),
        _quarter,
        True,
    ),
    (
        _compile(
            r"\b(?:in|by|until|before|during|end of|early|mid|late)[\s-]+"
            rf"(?P<month>{_FULL_MONTH})\b(?:,?\s+{_YEAR})?(?![\s,]*\d)"
        ),
        _month_only,
        True,
    ),
    (
        _compile(
            r"\bend of\s+(?:the\s+|this\s+)?(?:(?P<which>next)\s+)?"
            r"(?P<period>week|month|quarter|year)\b"
        ),
        _period,
        True,
    ),
    (_compile(r"\b(?P<which>this|next)\s+(?P<period>week|month|quarter|year)\b"), _period, True),
    (_compile(r"\b(?P<period>week|month|quarter|year)[\s-]end\b"), _period, True),
    (_compile(r"\b(?P<abbr>EO[WMQY])\b"), _period, True),
    (
        _compile(
            rf"\b(?:(?P<mod>this coming|this|next|coming)\s+)?(?P<weekday>{'|'.join(_WEEKDAYS)})\b"
        ),
        _weekday,
        True,
    ),
    (_compile(r"\b(?P<word>day after tomorrow|today|tonight|tomorrow)\b"), _simple_day, True),
    (
        _compile(rf"\b(?:in|within)\s+(?P<count>\d+|{_COUNT})\s+(?P<unit>days?|weeks?|months?)\b"),
        _in_count,
        True,
    ),
)
