"""A rep's chat in a real browser, on the demo data (`demo_setup`, `sandbox_seed`,
`demo_agent` against a sandbox served for the test):

Riley logs in, opens Chat, starts a HubSpot chat, lists their open deals, finds one of
them and asks to move its close date. The change waits in the review queue (the default
chat policy is "review"), where RevOps finds it; nothing reaches the CRM.
"""

import re

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from crm_agents.chat_models import ChatSession
from crm_agents.demo_crm import CLOSED_STAGES
from governance.management.commands.demo_setup import DEMO_PASSWORD
from governance.review_models import ChangeSet, ProposalStatus, SetStatus
from integrations.crm.profiles import PROFILES
from integrations.crm.types import ObjectType
from integrations.sandbox.management.commands.sandbox_seed import DEMO_NAMES
from integrations.sandbox.models import SandboxRecord, SandboxRequest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REP = "riley@demo.example"
REVIEWER = "revops@demo.example"
NEW_CLOSE_DATE = "2027-03-31"


def test_a_rep_asks_for_a_change_in_chat_and_it_waits_for_review(
    demo,
    live_server,
    page: Page,
    browser: Browser,
):
    deal = _rileys_open_deal()
    profile = PROFILES["hubspot"]
    name = deal.values[profile.native_field(ObjectType.DEAL, "name")]
    close_date_field = profile.native_field(ObjectType.DEAL, "close_date")
    before = deal.values.get(close_date_field)
    started = timezone.now()

    _log_in(page, live_server.url, REP, "Riley")

    # --- a new HubSpot chat -----------------------------------------------------------------
    page.locator("#chat-link").click()
    expect(page.locator("h1")).to_have_text("Chat")
    expect(page.locator(".breadcrumbs")).to_contain_text("Chat")
    new_chat = page.locator("#new-chat")
    new_chat.get_by_label("CRM").select_option(label="HubSpot")
    new_chat.get_by_role("button", name="New chat").click()
    expect(page).to_have_url(re.compile(r"/chat/\d+/$"))
    expect(page.locator("#chat-about")).to_contain_text("HubSpot in Demo Co")

    # --- list my open deals: Riley's own, through Riley's own connection --------------------
    _send(page, "list my open deals")
    reply = page.locator(".reply").last
    expect(reply.locator(".chat-error")).to_have_count(0)
    expect(reply.locator(".found li").first).to_be_visible()
    listed = re.findall(r"\(deal (\d+)\)", " ".join(reply.locator(".found li").all_inner_texts()))
    assert listed, reply.inner_text()
    assert set(listed) <= {deal.crm_id for deal in _rileys_open_deals()}

    # --- find one deal, then move its close date --------------------------------------------
    _send(page, f"find the {name} deal")
    reply = page.locator(".reply").last
    expect(reply.locator(".found li")).to_have_count(1)
    expect(reply.locator(".found")).to_contain_text(name)

    _send(page, f"set its close date to {NEW_CLOSE_DATE}")
    reply = page.locator(".reply").last
    expect(reply.locator(".chat-error")).to_have_count(0)
    proposal = reply.locator(".proposed li.proposal")
    expect(proposal).to_have_count(1)
    expect(proposal).to_contain_text(name)
    expect(proposal.locator(".value")).to_have_text(NEW_CLOSE_DATE)
    expect(proposal.locator(".status")).to_have_text("Waiting for review")

    # --- in the database: a change set Riley asked for in this chat -------------------------
    session = ChatSession.objects.get(user__username=REP)
    change_set = ChangeSet.objects.get(chat_session=session)
    assert change_set.requested_by.username == REP
    assert change_set.record_id == deal.crm_id
    assert change_set.status == SetStatus.PENDING_REVIEW
    close_date = change_set.proposals.get(field="close_date")
    assert close_date.status == ProposalStatus.PENDING
    assert close_date.proposed_value == NEW_CLOSE_DATE

    # --- the link opens the change set in the review queue ----------------------------------
    proposal.get_by_role("link", name=re.compile("review queue")).click()
    expect(page).to_have_url(re.compile(rf"/admin/governance/changeset/{change_set.pk}/change/"))
    expect(page.locator(f"#proposal-{close_date.pk} .proposed")).to_have_text(NEW_CLOSE_DATE)

    # --- RevOps finds it waiting for review -------------------------------------------------
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    try:
        reviewer = context.new_page()
        _log_in(reviewer, live_server.url, REVIEWER, "Robin")
        reviewer.goto(f"{live_server.url}/admin/governance/changeset/?status__exact=pending_review")
        row = (
            reviewer.locator("#result_list tbody tr").filter(has_text=name).filter(has_text="Chat")
        )
        expect(row).to_have_count(1)
        row.get_by_role("link", name="Waiting for review").click()
        expect(reviewer).to_have_url(re.compile(rf"/changeset/{change_set.pk}/change/"))
        line = reviewer.locator(f"#proposal-{close_date.pk}")
        expect(line.locator(".proposed")).to_have_text(NEW_CLOSE_DATE)
        expect(line).to_contain_text("Waiting for review")
    finally:
        context.close()

    # --- nothing was written to the CRM -----------------------------------------------------
    writes = SandboxRequest.objects.filter(started_at__gte=started).exclude(written={})
    assert not writes.exists(), list(writes.values("path", "written"))
    deal.refresh_from_db()
    assert deal.values.get(close_date_field) == before


def _rileys_open_deals() -> list[SandboxRecord]:
    profile = PROFILES["hubspot"]
    stage = profile.native_field(ObjectType.DEAL, "stage")
    deals = SandboxRecord.objects.filter(
        account__name=DEMO_NAMES["hubspot"],
        object_name=profile.object_name(ObjectType.DEAL),
        owner__email="riley@seller.example",
        deleted_at__isnull=True,
    )
    return sorted(
        (deal for deal in deals if deal.values.get(stage) not in CLOSED_STAGES),
        key=lambda deal: int(deal.crm_id),
    )


def _rileys_open_deal() -> SandboxRecord:
    """An open deal Riley owns in the demo HubSpot, whose name no other deal shares and
    that no demo call proposed changes to (so the queue shows one row for it)."""
    profile = PROFILES["hubspot"]
    name = profile.native_field(ObjectType.DEAL, "name")
    names = [
        deal.values.get(name)
        for deal in SandboxRecord.objects.filter(
            account__name=DEMO_NAMES["hubspot"], object_name=profile.object_name(ObjectType.DEAL)
        )
    ]
    touched = set(ChangeSet.objects.filter(provider="hubspot").values_list("record_id", flat=True))
    for deal in _rileys_open_deals():
        if names.count(deal.values.get(name)) == 1 and deal.crm_id not in touched:
            return deal
    raise AssertionError("the demo HubSpot has no open deal of Riley's to chat about")


def _log_in(page: Page, base_url: str, username: str, first_name: str) -> None:
    page.goto(f"{base_url}/admin/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#user-tools")).to_contain_text(first_name)


def _send(page: Page, text: str) -> None:
    replies = page.locator(".reply").count()
    page.get_by_label("Your message").fill(text)
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".reply")).to_have_count(replies + 1)
    expect(page.locator(".from-user").last).to_contain_text(text)
