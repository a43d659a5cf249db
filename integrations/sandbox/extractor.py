"""Deterministic, rule-based extraction: the ``rules`` mode of the sandbox model endpoint.

Given the requested fields and a call transcript, ``extract`` answers exactly the extraction
contract of shared/scenarios/README.md, one update per requested field in request order and
nothing else:

    {"updates": [{"field": ..., "value": <string | number | null>,
                  "evidence": "<verbatim quote>", "confidence": <0..1>}]}

A field with nothing found gets ``value`` null, ``evidence`` "" and ``confidence`` 0.

The request contract
--------------------
``build_response_format`` and ``render_transcript`` write it (prompt builder),
``parse_request`` reads it back (emulator); anything else raises ``ExtractionRequestError``
naming the offending spot.

* ``response_format`` is ``{"type": "json_schema", "json_schema": {"name": "extraction",
  "strict": true, "schema": S}}``. ``S`` is a strict object whose one property ``updates`` is
  an array; its ``items.anyOf`` has one branch per field, in request order. A branch is a
  strict object with required ``field``, ``value``, ``evidence``, ``confidence``;
  ``properties.field`` is ``{"type": "string", "const": <field name>}``, the branch's
  ``description`` is the user's instruction, its optional ``title`` the CRM label, and
  ``properties.value`` names the field type in its ``title``::

    string       {"title": "string", "type": ["string", "null"]}
    number       {"title": "number", "type": ["number", "null"]}
    date         {"title": "date", "type": ["string", "null"], "format": "date"}
    datetime     {"title": "datetime", "type": ["string", "null"], "format": "date-time"}
    bool         {"title": "bool", "type": ["string", "null"], "enum": ["true", "false", null]}
    enumeration  {"title": "enumeration", "anyOf": [{"type": "string", "const": <value>,
                  "title": <label>}, ..., {"type": "null"}]}

  An enumeration too large for OpenAI's schema limits (crm_agents/prompts/schema_limits.py)
  is asked unconstrained: ``{"title": "enumeration", "type": ["string", "null"],
  "description": OPTIONS_HINT + <JSON list of [value, label]>}``; the option is then checked
  in code when the answer is coerced.

  ``S`` must be exactly what ``build_response_format`` makes for the fields it names.
* The last user message holding a line ``<<<TRANSCRIPT`` has, outside the block, one line
  ``Call date: YYYY-MM-DD`` (the reference for relative dates) and inside it, up to the line
  ``TRANSCRIPT>>>``, one line per turn, ``[HH:MM:SS] Speaker (external|internal): text``,
  the side tag left out when unknown. Other messages, the system prompt included, are not read.

Which rule a field gets (``field_kind``)
----------------------------------------
Its type first, then the words of its name, label and instruction, so a new field needs no
code: enumeration -> option mentions (label or value, whole words, any case); bool -> a
keyword sentence, "false" when negated; date/datetime -> dates (ISO ``YYYY-MM-DD``, midnight
UTC for datetime; resolution rules in ``extractor_dates``); number -> money when it speaks of
amount, price, cost, budget, value, revenue, ARR..., else numbers near its keywords; string
-> next step when it speaks of a next step, follow-up, action, plan or what was agreed (the
value is the committed clause: "Next step then: I will send the MSA" gives "Send the MSA"),
pain when it speaks of pains, problems, challenges, objections..., else the sentence with
most of its keywords (text values are the sentence without its end mark, at most 250
characters). Keywords are the name and instruction words less stop words, lightly stemmed
and widened by cue families ("pain" also finds "struggle", "close" also finds "sign").

Evidence is the sentence holding the cue, sliced from one turn's text (for a sentence over
300 characters, a window around the cue cut at spaces), so it is verbatim by construction.
A turn that addresses the model ("ignore previous instructions", "Assistant, ...") is never
evidence: it is text to be refused, not something said about the deal.

Confidence: a base per cue strength, then adjustments; rounded to 2 decimals, kept in
0.05..0.95 because rules are never certain:

* money: 0.9 when the sentence agrees to it ("commit", "we can work with", "approved"), 0.75
  with a field keyword, 0.6 otherwise; -0.15 when no currency is said ("75k").
* date: 0.85 with a field keyword within 40 characters, 0.75 elsewhere in the sentence, 0.6
  right after "by/before/until", 0.5 otherwise; -0.1 when relative ("next Friday").
* next step: 0.9 "next step"/"action item"/"follow-up", 0.75 a commitment ("I will",
  "let's"), 0.6 an action verb ("send", "schedule") with a date; +0.05 when a date is said.
* pain: 0.75 with a pain word, 0.6 with other keywords only; -0.2 when the pain word is
  negated ("no problem") or asked about.
* text: 0.55 for one keyword, 0.65 for two, 0.75 for three or more.
* quantity: 0.8 with a keyword right next to it ("250 seats"), 0.7 within 30 characters,
  0.6 elsewhere in the sentence; a percent-like field ("discount", "rate", "%") takes only
  percentages, any other field none.
* enumeration: 0.85 for an option with a field keyword in the sentence, 0.6 for a
  distinctive option alone (short or generic labels such as "Yes" or "Other" need a keyword).
* bool: 0.6 for one keyword, 0.7 for two or more.
* everywhere: -0.2 when the sentence is a question, or negated (not for pains and bools,
  where the negation is what was said).

Tie-break: the highest confidence wins; then a statement by an external attendee over one by
an internal or unknown speaker; then the later one in the call (turns ordered by start time,
then later in the turn), so a revised number supersedes the first. Nothing else is
consulted: the same request gives the same answer, byte for byte (``ExtractionAnswer.to_json``).
"""

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from integrations.sandbox.extractor_amounts import find_money, find_quantities
from integrations.sandbox.extractor_contract import (
    ExtractionAnswer,
    ExtractionRequest,
    ExtractionRequestError,
    FieldOption,
    FieldRequest,
    FieldType,
    Turn,
    Update,
    build_response_format,
    one_line,
    parse_request,
    render_transcript,
)
from integrations.sandbox.extractor_dates import find_dates
from integrations.sandbox.extractor_patterns import (
    ACTION,
    AGREED,
    COMMITMENT,
    DEADLINE_BEFORE,
    INJECTION,
    NEGATED_CUE,
    NEGATION,
    NEXT_STEP,
    PAIN,
    Keywords,
    Sentence,
    clip,
    evidence_for,
    is_hedged,
    nearest_distance,
    next_step_value,
    split_sentences,
    words,
    wordset,
)

