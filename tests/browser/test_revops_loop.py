"""The whole RevOps loop in a real browser, on the demo data (`demo_setup`, `sandbox_seed`,
`demo_agent` against a sandbox served for the test):

open the queue, edit a value and approve the set, see the value in the sandbox CRM, on the
post-call page and in the audit; reject another set with a reason; roll the edited field
back; test a workflow on a past call without writing anything.
"""

import re

import pytest
from playwright.sync_api import Page, expect

from crm_agents.models import Call, Workflow
from governance.management.commands.demo_setup import DEMO_PASSWORD
from governance.review_models import ChangeProposal, ChangeSet, ProposalStatus, SetStatus
from integrations.crm.clients import build_client
from integrations.crm.types import ObjectType
from integrations.sandbox.demo_data import demo_token
from integrations.sandbox.models import RequestKind, SandboxRequest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REVIEWER = "revops@demo.example"
EDITED_AMOUNT = "97500"
AMOUNT_WORKFLOW = "Deal amount and close date"


def test_the_revops_loop_on_the_demo_data(demo, live_server, page: Page):
    hubspot = build_client(
        "hubspot", base_url=demo, access_token=demo_token("hubspot", "ops@seller.example")
    )
    # The sets the demo left waiting: a HubSpot deal with an amount to review, and another.
    amount_set = _pending_hubspot_deal_set()
    other_set = (
        ChangeSet.objects.filter(status=SetStatus.PENDING_REVIEW)
        .exclude(record_id=amount_set.record_id)
        .order_by("pk")
        .first()
    )
    amount = amount_set.proposals.get(field="amount")
    before = amount.current_value
    assert _crm_amount(hubspot, amount_set) == float(before)

    _log_in(page, live_server.url)

    # --- the queue: waiting for review, then the amount's change set ------------------------
    page.get_by_role("link", name="Change sets").first.click()
    page.locator("#changelist-filter").get_by_role("link", name="Waiting for review").click()
    expect(page).to_have_url(re.compile(r"status__exact=pending_review"))
    row = _row(page, amount_set)
    expect(row).to_contain_text("HubSpot")
    expect(row).to_contain_text(AMOUNT_WORKFLOW)
    row.get_by_role("link", name="Waiting for review").click()
    expect(page).to_have_url(re.compile(rf"/changeset/{amount_set.pk}/change/"))
    proposal = page.locator(f"#proposal-{amount.pk}")
    expect(proposal.locator(".current")).to_have_text(before)
    expect(proposal.locator(".proposed")).to_have_text(amount.proposed_value)
    expect(proposal).to_contain_text(amount.evidence)

    # --- edit the amount, approve the rest --------------------------------------------------
    proposal.get_by_label("New value of amount").fill(EDITED_AMOUNT)
    proposal.get_by_role("button", name="Edit and accept").click()
    expect(page.locator(".messagelist")).to_contain_text("edited to")
    expect(page.locator(f"#proposal-{amount.pk}")).to_contain_text("Applied")
    page.locator("#set-controls").get_by_role("button", name="Approve all pending").click()
    expect(page.locator(".messagelist")).to_contain_text("approved")
    expect(page.locator("#set-controls")).to_have_count(0)  # decided: nothing left to decide
    expect(page.get_by_role("button", name="Edit and accept")).to_have_count(0)
    amount.refresh_from_db()
    assert amount.status == ProposalStatus.APPLIED
    assert not amount_set.proposals.exclude(status=ProposalStatus.APPLIED).exists()
    # The sandbox CRM holds the edited amount.
    assert _crm_amount(hubspot, amount_set) == float(EDITED_AMOUNT)

    # --- the post-call summary: the field's before -> after ---------------------------------
    page.locator("#call-summary-link").click()
    expect(page.locator("h1")).to_contain_text("Post-call summary")
    field = page.locator(f"tr.proposal[data-change-set='{amount_set.pk}'][data-field='amount']")
    expect(field.locator(".before")).to_have_text(before)
    expect(field.locator(".after")).to_have_text(EDITED_AMOUNT)
    expect(field).to_contain_text("Applied")
    page.go_back()

    # --- the audit: the write to that record -------------------------------------------------
    page.locator("#audit-trail-link").click()
    expect(page).to_have_url(re.compile(rf"record_id={amount_set.record_id}"))
    writes = page.locator("#result_list tbody tr").filter(
        has=page.locator("td.field-action", has_text=re.compile(r"^crm\.write$"))
    )
    expect(writes.first).to_be_visible()
    expect(writes.filter(has_text="amount").first).to_contain_text(amount_set.record_id)

    # --- reject another set with a reason ---------------------------------------------------
    page.goto(f"{live_server.url}/admin/governance/changeset/?status__exact=pending_review")
    _row(page, other_set).get_by_role("link", name="Waiting for review").click()
    reason = "The customer has not confirmed this yet"
    controls = page.locator("#set-controls")
    controls.get_by_label("Reason to reject all pending changes").fill(reason)
    controls.get_by_role("button", name="Reject all pending").click()
    expect(page.locator(".messagelist")).to_contain_text("rejected")
    expect(page.locator(".field-reject_reason")).to_contain_text(reason)
    expect(page.locator("#review-links")).to_contain_text("Rejected")
    # Read-only now: no decision is offered any more.
    expect(page.locator("#set-controls")).to_have_count(0)
    expect(page.get_by_role("button", name="Accept", exact=True)).to_have_count(0)
    other_set.refresh_from_db()
    assert other_set.status == SetStatus.REJECTED
    assert other_set.reject_reason == reason

    # --- roll back the edited amount --------------------------------------------------------
    page.goto(f"{live_server.url}/admin/governance/changeset/{amount_set.pk}/change/")
    line = page.locator(f"#rollback-{amount.pk}")
    expect(line.locator(".written")).to_have_text(EDITED_AMOUNT)
    expect(line.locator(".restore")).to_have_text(before)
    line.get_by_role("button", name="Roll back amount").click()
    expect(page.locator(".messagelist")).to_contain_text(f"amount: restored '{before}'")
    expect(page.locator(f"#proposal-{amount.pk}")).to_contain_text("Rolled back")
    expect(page.locator(f"#rollback-{amount.pk}")).to_have_count(0)
    amount.refresh_from_db()
    assert amount.status == ProposalStatus.ROLLED_BACK
    assert _crm_amount(hubspot, amount_set) == float(before)
    # The close date, applied too, was left alone and can still be rolled back.
    close_date = amount_set.proposals.get(field="close_date")
    assert close_date.status == ProposalStatus.APPLIED
    expect(page.locator(f"#rollback-{close_date.pk}")).to_be_visible()
    # ... and the set-level button rolls back what is left.
    page.locator("#rollback-controls").get_by_role("button", name="Roll back every").click()
    expect(page.locator(".messagelist")).to_contain_text(
        f"close_date: restored '{close_date.current_value}'"
    )
    expect(page.locator("#rollback")).to_have_count(0)
    close_date.refresh_from_db()
    assert close_date.status == ProposalStatus.ROLLED_BACK

    # --- test a workflow on a past call: TEST, proposals, nothing written --------------------
    writes_before = SandboxRequest.objects.filter(kind=RequestKind.WRITE).count()
    test_set = _pending_hubspot_deal_set(exclude=amount_set.record_id)
    workflow = Workflow.objects.get(provider="hubspot", name=AMOUNT_WORKFLOW)
    call = Call.objects.get(title=test_set.call_title)
    page.goto(f"{live_server.url}/admin/crm_agents/workflow/?provider__exact=hubspot")
    workflow_row = page.locator("#result_list tbody tr").filter(
        has=page.get_by_role("link", name=AMOUNT_WORKFLOW, exact=True)
    )
    workflow_row.locator("input[name=_selected_action]").check()
    page.select_option("select[name=action]", label="Test on a past call… (nothing is written)")
    page.get_by_role("button", name="Go").click()
    expect(page.locator("#test-banner")).to_contain_text("TEST")
    page.get_by_label(str(call), exact=True).check()
    page.get_by_role("button", name="Run the TEST").click()
    expect(page).to_have_url(re.compile(r"/workflow/test-runs/\d+/"))
    expect(page.locator("#test-banner")).to_contain_text("TEST — nothing was written")
    expect(page.locator("#test-record")).to_contain_text(test_set.record_name)
    tested = page.locator(".test-proposals tbody tr", has_text="amount")
    expect(tested).to_contain_text(test_set.proposals.get(field="amount").proposed_value)
    assert SandboxRequest.objects.filter(kind=RequestKind.WRITE).count() == writes_before
    assert workflow.runs.filter(is_test=True, call=call).count() == 1


