"""Which record is this call about? Deterministic, explained, and cautious.

External attendee emails find contacts; contacts give their companies; companies give their
deals. Without a matching contact, the attendees' email domain finds the company. A call
with no external attendee never matches anything. Closed deals are left out unless the
policy lets the agent update them.

Deal candidates are ranked on signals a rep would use, each with a sentence saying why:
an attendee is a contact on the deal, the deal's owner ran the call, what the call says
(its title or transcript names the deal, it says the deal's close date or names its
stage; crm_agents/call_mentions.py finds these), the deal is the most recently active, how
far along its stage is, and a human's earlier choice for the same company and attendees.
One clear winner (a lead of CLEAR_MARGIN) is used; close candidates go to a model tie-break
limited to their ids, and a pick the numbers do not support goes to a human.

What the call says weighs enough for a title naming one deal to lead a deal that is only
the most recently active, never enough to outweigh a remembered human choice, and a mere
mention in the transcript never outweighs an attendee who is a contact on another deal
(the weights and the bounds they keep are in crm_agents/call_mentions.py).

The candidates' properties are read in the same request that ranks them, so the winner's
current values (the read-before-write) cost no extra request.
"""

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from django.conf import settings

from crm_agents import crm_meta
from crm_agents.call_mentions import DealFacts, DealMentions, call_content_signals, read_call
from crm_agents.models import MatchChoice
from crm_agents.types import CallView, Candidate
from governance.guard import Guard
from integrations.crm.base import by_domain, by_email, search_all
from integrations.crm.types import ObjectType, Record

# Addresses at these domains belong to people, not to the companies they work for.
PERSONAL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.de",
        "web.de",
    }
)

# Score weights; a candidate's score is the sum of the signals it has.
COMPANY_DEAL = 0.30
CONTACT_ON_DEAL = 0.35
OWNER_RAN_CALL = 0.15
MOST_RECENT = 0.10
STAGE_WEIGHT = 0.05
REMEMBERED = 1.00
CLEAR_MARGIN = 0.20  # a lead this large is a clear winner
CONTACTS_PAGE = 200  # HubSpot's largest search page


@dataclass(frozen=True)
class MatchResult:
    """The outcome of matching: a winner, or why there is none."""

    candidates: tuple[Candidate, ...] = ()
    winner: Candidate | None = None
    confidence: float | None = None
    reason: str = ""
    ambiguous: bool = False  # several close candidates: a tie-break or a human decides
    company_ids: tuple[str, ...] = ()
    contact_ids: tuple[str, ...] = ()
    records: dict[str, Record] = field(default_factory=dict)  # candidates, as read


def attendees_key(emails: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(emails)).encode()).hexdigest()