__all__ = [
    "ExtractionAnswer",
    "ExtractionRequest",
    "ExtractionRequestError",
    "FieldKind",
    "FieldOption",
    "FieldRequest",
    "FieldType",
    "Turn",
    "Update",
    "answer_chat_request",
    "build_response_format",
    "extract",
    "field_kind",
    "one_line",
    "parse_request",
    "render_transcript",
]

HEDGE_PENALTY = 0.2
_MONEY_WORDS = re.compile(
    r"amount|price|pricing|cost|budget|revenue|\bacv\b|\barr\b|\bmrr\b|\btcv\b|spend|\bfees?\b"
    r"|dollar|\busd\b|\beur\b|euro|\bgbp\b|currency|\bvalue\b|deal size|[$€£]"
)
_PERCENT_WORDS = re.compile(r"percent|%|\brate\b|discount|margin")
_NEXT_STEP_WORDS = re.compile(r"\bnext\b|\bsteps?\b|follow|action|to-?do|\btasks?\b|agreed|\bplan")
_PAIN_WORDS = re.compile(
    r"pain|problem|struggl|challeng|issue|frustrat|difficult|bottleneck|headache|blocker"
    r"|concern|complain|objection"
)
_GENERIC_OPTION_WORDS = wordset(
    "yes no none other others new open closed true false high low medium unknown n a na"
)


class FieldKind(StrEnum):
    MONEY = "money"
    QUANTITY = "quantity"
    DATE = "date"
    NEXT_STEP = "next_step"
    PAIN = "pain"
    TEXT = "text"
    ENUMERATION = "enumeration"
    BOOL = "bool"


@dataclass(frozen=True)
class _Spoken:
    """A sentence with where and by whom it was said."""

    sentence: Sentence
    turn_rank: int
    external: bool | None


@dataclass(frozen=True)
class _Candidate:
    value: str | int | float
    evidence: str
    confidence: float
    external: bool | None
    position: tuple[int, int]

    @property
    def rank(self) -> tuple[float, bool, tuple[int, int]]:
        return (self.confidence, self.external is True, self.position)


def answer_chat_request(
    messages: Sequence[Mapping[str, Any]], response_format: Mapping[str, Any] | None
) -> ExtractionAnswer:
    """What the emulator's ``rules`` mode answers to a Chat Completions extraction request."""
    return extract(parse_request(messages, response_format))