def _log_in(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/admin/login/")
    page.get_by_label("Username").fill(REVIEWER)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#user-tools")).to_contain_text("Robin")


def _row(page: Page, change_set: ChangeSet):
    """The change set's row in the list: its record, call and CRM say which one it is."""
    rows = page.locator("#result_list tbody tr")
    row = (
        rows.filter(has_text=change_set.record_name)
        .filter(has_text=change_set.call_title)
        .filter(has_text=change_set.get_provider_display())
        .filter(has_text=change_set.workflow_label)
    )
    expect(row).to_have_count(1)
    return row


def _pending_hubspot_deal_set(*, exclude: str = "") -> ChangeSet:
    amounts = ChangeProposal.objects.filter(field="amount", status=ProposalStatus.PENDING)
    change_set = (
        ChangeSet.objects.filter(
            provider="hubspot",
            object_type="deal",
            status=SetStatus.PENDING_REVIEW,
            pk__in=amounts.values("change_set"),
        )
        .exclude(record_id=exclude)
        .order_by("pk")
        .first()
    )
    assert change_set is not None, "the demo left no HubSpot deal amount waiting for review"
    return change_set


def _crm_amount(client, change_set: ChangeSet) -> float:
    record = client.get(ObjectType.DEAL, change_set.record_id, ["amount"])
    return float(record.properties["amount"])


def test_one_choice_of_record_settles_every_workflow_of_the_call(demo, live_server, page: Page):
    # A call about a company with several open deals: its deal workflows wait on one question.
    questions = ChangeSet.objects.filter(status=SetStatus.NEEDS_CHOICE, is_test=False)
    question = max(questions.order_by("pk"), key=lambda q: q.waiting_runs.count(), default=None)
    assert question is not None, "the demo left no question of record"
    waiting = list(question.waiting_runs.order_by("pk"))
    assert len(waiting) >= 2, [r.workflow_label for r in waiting]
    assert (
        questions.filter(
            run__call=question.run.call,
            provider=question.provider,
            object_type=question.object_type,
        ).count()
        == 1
    )  # one question for the call, not one per workflow
    chosen = sorted(question.run.candidates, key=lambda c: -(c.get("score") or 0))[0]

    _log_in(page, live_server.url)
    page.goto(f"{live_server.url}/admin/governance/changeset/?status__exact=needs_choice")
    _row(page, question).get_by_role("link", name="Needs a choice of record").click()
    others = [run.workflow_label for run in waiting if run.pk != question.run_id]
    for label in others:
        expect(page.locator("#waiting-runs")).to_contain_text(label)
    row = page.locator("#candidates tbody tr", has_text=chosen["name"]).first
    row.get_by_role("button", name="Use this record").click()

    # The reviewer lands on the change set the choice produced, not on the question.
    expect(page.locator(".messagelist")).to_contain_text(
        f"Record chosen: {chosen['name']}, for {len(waiting)} workflow(s) of this call."
    )
    expect(page).not_to_have_url(re.compile(rf"/changeset/{question.pk}/change/"))
    expect(page.locator("#review-links")).to_contain_text(chosen["name"])
    expect(page.locator("#review-links")).not_to_contain_text("Superseded")
    question.refresh_from_db()
    assert (question.status, question.record_id) == (SetStatus.CHOSEN, str(chosen["id"]))
    for run in waiting:
        run.refresh_from_db()
        assert run.record_id == str(chosen["id"]), run.status_reason
        assert run.change_sets.exclude(pk=question.pk).filter(record_id=chosen["id"]).exists()
    landed = int(re.search(r"/changeset/(\d+)/change/", page.url).group(1))
    assert ChangeSet.objects.get(pk=landed).run_id in {run.pk for run in waiting}

    # The question itself now says what was chosen, with the way to every resulting set.
    page.goto(f"{live_server.url}/admin/governance/changeset/{question.pk}/change/")
    expect(page.locator("#choice-answered")).to_contain_text(f"{chosen['name']} was chosen")
    expect(page.locator("#resulting-sets li")).to_have_count(len(waiting))
    expect(page.get_by_role("button", name="Use this record")).to_have_count(0)
