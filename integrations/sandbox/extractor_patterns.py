"""Text plumbing for the rule-based extractor: sentences, evidence, keywords and cue phrases.

Every span handed out here is a slice of a turn's text, so evidence built from it is
verbatim by construction.
"""

import re
from dataclasses import dataclass
from functools import cached_property

# Long enough for a spoken sentence, short enough for a review screen; the AMI transcripts
# have "sentences" of several thousand characters.
MAX_EVIDENCE_CHARS = 300

_APOS = "['\u2019]"


def wordset(text: str) -> frozenset[str]:
    """Word lists below read as prose; one literal per line would bury them."""
    return frozenset(text.split())


_BOUNDARY = re.compile(r"[.!?]+(?=\s|$)")
_LAST_WORD = re.compile(r"\S+$")
_ABBREVIATIONS = wordset(
    "mr mrs ms dr st inc ltd co corp vs etc approx no jan feb mar apr jun jul aug sep "
    "sept oct nov dec mon tue tues wed thu thur thurs fri sat sun"
)
_STOPWORDS = wordset(
    "a about above after again all also an and any are as at be been before being both "
    "but by can could did do does during each either for from had has have he her here "
    "his how i if in into is it its just may me might more most must my no nor not of on "
    "once one only or other our out over own same she should so some such than that the "
    "their them then there these they this those through to too under until up us very "
    "was we were what when where which while who whom why will with would you your buyer "
    "buyers customer customers client clients prospect prospects seller rep reps side "
    "sides said say says stated state states mentioned mention mentions told call calls "
    "meeting transcript field fields concrete specific exact given whatever whether date "
    "number"
)
# Families of cue stems: a field whose name or instruction touches one member is matched
# against all of them, so "Pain points" also finds "we struggle with ...".
_FAMILIES: tuple[tuple[str, ...], ...] = tuple(
    tuple(family.split("|"))
    for family in (
        "pain|problem|issue|struggl|challeng|frustrat|difficult|bottleneck|headache|blocker"
        "|concern|complain",
        "close|clos|sign|signature|decision|decid",
        "start|kickoff|kick off|launch|go live|go-live|onboard|rollout",
        "renew|expir",
        "compet|vendor|alternative|incumbent",
        "budget|price|pricing|cost|spend|amount",
        "next step|follow up|follow-up|action item",
    )
)

INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b[^.!?]{0,40}?"
    r"\b(?:instructions?|prompts?|rules|guidelines|polic(?:y|ies))\b"
    r"|\b(?:system|developer) (?:prompt|message|mode)\b"
    r"|\byou are now\b|\bnew instructions?\b|\bjailbreak"
    r"|\bnote to (?:the )?(?:ai|assistant|model|agent)\b"
    r"|(?:^|[.!?]\s+)(?:(?:hey|ok|okay|dear)\s+(?:ai|model|bot|assistant|chatgpt|gpt|copilot)"
    r"|assistant|chatgpt|copilot|(?:the\s+)?(?:ai|crm)\s+(?:assistant|agent))\s*[,:]",
    re.IGNORECASE,
)
NEGATION = re.compile(
    rf"\b(?:not|never|cannot|no way|too (?:high|much|expensive|steep|low))\b|n{_APOS}t\b",
    re.IGNORECASE,
)
# A negation right before a cue word: "no problem", "isn't an issue", "not that difficult".
NEGATED_CUE = re.compile(
    rf"(?:\b(?:not|no|never|without)|n{_APOS}t)(?:\s+\w+){{0,2}}\s+$", re.IGNORECASE
)
COMMITMENT = re.compile(
    rf"\b(?:I{_APOS}ll|I will|I{_APOS}m going to|I am going to|we{_APOS}ll|we will"
    rf"|we{_APOS}re going to|we are going to|let{_APOS}s|let us|you{_APOS}ll|you will"
    rf"|they{_APOS}ll|they will|plan to|planning to)\b",
    re.IGNORECASE,
)
AGREED = re.compile(
    r"\b(?:commit|agree|approv|sign off|budget(?:ed)?(?: is| of| for)|willing to pay"
    r"|(?:we|I) can (?:do|work with|pay|afford|spend|go)|can work with|works for us|that works"
    r"|land at|settle (?:on|at)|final (?:price|number|offer)|deal at|go ahead|accept)",
    re.IGNORECASE,
)
PAIN = re.compile(rf"\b(?:{'|'.join(_FAMILIES[0])})", re.IGNORECASE)
DEADLINE_BEFORE = re.compile(
    r"\b(?:by|before|until|no later than|on or before|due(?: on| by)?)\s+(?:the\s+)?$",
    re.IGNORECASE,
)
NEXT_STEP = re.compile(r"\b(?:next steps?|action items?|follow[- ]?ups?|to-?dos?)\b", re.IGNORECASE)
ACTION = re.compile(
    r"\b(?:send|sending|sent|schedule|book|set up|share|review|sign|loop in|introduce|meet"
    r"|demo|call|email|circle back|reconvene|present)\b",
    re.IGNORECASE,
)
_LEAD_IN = re.compile(
    r"^(?:(?:so|ok|okay|great|perfect|fine|good|then|and|alright|all right|right|yes|yeah)"
    r"\b[,!]?\s+)*",
    re.IGNORECASE,
)
_CUE_PREFIX = re.compile(
    rf"^(?:(?:the |our |my )?(?:next steps?|action items?)(?: then| for us)?"
    rf"(?: (?:is|are|will be|would be))?[,:]?\s*(?:to\s+)?"
    rf"|(?:I|we)(?:{_APOS}ll| will| shall|{_APOS}re going to|{_APOS}m going to"
    rf"| are going to| am going to)\s+|let{_APOS}?s\s+|let us\s+)",
    re.IGNORECASE,
)
_CLAUSE_BREAK = re.compile(r"\s*[:;—]\s*|\s+-\s+")
MAX_TEXT_VALUE_CHARS = 250


