"""Matching reads the call: the deal its title or transcript names, and the deal whose close
date or stage it says, ranked with the other signals through the sandbox CRMs (both)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from crm_agents.matching import CLEAR_MARGIN, Matcher, MatchResult, attendees_key
from crm_agents.models import MatchChoice
from crm_agents.types import Attendee, CallView, TranscriptTurn
from governance.guard import Guard
from integrations.connections import Purpose, resolve_connection
from integrations.crm.types import ObjectType
from integrations.sandbox import seed
from integrations.sandbox.models import SandboxRecord, SandboxRequest

# The deal's stage on each CRM, and its label as the CRM's metadata gives it.
LATER_STAGE = {
    "hubspot": ("presentationscheduled", "Presentation Scheduled"),
    "salesforce": ("Needs Analysis", "Needs Analysis"),
}
STAGES = {"hubspot": "qualifiedtobuy", "salesforce": "Qualification"}
TITLE_NAMES = "the call's title names “Analytics” from the deal's name"


@pytest.fixture
def deals(world) -> dict[str, SandboxRecord]:
    """Acme Logistics' three open deals, Jane a contact on each: the world's Fleet platform
    deal, Analytics (closing March 31, 2027) and Support. Fleet platform is the most
    recently active."""
    company = SandboxRecord.objects.get(
        account=world.account, object_name__in=["companies", "Account"]
    )
    jane = SandboxRecord.objects.get(account=world.account, object_name__in=["contacts", "Contact"])
    found = {"fleet": world.deal}
    for key, name, close in [
        ("analytics", "Acme Logistics - Analytics", "2027-03-31"),
        ("support", "Acme Logistics - Support", "2027-02-28"),
    ]:
        found[key] = seed.add_record(
            world.account,
            "deal",
            {"name": name, "close_date": close, "stage": STAGES[world.provider]},
            owner=world.deal.owner,
            associations=[company, jane],
        )
    _touch(world.deal, minutes=5)
    return found


def _touch(record: SandboxRecord, *, minutes: int) -> None:
    SandboxRecord.objects.filter(pk=record.pk).update(
        updated_at=timezone.now() + timedelta(minutes=minutes)
    )


def _call(title: str, *lines: str) -> CallView:
    return CallView(
        external_id="mtg-match",
        title=title,
        started_at=datetime(2026, 11, 21, 15, tzinfo=UTC),
        duration_s=1800,
        owner_email="riley@seller.example",
        attendees=(
            Attendee("Riley Rep", "riley@seller.example", True),
            Attendee("Jane Doe", "jane@acme.example", False),
        ),
        transcript=tuple(
            TranscriptTurn("Jane Doe", 10.0 * i, line) for i, line in enumerate(lines)
        ),
    )


def _match(world, call: CallView) -> MatchResult:
    resolved = resolve_connection(world.workspace, world.provider, Purpose.WORKFLOW)
    guard = Guard.for_resolved(resolved, world.policy)
    matcher = Matcher(guard, resolved.connection, world.workspace, read_properties=[])
    return matcher.match(call, ObjectType.DEAL)


def _reasons(result: MatchResult, deal: SandboxRecord) -> tuple[str, ...]:
    return next(c.reasons for c in result.candidates if c.id == deal.crm_id)


def _winner(result: MatchResult) -> str | None:
    return result.winner.id if result.winner else None


def _lead(result: MatchResult) -> float:
    return round(result.candidates[0].score - result.candidates[1].score, 4)


def test_it_matches_the_deal_the_title_names_over_the_most_recently_active(world, deals):
    result = _match(world, _call("Acme Logistics: Analytics rollout scope", "Sounds good."))

    assert _winner(result) == deals["analytics"].crm_id
    assert TITLE_NAMES in result.candidates[0].reasons
    assert "the most recently active of the candidates" in _reasons(result, deals["fleet"])
    assert _lead(result) >= CLEAR_MARGIN


def test_it_counts_the_transcript_s_mentions_whole_words_any_case_and_plural(world, deals):
    result = _match(
        world,
        _call(
            "Acme Logistics weekly sync",
            "How are the ANALYTICS dashboards landing? Analytics is what the board asks about.",
            "Our analysts like the analytic exports, and the analyticsx beta is not ours.",
            "Support was quick too.",
        ),
    )

    assert "the transcript mentions “Analytics” 3 times" in _reasons(result, deals["analytics"])
    assert "the transcript mentions “Support” once" in _reasons(result, deals["support"])
    assert not any("transcript" in reason for reason in _reasons(result, deals["fleet"]))
    # Three mentions and no title: the transcript alone does not beat recency yet.
    assert result.ambiguous


def test_a_transcript_that_discusses_one_product_line_matches_it(world, deals):
    result = _match(
        world,
        _call(
            "Acme Logistics weekly sync",
            "Analytics is where we need help. The analytics reports are rebuilt by hand.",
            "Analytics has to fit this year's budget.",
            "Next step: a rollout plan for analytics, and a demo of analytics alerts.",
        ),
    )

    assert _winner(result) == deals["analytics"].crm_id
    assert "the transcript mentions “Analytics” 5 times" in result.candidates[0].reasons


def test_the_close_date_and_the_stage_the_call_says_are_reasons(world, deals):
    value, label = LATER_STAGE[world.provider]
    SandboxRecord.objects.filter(pk=deals["analytics"].pk).update(
        values={**deals["analytics"].values, world.native("stage"): value}
    )
    result = _match(
        world,
        _call(
            "Acme Logistics weekly sync",
            f"We are in {label} now and still plan to sign by the 31st of March.",
        ),
    )

    reasons = _reasons(result, deals["analytics"])
    assert "the call says the deal's close date, March 31, 2027" in reasons
    assert f"the call names the deal's stage “{label}”" in reasons
    # Close date and stage help, but they do not decide against recency.
    assert result.ambiguous


def test_a_close_date_every_candidate_shares_is_no_reason(world, deals):
    for deal in deals.values():
        SandboxRecord.objects.filter(pk=deal.pk).update(
            values={**deal.values, world.native("close_date"): "2026-12-31"}
        )
    result = _match(world, _call("Acme Logistics weekly sync", "We sign on December 31."))

    assert not any("close date" in r for c in result.candidates for r in c.reasons)


def test_a_remembered_human_choice_still_wins_over_a_title_naming_another_deal(
    world, deals, ws_admin
):
    call = _call("Acme Logistics: Analytics rollout scope", "Analytics, analytics, analytics.")
    company = SandboxRecord.objects.get(
        account=world.account, object_name__in=["companies", "Account"]
    )
    MatchChoice.objects.create(
        workspace=world.workspace,
        provider=world.provider,
        object_type=ObjectType.DEAL,
        company_id=company.crm_id,
        attendees_key=attendees_key(call.external_emails()),
        record_id=deals["support"].crm_id,
        chosen_by=ws_admin,
    )

    result = _match(world, call)

    assert _winner(result) == deals["support"].crm_id
    assert TITLE_NAMES in _reasons(result, deals["analytics"])
    assert _lead(result) >= CLEAR_MARGIN


def test_a_mention_does_not_override_an_attendee_who_is_a_contact_on_the_deal(world):
    company = SandboxRecord.objects.get(
        account=world.account, object_name__in=["companies", "Account"]
    )
    other = seed.add_record(  # Jane is not a contact on it
        world.account,
        "deal",
        {"name": "Acme Logistics - Analytics", "stage": STAGES[world.provider]},
        owner=world.deal.owner,
        associations=[company],
    )
    _touch(other, minutes=5)

    passing = _match(world, _call("Acme Logistics sync", "The analytics team says hello."))
    discussed = _match(
        world,
        _call("Acme Logistics sync", *["We talked analytics: analytics and analytics."] * 3),
    )

    assert _winner(passing) == world.deal.crm_id
    assert "the transcript mentions “Analytics” once" in _reasons(passing, other)
    assert _winner(discussed) in (None, world.deal.crm_id)


def test_two_deals_the_title_names_alike_stay_close(world, deals):
    result = _match(world, _call("Acme Logistics: Analytics and Support review", "Thanks."))

    assert result.ambiguous
    assert _winner(result) is None
    top = {c.id for c in result.candidates[:2]}
    assert top == {deals["analytics"].crm_id, deals["support"].crm_id}
    assert result.candidates[0].score == result.candidates[1].score


def test_reading_the_call_costs_no_crm_request(world, deals):
    def requests(call: CallView) -> int:
        before = SandboxRequest.objects.filter(account=world.account).count()
        _match(world, call)
        return SandboxRequest.objects.filter(account=world.account).count() - before

    _match(world, _call("Acme Logistics sync", "Thanks."))  # stages and owners, now cached
    plain = requests(_call("Acme Logistics sync", "Thanks."))
    named = requests(
        _call("Acme Logistics: Analytics rollout", "Analytics by March 31, 2027.", "Support.")
    )

    assert named == plain
