"""What a call says about the deals it may be about, and how much that weighs in the
matcher's ranking (crm_agents/matching.py adds it to the other signals).

A deal is named by its *distinctive words*: the words of its name that no other candidate's
name has, leaving out the attendees' company (the words of their email domains, so
"Acme Robotics" is left out for jane@acme-robotics.com or @acmerobotics.com), words with a
digit (years, tiers, quarters), short words (under three letters, unless the name writes
them in capitals, like "AI") and deal-type filler ("renewal", "expansion", "add-on",
"pilot", "plan", ...) that calls say in passing about anything. So "Acme Analytics" among
"Acme Platform" and "Acme Support" is named by "Analytics"; a deal whose every word is
shared, filler or the company's is never named. Words compare case-insensitively, whole
words only, with plurals folded ("licenses" is "license").

The call also discusses a deal when it says the deal's close date in a common written form
("March 31", "31st of March", "Mar 31, 2027", "2027-03-31"; a year, when said, must be the
close date's) or names its stage's label ("Contract Sent", "Negotiation/Review"). Numeric
dates such as 3/4 are left out: they read differently in the US and in Europe. A close date
or stage every candidate shares tells them apart no better, and is not counted.

The weights keep these bounds with the matcher's (a test checks each):
- a title naming one deal (TITLE_NAMES_DEAL) leads a deal that is only the most recently
  active and furthest along (MOST_RECENT + STAGE_WEIGHT) by CLEAR_MARGIN or more, but does
  not by itself beat an attendee who is a contact on another deal (a lead under
  CLEAR_MARGIN: the tie-break or a human decides);
- the transcript weighs by how often it names the deal (TRANSCRIPT_MENTIONS): one mention
  is in passing, and even with recency and stage it does not decide; five or more mean the
  call discusses the deal, enough to lead recency and stage by CLEAR_MARGIN, never enough,
  even with them, to beat an attendee who is a contact on another deal;
- saying the close date (CLOSE_DATE_SAID) or naming the stage (STAGE_SAID) never decides by
  itself;
- together these count at most CALL_CONTENT_MAX, so a remembered human choice (REMEMBERED)
  still leads, by CLEAR_MARGIN, a deal the call names in every way that is also the most
  recently active and furthest along;
- two deals named alike score alike and stay close, for the tie-break or a human.
"""

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date

from crm_agents.types import CallView

TITLE_NAMES_DEAL = 0.40
TRANSCRIPT_MENTIONS = (0.03, 0.10, 0.20, 0.30, 0.35)  # 1, 2, 3, 4, 5 or more mentions
CLOSE_DATE_SAID = 0.10
STAGE_SAID = 0.05
CALL_CONTENT_MAX = 0.60

_WORD = re.compile(r"[^\W_]+")
_STOP = {"a", "an", "and", "at", "by", "for", "from", "in", "into", "of", "on", "or", "per"}
_STOP |= {"the", "to", "via", "vs", "with", "x"}
# Deal-type and legal-entity words: they say what kind of deal it is, not which one.
_FILLER_WORDS = """
    deal opportunity opp renewal renew expansion expand upsell upgrade add addon new business
    contract licence license seat pilot poc phase year annual multi month quarter order
    purchase project initial plan tier package edition bundle inc ltd llc gmbh corp company
"""
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august")
_MONTHS += ("september", "october", "november", "december")
_SECOND_LEVEL = {"co", "com", "org", "net", "ac", "gov"}  # acme.co.uk is "acme"


def stem(word: str) -> str:
    """The word in lower case with a plural folded: cheap, and enough for deal names."""
    word = word.lower()
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


_FILLER = {stem(word) for word in _FILLER_WORDS.split()}


@dataclass(frozen=True)
class DealFacts:
    """What the matcher already read of a candidate deal."""

    id: str
    name: str
    close_date: str | None = None  # ISO, as the adapters give it
    stage_label: str | None = None


@dataclass(frozen=True)
class DealMentions:
    """What the call says about one deal; empty when it says nothing."""

    # Its distinctive words the title and the transcript name, as its name writes them.
    title_terms: tuple[str, ...] = ()
    transcript_terms: tuple[str, ...] = ()
    transcript_count: int = 0
    close_date: date | None = None  # the deal's close date, when the call says it
    stage_label: str | None = None  # the deal's stage, when the call names it


