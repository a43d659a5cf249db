"""Money amounts and plain quantities in transcript text, spelled-out numbers included.

Spans are offsets into the text searched, so the caller can quote around them verbatim.
"""

import re
from dataclasses import dataclass
from decimal import Decimal

_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_SCALES = {
    "k": 10**3,
    "thousand": 10**3,
    "grand": 10**3,
    "m": 10**6,
    "mm": 10**6,
    "mn": 10**6,
    "mil": 10**6,
    "million": 10**6,
    "b": 10**9,
    "bn": 10**9,
    "billion": 10**9,
}
_SCALE = r"(?:k|thousand|grand|mm|mn|mil|million|m|bn|billion|b)"
# Without a currency a lone "m" or "b" is more often metres or a typo than money.
_BARE_SCALE = r"(?:k|thousand|grand|mm|mil|million|bn|billion)"
_SYMBOL = r"(?:US\$|\$|€|£)"
_CODE = r"(?:USD|EUR|GBP|CAD|AUD|CHF)"
_CURRENCY_WORD = r"(?:dollars?|bucks|euros?|pounds?|quid)"

_SMALL_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
)
_TENS_WORDS = "twenty thirty forty fifty sixty seventy eighty ninety"
_SMALL = {word: value for value, word in enumerate(_SMALL_WORDS.split())}
_TENS = {word: 10 * (index + 2) for index, word in enumerate(_TENS_WORDS.split())}
_BIG = {"thousand": 10**3, "million": 10**6, "billion": 10**9}
_NUMBER_WORD = "|".join(sorted([*_SMALL, *_TENS, "hundred", *_BIG], key=lambda w: (-len(w), w)))
_SPELLED = rf"(?:a|{_NUMBER_WORD})\b(?:(?:\s+|-)(?:and\s+)?(?:{_NUMBER_WORD})\b)*"

_NOT_AFTER = r"(?<![\w.,:$€£])"
# "point five euros" is half a euro; the words after "point" are decimals, not a number.
_NOT_DECIMAL = r"(?<!point )"
# In priority order: where two readings overlap, the earlier pattern's reading is kept.
_MONEY_PATTERNS: tuple[tuple[re.Pattern[str], bool], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), has_currency)
    for pattern, has_currency in (
        (rf"{_SYMBOL}\s?(?P<n>{_NUMBER})(?:\s?(?P<s>{_SCALE})\b)?", True),
        (rf"\b{_CODE}\s?(?P<n>{_NUMBER})(?:\s?(?P<s>{_SCALE})\b)?", True),
        (
            rf"{_NOT_AFTER}(?P<n>{_NUMBER})(?:\s?(?P<s>{_SCALE})\b)?\s?"
            rf"(?:{_CODE}\b|{_CURRENCY_WORD}\b|€|£)",
            True,
        ),
        (rf"{_NOT_DECIMAL}\b(?P<w>{_SPELLED})\s+(?:{_CURRENCY_WORD}|{_CODE})\b", True),
        (rf"{_NOT_AFTER}(?P<n>{_NUMBER})\s?(?P<s>{_BARE_SCALE})\b", False),
    )
)
_QUANTITY_PATTERNS = (
    re.compile(
        rf"{_NOT_AFTER}(?P<n>{_NUMBER})(?![\w,:]|\.\d)(?:\s?(?P<p>%|percent\b|per cent\b))?",
        re.IGNORECASE,
    ),
    re.compile(
        rf"{_NOT_DECIMAL}\b(?P<w>{_SPELLED})(?:\s?(?P<p>%|percent\b|per cent\b))?", re.IGNORECASE
    ),
)


@dataclass(frozen=True)
class Amount:
    start: int
    end: int
    value: int | float
    has_currency: bool = False
    percent: bool = False


def find_money(text: str) -> list[Amount]:
    """Money mentions: "$75,000", "75k", "USD 1.2 million", "€40,000", "twenty five euros"."""
    found: list[Amount] = []
    for pattern, has_currency in _MONEY_PATTERNS:
        for match in pattern.finditer(text):
            value = _value_of(match)
            if value is not None:
                _keep_if_free(found, Amount(*match.span(), value, has_currency=has_currency))
    return sorted(found, key=lambda a: a.start)


def find_quantities(text: str, taken: list[tuple[int, int]]) -> list[Amount]:
    """Plain numbers and percentages outside the ``taken`` spans (money, dates)."""
    found = [Amount(start, end, 0) for start, end in taken]
    for pattern in _QUANTITY_PATTERNS:
        for match in pattern.finditer(text):
            value = _value_of(match)
            if value is not None:
                amount = Amount(*match.span(), value, percent=match.group("p") is not None)
                _keep_if_free(found, amount)
    spans = set(taken)
    return sorted((a for a in found if (a.start, a.end) not in spans), key=lambda a: a.start)


def _keep_if_free(found: list[Amount], candidate: Amount) -> None:
    if all(candidate.end <= kept.start or candidate.start >= kept.end for kept in found):
        found.append(candidate)


def _value_of(match: re.Match[str]) -> int | float | None:
    groups = match.groupdict()
    if groups.get("w") is not None:
        spelled = spelled_number(groups["w"])
        return None if spelled is None else spelled
    amount = Decimal(groups["n"].replace(",", ""))
    if groups.get("s"):
        amount *= _SCALES[groups["s"].lower()]
    return plain_number(amount)


def plain_number(amount: Decimal) -> int | float:
    """An int when whole, so JSON shows 84000 rather than 84000.0."""
    if amount == amount.to_integral_value():
        return int(amount)
    return float(round(amount, 2))


def spelled_number(phrase: str) -> int | None:
    """The value of "a hundred and twenty thousand"; None for word runs that are not a
    number as said ("twelve fifty" is a price, not 62)."""
    tokens = [t for t in re.split(r"[\s-]+", phrase.lower()) if t != "and"]
    total = current = 0
    previous = None
    for index, token in enumerate(tokens):
        if token == "a":
            follower = tokens[index + 1] if index + 1 < len(tokens) else None
            if index != 0 or follower not in {"hundred", *_BIG}:
                return None
            current, previous = 1, "unit"
        elif token in _SMALL:
            value = _SMALL[token]
            if previous in {"unit", "teen"} or (previous == "tens" and not 0 < value < 10):
                return None
            current += value
            previous = "teen" if value >= 10 else "unit"
        elif token in _TENS:
            if previous in {"unit", "teen", "tens"}:
                return None
            current += _TENS[token]
            previous = "tens"
        elif token == "hundred":
            if previous in {None, "hundred", "scale"}:
                return None
            current, previous = current * 100, "hundred"
        else:
            if previous in {None, "scale"}:
                return None
            total, current, previous = total + current * _BIG[token], 0, "scale"
    return total + current
