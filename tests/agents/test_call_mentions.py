"""What a call says about candidate deals: distinctive words, mentions, dates and stages,
and the bounds the weights keep with the matcher's other signals."""

from datetime import UTC, date, datetime

import pytest

from crm_agents import call_mentions, matching
from crm_agents.call_mentions import DealFacts, DealMentions, call_content_signals, read_call
from crm_agents.types import Attendee, CallView, TranscriptTurn

THREE = [
    DealFacts("1", "Acme Robotics - Platform", "2027-01-31", "Qualified To Buy"),
    DealFacts("2", "Acme Robotics - Analytics", "2027-03-31", "Contract Sent"),
    DealFacts("3", "Acme Robotics - Support renewal 2027", "2027-02-28", "Qualified To Buy"),
]


def _call(title: str, *lines: str) -> CallView:
    return CallView(
        external_id="mtg",
        title=title,
        started_at=datetime(2026, 11, 21, 15, tzinfo=UTC),
        duration_s=600,
        owner_email="riley@seller.example",
        attendees=(Attendee("Jane Doe", "jane@acme.example", False),),
        transcript=tuple(
            TranscriptTurn("Jane Doe", float(i), line) for i, line in enumerate(lines)
        ),
    )


def _read(title: str, *lines: str, deals=THREE, domains=("acme.example",)):
    return read_call(_call(title, *lines), deals, domains)


def test_it_names_a_deal_by_the_words_no_other_candidate_has():
    said = _read("Acme Robotics: Analytics rollout scope")

    assert said["2"].title_terms == ("Analytics",)
    assert said["1"] == said["3"] == DealMentions()


def test_company_filler_and_numbers_never_name_a_deal():
    deals = [
        DealFacts("1", "Globex Robotics renewal 2027"),
        DealFacts("2", "Initech Pilot"),
    ]
    said = _read(
        "Globex Robotics renewal for 2027",
        "The pilot and the renewal.",
        deals=deals,
        domains=["globex-robotics.co.uk"],
    )

    assert said["1"] == said["2"] == DealMentions()


def test_a_company_domain_written_as_one_word_still_counts_as_the_company():
    deals = [DealFacts("1", "Acme Robotics Fleet"), DealFacts("2", "Acme Robotics Telematics")]

    one_word = _read("Acme Robotics: fleet", deals=deals[:1], domains=["acmerobotics.example"])
    said = _read("Acme Robotics: fleet", deals=deals, domains=["acmerobotics.example"])

    assert said["1"].title_terms == ("Fleet",)
    assert one_word["1"].title_terms == ("Fleet",)  # a lone deal: only the company is left out


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("Analytics, analytics and ANALYTICS.", 3),
        ("the analytic export and the analyticsx beta", 1),
        ("our analysts", 0),
    ],
)
def test_it_counts_whole_words_in_any_case_with_plurals_folded(text, count):
    assert _read("Sync", text)["2"].transcript_count == count


def test_the_words_of_one_name_side_by_side_are_one_mention():
    deals = [DealFacts("1", "Acme - Fleet platform"), DealFacts("2", "Acme - Telematics")]

    said = _read(
        "Sync", "The fleet platform is live.", "Fleet first, then the platform.", deals=deals
    )

    assert said["1"].transcript_count == 3
    assert said["1"].transcript_terms == ("Fleet", "platform")


@pytest.mark.parametrize(
    "text",
    [
        "We sign by March 31.",
        "we sign by march 31st, 2027",
        "Signing on the 31st of March",
        "31 Mar. works",
        "Target: 2027-03-31.",
    ],
)
def test_it_hears_the_close_date_in_common_written_forms(text):
    assert _read("Sync", text)["2"].close_date == date(2027, 3, 31)


@pytest.mark.parametrize("text", ["March 3", "March 31, 2028", "3/31", "Mar 310 units"])
def test_it_does_not_hear_another_date(text):
    assert _read("Sync", text)["2"].close_date is None


def test_it_hears_a_stage_label_only_as_a_whole_phrase():
    assert _read("Sync", "The contract was sent.")["2"].stage_label is None
    assert _read("Sync", "We are at contract sent.")["2"].stage_label == "Contract Sent"


def test_what_every_candidate_shares_is_not_counted():
    deals = [
        DealFacts("1", "Acme Platform", "2027-03-31", "Qualified To Buy"),
        DealFacts("2", "Acme Analytics", "2027-03-31", "Qualified To Buy"),
    ]

    said = _read("Sync", "Qualified to buy, signing March 31.", deals=deals)

    assert said["1"] == said["2"] == DealMentions()


def test_each_signal_has_its_sentence():
    score, reasons = call_content_signals(
        DealMentions(
            title_terms=("Analytics",),
            transcript_terms=("Fleet", "platform"),
            transcript_count=2,
            close_date=date(2027, 3, 31),
            stage_label="Contract Sent",
        )
    )

    assert reasons == [
        "the call's title names “Analytics” from the deal's name",
        "the transcript mentions “Fleet” or “platform” twice",
        "the call says the deal's close date, March 31, 2027",
        "the call names the deal's stage “Contract Sent”",
    ]
    assert score == call_mentions.CALL_CONTENT_MAX


def test_the_weights_keep_their_promises():
    def lead(*scores: float) -> float:  # the matcher compares scores rounded like this
        return round(scores[0] - sum(scores[1:]), 4)

    title = call_mentions.TITLE_NAMES_DEAL
    mentions = call_mentions.TRANSCRIPT_MENTIONS
    recent, stage = matching.MOST_RECENT, matching.STAGE_WEIGHT
    margin, attendee = matching.CLEAR_MARGIN, matching.CONTACT_ON_DEAL

    # A title naming one deal is a clear winner over the most recently active, furthest along.
    assert lead(title, recent, stage) >= margin
    # ...but not by itself over an attendee who is a contact on another deal.
    assert lead(title, attendee) < margin
    # One mention is in passing; five or more beat recency and stage, never such an attendee.
    assert lead(mentions[0] + recent + stage) < margin
    assert lead(mentions[-1], recent, stage) >= margin
    assert lead(mentions[-1] + recent + stage, attendee) < margin
    assert list(mentions) == sorted(mentions)
    # The title weighs more than a passing mention; a said date or stage never decides alone.
    assert title > mentions[0]
    assert max(call_mentions.CLOSE_DATE_SAID, call_mentions.STAGE_SAID) < margin
    # A remembered human choice still leads a deal the call names in every way.
    assert lead(matching.REMEMBERED, call_mentions.CALL_CONTENT_MAX, recent, stage) >= margin