def extract(request: ExtractionRequest) -> ExtractionAnswer:
    spoken = _trusted_sentences(request.turns)
    return ExtractionAnswer(
        tuple(_extract_field(field, spoken, request.call_date) for field in request.fields)
    )


def field_kind(field: FieldRequest) -> FieldKind:
    """The rule a field gets, from its type and the words of its name, label and instruction."""
    profile = " ".join(
        [*words(field.name), field.name.lower(), *words(field.label), field.instruction.lower()]
    )
    match field.type:
        case FieldType.ENUMERATION:
            return FieldKind.ENUMERATION
        case FieldType.BOOL:
            return FieldKind.BOOL
        case FieldType.DATE | FieldType.DATETIME:
            return FieldKind.DATE
        case FieldType.NUMBER:
            return FieldKind.MONEY if _MONEY_WORDS.search(profile) else FieldKind.QUANTITY
        case FieldType.STRING:
            if _NEXT_STEP_WORDS.search(profile):
                return FieldKind.NEXT_STEP
            return FieldKind.PAIN if _PAIN_WORDS.search(profile) else FieldKind.TEXT


def _trusted_sentences(turns: Sequence[Turn]) -> list[_Spoken]:
    ordered = sorted(enumerate(turns), key=lambda pair: (pair[1].start, pair[0]))
    return [
        _Spoken(sentence, rank, turn.external)
        for rank, (_, turn) in enumerate(ordered)
        if not INJECTION.search(turn.text)
        for sentence in split_sentences(turn.text)
    ]


def _extract_field(field: FieldRequest, spoken: list[_Spoken], reference: date) -> Update:
    rule = _RULES[field_kind(field)]
    keywords = Keywords.of(field.name, field.label, field.instruction)
    candidates = [
        _Candidate(
            value,
            evidence,
            round(min(0.95, max(0.05, confidence)), 2),
            said.external,
            (said.turn_rank, said.sentence.offset + cue),
        )
        for said in spoken
        for value, evidence, confidence, cue in rule(field, keywords, said.sentence, reference)
    ]
    best = max(candidates, key=lambda c: c.rank, default=None)
    if best is None:
        return Update(field.name, None, "", 0.0)
    return Update(field.name, best.value, best.evidence, best.confidence)


# A rule yields (value, evidence, raw confidence, where its cue starts in the sentence).
_Finding = tuple[str | int | float, str, float, int]


def _hedge(text: str) -> float:
    return HEDGE_PENALTY if is_hedged(text) else 0.0


def _money(
    field: FieldRequest, keywords: Keywords, sentence: Sentence, reference: date
) -> Iterator[_Finding]:
    text = sentence.text
    base = 0.9 if AGREED.search(text) else 0.75 if keywords.spans(text) else 0.6
    for amount in find_money(text):
        evidence = evidence_for(sentence, amount.start, amount.end)
        penalty = (0.0 if amount.has_currency else 0.15) + _hedge(text)
        yield amount.value, evidence, base - penalty, amount.start


def _quantity(
    field: FieldRequest, keywords: Keywords, sentence: Sentence, reference: date
) -> Iterator[_Finding]:
    text = sentence.text
    spans = keywords.spans(text)
    if not spans:
        return
    taken = [(a.start, a.end) for a in find_money(text)]
    taken += [(d.start, d.end) for d in find_dates(text, reference)]
    percent_only = _PERCENT_WORDS.search(f"{field.name} {field.instruction}".lower()) is not None
    for number in find_quantities(text, taken):
        raw = text[number.start : number.end].lower()
        # A bare four-digit year is a date said loosely, and a lone "one" is mostly a pronoun.
        if raw == "one" or (raw.isdigit() and 1900 <= int(raw) < 2100):
            continue
        if number.percent != percent_only:
            continue
        gap = nearest_distance(spans, number.start, number.end)
        base = 0.6 if gap is None or gap > 30 else 0.7 if gap > 1 else 0.8
        evidence = evidence_for(sentence, number.start, number.end)
        yield number.value, evidence, base - _hedge(text), number.start


def _date(
    field: FieldRequest, keywords: Keywords, sentence: Sentence, reference: date
) -> Iterator[_Finding]:
    text = sentence.text
    spans = keywords.spans(text)
    for mention in find_dates(text, reference):
        distance = nearest_distance(spans, mention.start, mention.end)
        if distance is not None:
            base = 0.85 if distance <= 40 else 0.75
        else:
            base = 0.6 if DEADLINE_BEFORE.search(text, 0, mention.start) else 0.5
        penalty = (0.1 if mention.relative else 0.0) + _hedge(text)
        value = mention.value.isoformat()
        if field.type == FieldType.DATETIME:
            value += "T00:00:00Z"
        evidence = evidence_for(sentence, mention.start, mention.end)
        yield value, evidence, base - penalty, mention.start