class Matcher:
    def __init__(
        self,
        guard: Guard,
        connection,
        workspace,
        *,
        read_properties: Sequence[str],
    ) -> None:
        self.guard = guard
        self.profile = guard.profile
        self.connection = connection
        self.workspace = workspace
        self.read_properties = list(dict.fromkeys(read_properties))
        self._reads: dict[ObjectType, list[str]] = {}

    def native(self, object_type: ObjectType, canonical: str) -> str:
        return self.profile.native_field(object_type, canonical)

    # --- entry ------------------------------------------------------------------------------
    def match(self, call: CallView, object_type: ObjectType) -> MatchResult:
        return self.match_many(call, {object_type: self.read_properties})[object_type]

    def match_many(
        self, call: CallView, reads: Mapping[ObjectType, Sequence[str]]
    ) -> dict[ObjectType, MatchResult]:
        """Match several object types for one call: the attendees' contacts and companies
        are looked up once and shared; each type's candidates are read with its own
        properties (``reads``)."""
        self._reads = {kind: list(dict.fromkeys(names)) for kind, names in reads.items()}
        emails = call.external_emails()
        if not emails:
            reason = "internal call: no external attendee, so no CRM record"
            return {kind: MatchResult(reason=reason) for kind in reads}
        contacts = self._contacts(emails)
        company_ids = self._company_ids(contacts, emails)
        results = {}
        for kind in reads:
            self.read_properties = self._reads[kind]
            if kind == ObjectType.CONTACT:
                results[kind] = self._match_contacts(call, contacts)
            elif kind == ObjectType.COMPANY:
                results[kind] = self._match_companies(company_ids)
            else:
                results[kind] = self._match_deals(call, contacts, company_ids)
        return results

    # --- lookups ----------------------------------------------------------------------------
    def _contacts(self, emails: list[str]) -> list[Record]:
        email = self.native(ObjectType.CONTACT, "email")
        query = replace(
            by_email(ObjectType.CONTACT, email, emails),
            properties=tuple(
                self.guard.readable(
                    ObjectType.CONTACT,
                    [
                        email,
                        self.native(ObjectType.CONTACT, "first_name"),
                        self.native(ObjectType.CONTACT, "last_name"),
                        self.native(ObjectType.CONTACT, "company"),
                        *self._reads.get(ObjectType.CONTACT, []),
                    ],
                )
            ),
            limit=CONTACTS_PAGE,
        )
        # Every page: a call may name hundreds of attendees (the adapter splits the search
        # into as few requests as the CRM's limits allow).
        return search_all(self.guard, query)

    def _company_ids(self, contacts: list[Record], emails: list[str]) -> list[str]:
        company_field = self.native(ObjectType.CONTACT, "company")
        ids = [c.properties.get(company_field) for c in contacts]
        found = list(dict.fromkeys(str(i) for i in ids if i))
        if found or contacts:
            return found
        # No attendee is a contact: the company of their email domain, if exactly one.
        domains = sorted({e.rsplit("@", 1)[-1] for e in emails if "@" in e} - PERSONAL_DOMAINS)
        companies: list[str] = []
        domain_field = self.native(ObjectType.COMPANY, "domain")
        for domain in domains:
            query = replace(
                by_domain(ObjectType.COMPANY, domain_field, domain),
                properties=(self.native(ObjectType.COMPANY, "name"), domain_field),
                limit=10,
            )
            # "Ends with acme.example" also finds notacme.example: keep the domain itself
            # and its subdomains only.
            companies.extend(
                record.id
                for record in self.guard.search(query).records
                if _same_domain(record.properties.get(domain_field), domain)
            )
        return list(dict.fromkeys(companies))

    # --- contacts and companies -------------------------------------------------------------
    def _match_contacts(self, call: CallView, contacts: list[Record]) -> MatchResult:
        if not contacts:
            return MatchResult(reason="no external attendee is a contact in the CRM")
        first = self.native(ObjectType.CONTACT, "first_name")
        last = self.native(ObjectType.CONTACT, "last_name")
        spoken: dict[str, int] = {}
        for turn in call.transcript:
            spoken[turn.speaker.strip().lower()] = spoken.get(turn.speaker.strip().lower(), 0) + 1
        ranked = []
        for contact in contacts:
            name = " ".join(
                part
                for part in (contact.properties.get(first), contact.properties.get(last))
                if part
            )
            turns = spoken.get(name.lower(), 0)
            reasons = ["an external attendee's email is this contact's"]
            if turns:
                reasons.append(f"spoke {turns} time{'s' if turns != 1 else ''} in the call")
            ranked.append(
                Candidate(contact.id, name or contact.id, 0.5 + 0.01 * turns, tuple(reasons))
            )
        records = {contact.id: contact for contact in contacts}
        return self._decide(ranked, records, company_ids=(), contact_ids=tuple(records))

    def _match_companies(self, company_ids: list[str]) -> MatchResult:
        if not company_ids:
            return MatchResult(reason="no company matches the attendees' emails or domain")
        records = self.guard.get_many(
            ObjectType.COMPANY,
            company_ids,
            [self.native(ObjectType.COMPANY, "name"), *self.read_properties],
        )
        name = self.native(ObjectType.COMPANY, "name")
        ranked = [
            Candidate(r.id, r.properties.get(name) or r.id, 0.5, ("the attendees' company",))
            for r in records
        ]
        return self._decide(ranked, {r.id: r for r in records}, tuple(company_ids), ())

    # --- deals ------------------------------------------------------------------------------
    def _match_deals(
        self, call: CallView, contacts: list[Record], company_ids: list[str]
    ) -> MatchResult:
        contact_ids = [contact.id for contact in contacts]
        deal_ids: list[str] = []
        if company_ids:
            by_company = self.guard.associations_many(
                ObjectType.COMPANY, company_ids, ObjectType.DEAL
            )
            deal_ids.extend(i for ids in by_company.values() for i in ids)
        company_field = self.native(ObjectType.CONTACT, "company")
        loose = [c.id for c in contacts if not c.properties.get(company_field)]
        on_deal: dict[str, set[str]] = {}
        if loose:  # contacts without a company can still be on a deal
            by_contact = self.guard.associations_many(ObjectType.CONTACT, loose, ObjectType.DEAL)
            for contact_id, ids in by_contact.items():
                deal_ids.extend(ids)
                for deal_id in ids:
                    on_deal.setdefault(deal_id, set()).add(contact_id)
        deal_ids = list(dict.fromkeys(deal_ids))
        if not deal_ids:
            return MatchResult(
                reason=self._no_deal_reason(contacts, company_ids),
                company_ids=tuple(company_ids),
                contact_ids=tuple(contact_ids),
            )
        stage = self.native(ObjectType.DEAL, "stage")
        owner = self.native(ObjectType.DEAL, "owner")
        name = self.native(ObjectType.DEAL, "name")
        close_date = self.native(ObjectType.DEAL, "close_date")
        # The close date rides on the same request (the guard drops it when unreadable).
        records = self.guard.get_many(
            ObjectType.DEAL, deal_ids, [name, stage, owner, close_date, *self.read_properties]
        )
        stages = crm_meta.deal_stages(self.guard, self.connection)
        closed = crm_meta.closed_stage_values(stages)
        skipped_closed = 0
        if not self.guard.policy.allow_update_closed:
            open_records = [r for r in records if r.properties.get(stage) not in closed]
            skipped_closed = len(records) - len(open_records)
            records = open_records
        if not records:
            reason = "the attendees' company has no open deal"
            if skipped_closed:
                reason += f" ({skipped_closed} closed deal(s) left out: the policy protects them)"
            return MatchResult(
                reason=reason, company_ids=tuple(company_ids), contact_ids=tuple(contact_ids)
            )
        if len(records) > 1 and contact_ids:
            by_deal = self.guard.associations_many(
                ObjectType.DEAL, [r.id for r in records], ObjectType.CONTACT
            )
            for deal_id, ids in by_deal.items():
                attendees = set(ids) & set(contact_ids)
                if attendees:
                    on_deal.setdefault(deal_id, set()).update(attendees)
        ranked = self._rank_deals(call, records, on_deal, stages, company_ids, contact_ids)
        result = self._decide(
            ranked, {r.id: r for r in records}, tuple(company_ids), tuple(contact_ids)
        )
        if skipped_closed:
            note = f"{skipped_closed} closed deal(s) left out: the policy protects closed deals"
            result = replace(result, reason=f"{result.reason}; {note}")
        return result

    def _rank_deals(self, call, records, on_deal, stages, company_ids, contact_ids):
        stage = self.native(ObjectType.DEAL, "stage")
        owner = self.native(ObjectType.DEAL, "owner")
        name = self.native(ObjectType.DEAL, "name")
        # Owners matter only to rank several deals; one deal needs no owner lookup.
        call_owner = (
            crm_meta.owner_id_for_email(self.guard, self.connection, call.owner_email)
            if len(records) > 1
            else None
        )
        remembered = self._remembered(call, company_ids)
        latest = max((r.updated_at for r in records if r.updated_at is not None), default=None)
        labels = {s.value: s.label for s in stages}
        # What the call says tells candidates apart; a lone deal needs no telling, and its
        # name's words cannot be told from its company's without reading the company.
        said = self._what_the_call_says(call, records, labels) if len(records) > 1 else {}
        ranked = []
        for record in records:
            score, reasons = COMPANY_DEAL, ["an open deal of the attendees' company"]
            if record.id in on_deal:
                score += CONTACT_ON_DEAL
                count = len(on_deal[record.id])
                reasons.append(
                    "an attendee is a contact on the deal"
                    if count == 1
                    else f"{count} attendees are contacts on the deal"
                )
            if call_owner and (record.owner_id or record.properties.get(owner)) == call_owner:
                score += OWNER_RAN_CALL
                reasons.append("the deal's owner ran the call")
            if record.id in said:
                content, content_reasons = call_content_signals(said[record.id])
                score += content
                reasons.extend(content_reasons)
            if len(records) > 1 and latest is not None and record.updated_at == latest:
                score += MOST_RECENT
                reasons.append("the most recently active of the candidates")
            rank = crm_meta.stage_rank(stages, record.properties.get(stage))
            if rank:
                score += STAGE_WEIGHT * rank
                label = labels.get(record.properties.get(stage) or "", "")
                reasons.append(
                    f"furthest along in stage {label}" if rank == 1 else f"in stage {label}"
                )
            if remembered is not None and remembered.record_id == record.id:
                score += REMEMBERED
                who = remembered.chosen_by.get_username() if remembered.chosen_by else "a reviewer"
                reasons.append(f"{who} chose this deal for the same company and attendees")
            ranked.append(
                Candidate(
                    record.id,
                    record.properties.get(name) or record.id,
                    round(score, 4),
                    tuple(reasons),
                )
            )
        return ranked

    def _what_the_call_says(
        self, call: CallView, records: list[Record], labels: dict[str, str]
    ) -> dict[str, DealMentions]:
        name = self.native(ObjectType.DEAL, "name")
        stage = self.native(ObjectType.DEAL, "stage")
        close_date = self.native(ObjectType.DEAL, "close_date")
        facts = [
            DealFacts(
                record.id,
                record.properties.get(name) or "",
                record.properties.get(close_date),
                labels.get(record.properties.get(stage) or ""),
            )
            for record in records
        ]
        domains = {e.rsplit("@", 1)[-1] for e in call.external_emails() if "@" in e}
        return read_call(call, facts, domains - PERSONAL_DOMAINS)

    def _remembered(self, call: CallView, company_ids) -> MatchChoice | None:
        return (
            MatchChoice.objects.filter(
                workspace=self.workspace,
                provider=self.connection.provider,
                object_type=ObjectType.DEAL,
                company_id=",".join(sorted(company_ids)),
                attendees_key=attendees_key(call.external_emails()),
            )
            .select_related("chosen_by")
            .first()
        )

    def _no_deal_reason(self, contacts, company_ids) -> str:
        if not contacts and not company_ids:
            return "no external attendee is a contact, and no company has their email domain"
        if not company_ids:
            return "the attendees' contacts belong to no company and are on no deal"
        return "the attendees' company has no deal"

    # --- the decision -----------------------------------------------------------------------
    def _decide(self, ranked, records, company_ids, contact_ids) -> MatchResult:
        ranked = sorted(ranked, key=lambda c: (-c.score, c.name, c.id))
        common = {
            "candidates": tuple(ranked),
            "company_ids": tuple(company_ids),
            "contact_ids": tuple(contact_ids),
            "records": records,
        }
        top = ranked[0]
        if len(ranked) == 1:
            return MatchResult(
                winner=top, confidence=0.95, reason=f"the only candidate: {top.name}", **common
            )
        margin = round(top.score - ranked[1].score, 4)
        if margin >= CLEAR_MARGIN:
            return MatchResult(
                winner=top,
                confidence=round(min(0.95, 0.6 + margin), 4),
                reason=f"{top.name} leads the next candidate by {margin:.2f}",
                **common,
            )
        return MatchResult(
            ambiguous=True,
            confidence=round(0.5 + margin, 4),
            reason=f"{len(ranked)} candidates within {CLEAR_MARGIN:.2f} of each other",
            **common,
        )


def _same_domain(website: str | None, domain: str) -> bool:
    """Whether a company's domain or website (``https://www.acme.example/``) is ``domain``
    or one of its subdomains."""
    host = (website or "").strip().lower()
    host = host.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].removeprefix("www.")
    return host == domain or host.endswith(f".{domain}")


def tie_break_confidence(result: MatchResult) -> float:
    """How sure a model's pick among close candidates makes us: the lead the numbers give,
    plus a little for the model's reading of the call."""
    ranked = result.candidates
    margin = ranked[0].score - ranked[1].score if len(ranked) > 1 else 1.0
    return round(0.55 + margin, 4)


def confidence_bar() -> float:
    return settings.MATCH_CONFIDENCE_BAR