def read_call(
    call: CallView, deals: Sequence[DealFacts], company_domains: Iterable[str]
) -> dict[str, DealMentions]:
    """What ``call`` says about each of ``deals``, by deal id."""
    company = _company_parts(company_domains)
    names = {deal.id: _name_words(deal.name) for deal in deals}
    title = [stem(word) for word in _WORD.findall(call.title)]
    turns = [[stem(word) for word in _WORD.findall(turn.text)] for turn in call.transcript]
    texts = [call.title, *(turn.text for turn in call.transcript)]
    # Deals share few close dates and stages: look for each once.
    dates: dict[str | None, date | None] = {}
    labels: dict[str, str | None] = {}
    found = {}
    in_names = Counter(s for words in names.values() for s in {s for s, _ in words})
    for deal in deals:
        terms = {
            s: shown
            for s, shown in names[deal.id]
            if _may_name(s, shown) and in_names[s] == 1 and not _is_company(s, company)
        }
        count, said = _mentions(turns, terms) if terms else (0, set())
        if deal.close_date not in dates:
            dates[deal.close_date] = _said_date(texts, deal.close_date)
        label = (deal.stage_label or "").strip()
        if label not in labels:
            labels[label] = _said_label([title, *turns], label)
        found[deal.id] = DealMentions(
            title_terms=tuple(terms[s] for s in dict.fromkeys(title) if s in terms),
            transcript_terms=tuple(terms[s] for s in terms if s in said),
            transcript_count=count,
            close_date=dates[deal.close_date],
            stage_label=labels[label],
        )
    if len(found) > 1:
        if all(said.close_date for said in found.values()):
            found = {i: replace(said, close_date=None) for i, said in found.items()}
        if all(said.stage_label for said in found.values()):
            found = {i: replace(said, stage_label=None) for i, said in found.items()}
    return found


def call_content_signals(said: DealMentions) -> tuple[float, list[str]]:
    """What the call says about one deal as a score and the sentences saying why."""
    score, reasons = 0.0, []
    if said.title_terms:
        score += TITLE_NAMES_DEAL
        reasons.append(f"the call's title names {_quoted(said.title_terms)} from the deal's name")
    if said.transcript_count:
        count = said.transcript_count
        score += TRANSCRIPT_MENTIONS[min(count, len(TRANSCRIPT_MENTIONS)) - 1]
        reasons.append(
            f"the transcript mentions {_quoted(said.transcript_terms, 'or')} {_times(count)}"
        )
    if said.close_date:
        score += CLOSE_DATE_SAID
        day = said.close_date
        reasons.append(f"the call says the deal's close date, {day:%B} {day.day}, {day.year}")
    if said.stage_label:
        score += STAGE_SAID
        reasons.append(f"the call names the deal's stage “{said.stage_label}”")
    return min(score, CALL_CONTENT_MAX), reasons


def _quoted(terms: Sequence[str], joiner: str = "and") -> str:
    quoted = [f"“{term}”" for term in terms]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} {joiner} {quoted[-1]}"


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def _name_words(name: str) -> list[tuple[str, str]]:
    return [(stem(word), word) for word in _WORD.findall(name or "")]


def _may_name(stemmed: str, shown: str) -> bool:
    if any(char.isdigit() for char in shown) or stemmed in _STOP or stemmed in _FILLER:
        return False
    return len(shown) >= 3 or (len(shown) == 2 and shown.isupper())


def _company_parts(domains: Iterable[str]) -> set[str]:
    parts: set[str] = set()
    for domain in domains:
        labels = domain.lower().split(".")[:-1]
        if len(labels) > 1 and labels[-1] in _SECOND_LEVEL:
            labels = labels[:-1]
        for label in labels:
            parts.add(label)
            parts.update(label.split("-"))
    return parts


def _is_company(stemmed: str, parts: set[str]) -> bool:
    return any(stemmed == part or (len(stemmed) >= 4 and stemmed in part) for part in parts)


def _mentions(turns: list[list[str]], terms: dict[str, str]) -> tuple[int, set[str]]:
    """How often the turns name the deal: the name's words side by side ("Fleet platform")
    are one mention, a word said again ("analytics, analytics") another."""
    count, said = 0, set()
    for words in turns:
        run: set[str] = set()
        for word in words:
            if word not in terms:
                run = set()
                continue
            if not run or word in run:
                count += 1
                run = set()
            run.add(word)
            said.add(word)
    return count, said


def _said_label(texts: list[list[str]], label: str) -> str | None:
    wanted = [stem(word) for word in _WORD.findall(label)]
    if not wanted:
        return None
    size = len(wanted)
    for words in texts:
        if any(words[i : i + size] == wanted for i in range(len(words) - size + 1)):
            return label
    return None


def _said_date(texts: list[str], value: str | None) -> date | None:
    try:
        day = date.fromisoformat((value or "")[:10])
    except ValueError:
        return None
    pattern = _date_pattern(day)
    for text in texts:
        for found in pattern.finditer(text):
            year = found.group("y1") or found.group("y2")
            if year is None or int(year) == day.year:
                return day
    return None


def _date_pattern(day: date) -> re.Pattern[str]:
    name = _MONTHS[day.month - 1]
    months = {name, name[:3], *(("sept",) if day.month == 9 else ())}
    month = "|".join(sorted(months, key=len, reverse=True))
    number = rf"0?{day.day}(?:st|nd|rd|th)?"
    return re.compile(
        rf"\b(?:(?:{month})\.?\s+(?:the\s+)?{number}\b(?:,?\s+(?P<y1>\d{{4}})\b)?"
        rf"|(?:the\s+)?{number}\s+(?:of\s+)?(?:{month})\b\.?(?:,?\s+(?P<y2>\d{{4}})\b)?"
        rf"|{day.isoformat()}\b)",
        re.IGNORECASE,
    )