def _next_step(
    field: FieldRequest, keywords: Keywords, sentence: Sentence, reference: date
) -> Iterator[_Finding]:
    text = sentence.text
    dated = bool(find_dates(text, reference))
    explicit, commitment, action = (p.search(text) for p in (NEXT_STEP, COMMITMENT, ACTION))
    if explicit:
        base, cue = 0.9, explicit
    elif commitment:
        base, cue = 0.75, commitment
    elif action and dated:
        base, cue = 0.6, action
    else:
        return
    evidence = evidence_for(sentence, *cue.span())
    bonus = 0.05 if dated else 0.0
    yield next_step_value(evidence), evidence, base + bonus - _hedge(text), cue.start()


def _pain(
    field: FieldRequest, keywords: Keywords, sentence: Sentence, reference: date
) -> Iterator[_Finding]:
    text = sentence.text
    cue = PAIN.search(text)
    spans = keywords.spans(text)
    if cue is None and not spans:
        return
    start, end = cue.span() if cue else spans[0]
    evidence = evidence_for(sentence, start, end)
    # Pains are often said in the negative ("we can't see ..."), so only a question or a
    # negated cue ("no problem", "not difficult") weakens one.
    hedged = text.rstrip().endswith("?") or NEGATED_CUE.search(text, 0, start) is not None
    base = 0.75 if cue else 0.6
    yield _as_text(evidence), evidence, base - (HEDGE_PENALTY if hedged else 0.0), start


def _text(
    field: FieldRequest, keywords: Keywords, sentence: Sentence, reference: date
) -> Iterator[_Finding]:
    text = sentence.text
    hits = keywords.distinct_hits(text)
    if not hits:
        return
    start, end = keywords.spans(text)[0]
    evidence = evidence_for(sentence, start, end)
    yield _as_text(evidence), evidence, 0.45 + 0.1 * min(hits, 3) - _hedge(text), start


def _as_text(evidence: str) -> str:
    return clip(evidence.rstrip(".!?").strip())


def _enumeration(
    field: FieldRequest, keywords: Keywords, sentence: Sentence, reference: date
) -> Iterator[_Finding]:
    text = sentence.text
    spans = keywords.spans(text)
    for option in field.options:
        for match in _option_pattern(option).finditer(text):
            near = any(e <= match.start() or s >= match.end() for s, e in spans)
            if not near and not _distinctive(option):
                continue
            evidence = evidence_for(sentence, *match.span())
            yield option.value, evidence, (0.85 if near else 0.6) - _hedge(text), match.start()


def _option_pattern(option: FieldOption) -> re.Pattern[str]:
    phrases = sorted(
        {" ".join(re.split(r"[\s_-]+", p.strip())) for p in (option.label, option.value)} - {""},
        key=lambda p: (-len(p), p),
    )
    alternatives = "|".join(
        r"[\s_-]+".join(re.escape(part) for part in phrase.split(" ")) for phrase in phrases
    )
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def _distinctive(option: FieldOption) -> bool:
    option_words = set(words(option.label)) | set(words(option.value))
    return bool(option_words - _GENERIC_OPTION_WORDS) and len(option.label.strip()) > 2


def _bool(
    field: FieldRequest, keywords: Keywords, sentence: Sentence, reference: date
) -> Iterator[_Finding]:
    text = sentence.text
    hits = keywords.distinct_hits(text)
    if not hits:
        return
    value = "false" if NEGATION.search(text) else "true"
    question = HEDGE_PENALTY if text.rstrip().endswith("?") else 0.0
    start, end = keywords.spans(text)[0]
    evidence = evidence_for(sentence, start, end)
    yield value, evidence, (0.7 if hits >= 2 else 0.6) - question, start


_RULES = {
    FieldKind.MONEY: _money,
    FieldKind.QUANTITY: _quantity,
    FieldKind.DATE: _date,
    FieldKind.NEXT_STEP: _next_step,
    FieldKind.PAIN: _pain,
    FieldKind.TEXT: _text,
    FieldKind.ENUMERATION: _enumeration,
    FieldKind.BOOL: _bool,
}