@dataclass(frozen=True)
class Sentence:
    """A sentence of one turn: ``text`` is ``turn_text[offset:offset + len(text)]``."""

    text: str
    offset: int


def split_sentences(text: str) -> tuple[Sentence, ...]:
    sentences: list[Sentence] = []
    begin = 0
    for boundary in _BOUNDARY.finditer(text):
        if _ends_with_abbreviation(text, boundary.start(), boundary.group()):
            continue
        _add_sentence(sentences, text, begin, boundary.end())
        begin = boundary.end()
    _add_sentence(sentences, text, begin, len(text))
    return tuple(sentences)


def _ends_with_abbreviation(text: str, position: int, punctuation: str) -> bool:
    if punctuation != ".":
        return False
    word = _LAST_WORD.search(text, max(0, position - 16), position)
    if word is None:
        return False
    token = word.group().lower().lstrip("(\"'")
    return token in _ABBREVIATIONS or re.fullmatch(r"(?:[a-z]\.)+[a-z]", token) is not None


def _add_sentence(sentences: list[Sentence], text: str, begin: int, end: int) -> None:
    chunk = text[begin:end]
    stripped = chunk.strip()
    if stripped:
        sentences.append(Sentence(stripped, begin + len(chunk) - len(chunk.lstrip())))


def evidence_for(sentence: Sentence, start: int, end: int) -> str:
    """The quote for a cue at ``start:end`` of ``sentence.text``: the sentence, or for a very
    long one a window around the cue cut at spaces."""
    text = sentence.text
    if len(text) <= MAX_EVIDENCE_CHARS:
        return text
    margin = max(0, (MAX_EVIDENCE_CHARS - (end - start)) // 2)
    low, high = max(0, start - margin), min(len(text), end + margin)
    if low > 0:
        space = text.find(" ", low, start)
        low = start if space == -1 else space + 1
    if high < len(text):
        space = text.rfind(" ", end, high)
        high = end if space == -1 else space
    return text[low:high].strip()


def is_hedged(sentence: str) -> bool:
    """Negated or asked rather than stated: such a sentence is weaker evidence."""
    return sentence.rstrip().endswith("?") or NEGATION.search(sentence) is not None


def words(text: str) -> list[str]:
    """Lower-case words of a name or an instruction; ``closeDate`` and ``close_date`` agree."""
    return [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", text)]


def stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


@dataclass(frozen=True)
class Keywords:
    """Cue stems derived from a field's name, label and instruction."""

    stems: tuple[str, ...]

    @classmethod
    def of(cls, *texts: str) -> "Keywords":
        found: set[str] = set()
        for word in (w for text in texts for w in words(text)):
            if len(word) <= 2 or word in _STOPWORDS:
                continue
            stemmed = stem(word)
            found.add(stemmed)
            for family in _FAMILIES:
                if any(stemmed.startswith(member) for member in family):
                    found.update(family)
        return cls(tuple(sorted(found)))

    @cached_property
    def pattern(self) -> re.Pattern[str] | None:
        if not self.stems:
            return None
        # Longest first, so "next step" is preferred over a shorter stem at the same spot.
        ordered = sorted(self.stems, key=lambda s: (-len(s), s))
        alternatives = "|".join(re.escape(s).replace(" ", r"[\s-]+") for s in ordered)
        return re.compile(rf"(?<!\w)(?:{alternatives})", re.IGNORECASE)

    def spans(self, text: str) -> list[tuple[int, int]]:
        pattern = self.pattern
        return [] if pattern is None else [m.span() for m in pattern.finditer(text)]

    def distinct_hits(self, text: str) -> int:
        pattern = self.pattern
        if pattern is None:
            return 0
        return len({self._stem_of(m.group()) for m in pattern.finditer(text)})

    def _stem_of(self, matched: str) -> str:
        lowered = re.sub(r"[\s-]+", " ", matched.lower())
        return next((s for s in self.stems if lowered.startswith(s.replace("-", " "))), lowered)


def nearest_distance(spans: list[tuple[int, int]], start: int, end: int) -> int | None:
    """Characters between a mention and the closest keyword, None without keywords."""
    gaps = [max(0, s - end, start - e) for s, e in spans]
    return min(gaps) if gaps else None


def next_step_value(sentence: str) -> str:
    """The action of a next-step sentence, without its lead-in ("Next step then: I will")."""
    clauses = [c for c in _CLAUSE_BREAK.split(sentence) if c.strip()] or [sentence]
    chosen = next(
        (c for c in reversed(clauses) if COMMITMENT.search(c)),
        next((c for c in reversed(clauses) if ACTION.search(c)), clauses[-1]),
    )
    value = _LEAD_IN.sub("", chosen.strip())
    value = _CUE_PREFIX.sub("", value).strip().rstrip(".!?").strip()
    if not value:
        value = sentence.strip().rstrip(".!?").strip()
    return clip(value[:1].upper() + value[1:])


def clip(value: str) -> str:
    if len(value) <= MAX_TEXT_VALUE_CHARS:
        return value
    cut = value.rfind(" ", 0, MAX_TEXT_VALUE_CHARS)
    return value[: cut if cut > 0 else MAX_TEXT_VALUE_CHARS]
