"""The review queue in the admin: the list RevOps triages, and the change page where each
proposed field is accepted, rejected or edited."""

import pytest
from django.urls import NoReverseMatch, reverse

from audit.models import AuditEvent
from crm_agents import tasks
from crm_agents.models import MatchChoice, RunStatus
from governance.crm_links import record_url
from governance.models import CrmProvider
from governance.review_models import ChangeProposal, ChangeSet, ProposalStatus, SetStatus
from tests.factories import (
    AgentRunFactory,
    CallFactory,
    ChangeProposalFactory,
    ChangeSetFactory,
    ConnectionFactory,
    CrmPropertyFactory,
)

pytestmark = pytest.mark.django_db

LIST_URL = reverse("admin:governance_changeset_changelist")


def _change_url(change_set: ChangeSet) -> str:
    return reverse("admin:governance_changeset_change", args=[change_set.pk])


def _review_url(change_set: ChangeSet) -> str:
    return reverse("admin:governance_changeset_review", args=[change_set.pk])


@pytest.fixture
def applied(monkeypatch) -> list[int]:
    """The change sets handed to the apply task; no CRM is needed."""
    queued: list[int] = []
    monkeypatch.setattr(tasks.apply_change_set, "delay", queued.append)
    return queued


@pytest.fixture
def connection(workspace):
    return ConnectionFactory(workspace=workspace, crm_account_id="4242")


@pytest.fixture
def change_set(workspace, connection):
    change_set = ChangeSetFactory(
        workspace=workspace,
        record_id="9001",
        record_name="Acme renewal",
        call_title="Acme pricing call",
        workflow_label="Deal hygiene",
        owner_email="riley@seller.example",
        field_count=2,
        lowest_confidence=0.62,
    )
    return change_set


@pytest.fixture
def proposal(workspace, change_set):
    return ChangeProposalFactory(
        workspace=workspace,
        change_set=change_set,
        label="Amount",
        evidence_start=75.4,
        confidence=0.62,
    )


def _post(client, change_set: ChangeSet, **data: object):
    return client.post(_review_url(change_set), data, follow=True)


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# --- the list ------------------------------------------------------------------------------
def test_it_lists_the_columns_with_a_link_to_the_crm_record(change_set, revops, login):
    response = login(revops).get(LIST_URL)

    page = response.content.decode()
    assert response.status_code == 200
    assert "https://app.hubspot.com/contacts/4242/record/0-3/9001" in page
    for text in ["HubSpot", "Acme renewal", "Acme pricing call", "Deal hygiene", "62%"]:
        assert text in page
    assert "Waiting for review" in page
    assert "minute" in page  # age


def test_it_builds_crm_links_for_both_crms():
    assert (
        record_url("hubspot", "contact", "7", account_id="99", base_url="")
        == "https://app.hubspot.com/contacts/99/record/0-1/7"
    )
    assert (
        record_url("hubspot", "company", "8", account_id="99", base_url="")
        == "https://app.hubspot.com/contacts/99/record/0-2/8"
    )
    assert (
        record_url(
            "salesforce", "deal", "006A", account_id="00D", base_url="https://acme.my.sf.com/"
        )
        == "https://acme.my.sf.com/lightning/r/Opportunity/006A/view"
    )
    assert record_url("salesforce", "company", "", account_id="", base_url="https://x") is None


def test_it_links_salesforce_records_through_the_connection(workspace, revops, login):
    ConnectionFactory(
        workspace=workspace,
        provider=CrmProvider.SALESFORCE,
        api_base_url="https://acme.my.salesforce.com",
    )
    ChangeSetFactory(
        workspace=workspace,
        provider=CrmProvider.SALESFORCE,
        object_type="contact",
        record_id="003X",
    )

    page = login(revops).get(LIST_URL).content.decode()

    assert "https://acme.my.salesforce.com/lightning/r/Contact/003X/view" in page


@pytest.mark.parametrize(
    ("query", "kept"),
    [
        ({"status__exact": SetStatus.APPLIED}, "Globex expansion"),
        ({"workflow_label": "Contact hygiene"}, "Globex expansion"),
        ({"provider__exact": CrmProvider.SALESFORCE}, "Globex expansion"),
        ({"owner_email": "sam@seller.example"}, "Globex expansion"),
        ({"q": "Globex expansion"}, "Globex expansion"),
        ({"q": "Quarterly review"}, "Globex expansion"),
    ],
)
def test_it_filters_and_searches(workspace, change_set, revops, login, query, kept):
    ChangeSetFactory(
        workspace=workspace,
        record_name="Globex expansion",
        call_title="Quarterly review",
        workflow_label="Contact hygiene",
        provider=CrmProvider.SALESFORCE,
        owner_email="sam@seller.example",
        status=SetStatus.APPLIED,
    )

    listed = login(revops).get(LIST_URL, query).context["cl"].result_list

    assert [row.record_name for row in listed] == [kept]


def test_it_labels_test_sets(workspace, revops, login):
    ChangeSetFactory(workspace=workspace, record_name="Sandbox deal", is_test=True)

    page = login(revops).get(LIST_URL).content.decode()

    assert '<strong class="test-label">TEST</strong> ' in page


def test_the_list_stays_within_its_query_budget(
    workspace, connection, revops, login, django_assert_max_num_queries
):
    call = CallFactory(workspace=workspace)
    run = AgentRunFactory(workspace=workspace, call=call)
    ChangeSetFactory.create_batch(50, workspace=workspace, run=run)
    client = login(revops)

    with django_assert_max_num_queries(20):
        response = client.get(LIST_URL)

    assert len(response.context["cl"].result_list) == 50


def test_it_bulk_approves_from_the_list(change_set, proposal, revops, login, applied):
    response = login(revops).post(
        LIST_URL, {"action": "approve", "_selected_action": [change_set.pk]}, follow=True
    )

    assert "1 change set(s) approved." in _messages(response)
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.APPROVED


def test_reps_are_not_offered_the_bulk_approve(change_set, rep, login):
    response = login(rep).get(LIST_URL)

    assert response.context["action_form"] is None  # no action a rep may take


# --- the change page -----------------------------------------------------------------------
def test_it_shows_each_field_with_its_evidence(change_set, proposal, revops, login):
    response = login(revops).get(_change_url(change_set))

    page = response.content.decode()
    assert response.status_code == 200
    assert '<span class="current">50000</span>' in page
    assert '<strong class="proposed">75000</strong>' in page
    assert "We can commit to $75,000." in page
    assert "at 01:15" in page
    assert "0.62" in page
    assert "overwrite" in page
    assert 'value="approve"' in page


def test_it_links_to_the_audit_trail_of_the_record(change_set, proposal, revops, login):
    page = login(revops).get(_change_url(change_set)).content.decode()

    audit = reverse("admin:audit_auditevent_changelist")
    assert f'href="{audit}?record_id=9001"' in page


def test_it_links_to_the_post_call_summary(change_set, proposal, revops, login):
    try:
        summary = reverse("admin:audit_call_summary", args=[change_set.run.call_id])
    except NoReverseMatch:
        pytest.skip("the post-call summary page is not built yet")

    page = login(revops).get(_change_url(change_set)).content.decode()

    assert f'href="{summary}"' in page


def test_the_change_page_stays_within_its_query_budget(
    workspace, change_set, revops, login, django_assert_max_num_queries
):
    ChangeProposalFactory.create_batch(30, workspace=workspace, change_set=change_set)
    client = login(revops)

    with django_assert_max_num_queries(20):
        response = client.get(_change_url(change_set))

    assert len(response.context["proposal_rows"]) == 30


def test_it_approves_one_field(change_set, proposal, revops, login, applied):
    response = _post(login(revops), change_set, action="approve", proposal=proposal.pk)

    assert "Amount: approved." in _messages(response)
    proposal.refresh_from_db()
    assert (proposal.status, proposal.decided_by) == (ProposalStatus.APPROVED, revops)


def test_it_enqueues_the_apply_once_committed(
    change_set, proposal, revops, login, applied, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _post(login(revops), change_set, action="approve", proposal=proposal.pk)

    assert applied == [change_set.pk]


def test_a_rejection_needs_a_reason(change_set, proposal, revops, login):
    client = login(revops)

    response = _post(client, change_set, action="reject", proposal=proposal.pk, reason=" ")

    assert "say why you reject this change: a reason is required" in _messages(response)
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.PENDING

    _post(client, change_set, action="reject", proposal=proposal.pk, reason="Wrong amount")

    proposal.refresh_from_db()
    assert (proposal.status, proposal.status_reason) == (ProposalStatus.REJECTED, "Wrong amount")


def test_an_edit_is_coerced_against_the_crm_property(
    workspace, connection, change_set, proposal, revops, login, applied
):
    CrmPropertyFactory(workspace=workspace, connection=connection, name="amount", type="number")
    client = login(revops)

    response = _post(client, change_set, action="edit", proposal=proposal.pk, value="abc")

    errors = _messages(response)
    assert len(errors) == 1
    assert "abc" in errors[0]
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.PENDING

    _post(client, change_set, action="edit", proposal=proposal.pk, value="$80,000")

    proposal.refresh_from_db()
    assert (proposal.status, proposal.edited_value) == (ProposalStatus.APPROVED, "80000")


def test_it_approves_the_whole_set(workspace, change_set, proposal, revops, login, applied):
    other = ChangeProposalFactory(workspace=workspace, change_set=change_set, field="stage")

    response = _post(login(revops), change_set, action="approve_all")

    assert "Every pending change of this set is approved." in _messages(response)
    statuses = set(change_set.proposals.values_list("status", flat=True))
    assert statuses == {ProposalStatus.APPROVED}
    assert other.pk in change_set.proposals.values_list("pk", flat=True)


def test_rejecting_the_whole_set_needs_a_reason(change_set, proposal, revops, login):
    client = login(revops)

    response = _post(client, change_set, action="reject_all", reason="")

    assert "say why you reject these changes: a reason is required" in _messages(response)
    _post(client, change_set, action="reject_all", reason="Not this deal")
    change_set.refresh_from_db()
    proposal.refresh_from_db()
    assert change_set.reject_reason == "Not this deal"
    assert proposal.status == ProposalStatus.REJECTED


def test_a_decided_set_is_read_only(workspace, change_set, revops, login):
    ChangeProposalFactory(workspace=workspace, change_set=change_set, status="applied")
    ChangeSet.objects.filter(pk=change_set.pk).update(status=SetStatus.APPLIED)

    page = login(revops).get(_change_url(change_set)).content.decode()

    assert 'name="action"' not in page
    assert "Applied" in page


def test_a_test_set_is_labelled_and_offers_no_decision(workspace, revops, login):
    change_set = ChangeSetFactory(workspace=workspace, is_test=True)
    ChangeProposalFactory(workspace=workspace, change_set=change_set)

    page = login(revops).get(_change_url(change_set)).content.decode()

    assert 'id="test-label"' in page
    assert 'name="action"' not in page


# --- conflicts -----------------------------------------------------------------------------
@pytest.fixture
def conflict(workspace, change_set):
    ChangeSet.objects.filter(pk=change_set.pk).update(status=SetStatus.CONFLICT)
    return ChangeProposalFactory(
        workspace=workspace,
        change_set=change_set,
        status=ProposalStatus.CONFLICT,
        crm_value_after="60000",
    )


def test_a_conflict_shows_the_crms_newer_value(change_set, conflict, revops, login):
    page = login(revops).get(_change_url(change_set)).content.decode()

    assert "The CRM now holds: <strong>60000</strong>" in page
    assert 'value="repropose"' in page
    assert 'value="dismiss"' in page


def test_a_conflict_can_be_proposed_again(change_set, conflict, revops, login):
    response = _post(login(revops), change_set, action="repropose", proposal=conflict.pk)

    assert response.status_code == 200
    conflict.refresh_from_db()
    fresh = conflict.superseded_by
    assert conflict.status == ProposalStatus.SUPERSEDED
    assert (fresh.status, fresh.change_set_id) == (ProposalStatus.PENDING, change_set.pk)
    assert (fresh.current_value, fresh.proposed_value) == ("60000", "75000")
    change_set.refresh_from_db()
    assert change_set.status == SetStatus.PENDING_REVIEW
    assert AuditEvent.objects.filter(action="review.repropose", record_id="9001").exists()


def test_a_conflict_can_be_dismissed(change_set, conflict, revops, login):
    _post(login(revops), change_set, action="dismiss", proposal=conflict.pk)

    conflict.refresh_from_db()
    assert (conflict.status, conflict.status_reason) == (
        ProposalStatus.REJECTED,
        "dismissed after a conflict",
    )
    assert AuditEvent.objects.filter(action="review.dismiss_conflict").count() == 1


def test_only_a_conflict_can_be_proposed_again(change_set, proposal, revops, login):
    response = _post(login(revops), change_set, action="repropose", proposal=proposal.pk)

    assert any("is not a conflict" in message for message in _messages(response))
    assert ChangeProposal.objects.filter(change_set=change_set).count() == 1


# --- needs a choice of record --------------------------------------------------------------
@pytest.fixture
def needs_choice(workspace, connection):
    run = AgentRunFactory(
        workspace=workspace,
        status=RunStatus.AMBIGUOUS,
        candidates=[
            {"id": "501", "name": "Acme (EU)", "score": 0.7, "reasons": ["same domain"]},
            {"id": "502", "name": "Acme (US)", "score": 0.9, "reasons": ["attendee is a contact"]},
        ],
    )
    return ChangeSetFactory(
        workspace=workspace, run=run, status=SetStatus.NEEDS_CHOICE, record_id="", record_name=""
    )


def test_it_offers_the_ranked_candidates(needs_choice, revops, login):
    page = login(revops).get(_change_url(needs_choice)).content.decode()

    assert page.index("Acme (US)") < page.index("Acme (EU)")
    assert "attendee is a contact" in page
    assert "https://app.hubspot.com/contacts/4242/record/0-3/502" in page
    assert page.count('value="Use this record"') == 2


def test_choosing_a_record_runs_the_workflow_again(
    needs_choice, revops, login, monkeypatch, django_capture_on_commit_callbacks
):
    queued: list[int] = []
    monkeypatch.setattr(tasks.run_workflow, "delay", queued.append)

    with django_capture_on_commit_callbacks(execute=True):
        response = _post(login(revops), needs_choice, action="choose", record_id="502")

    assert "Record chosen: Acme (US), for 1 workflow(s) of this call." in _messages(response)[0]
    choice = MatchChoice.objects.get(workspace=needs_choice.workspace)
    assert (choice.record_id, choice.record_name, choice.chosen_by) == ("502", "Acme (US)", revops)
    assert queued == [needs_choice.run_id]
    # Processed by a worker, not yet done: the reviewer lands on the call's pending work.
    summary = reverse("admin:audit_call_summary", args=[needs_choice.run.call_id])
    assert response.redirect_chain[-1][0] == summary
    needs_choice.refresh_from_db()
    assert needs_choice.status == SetStatus.CHOSEN
    assert needs_choice.record_id == "502"


def test_the_other_workflows_waiting_on_the_question_are_named(needs_choice, revops, login):
    AgentRunFactory(
        workspace=needs_choice.workspace,
        call=needs_choice.run.call,
        workflow_label="Next steps",
        status=RunStatus.AMBIGUOUS,
        waits_on=needs_choice,
    )

    page = login(revops).get(_change_url(needs_choice)).content.decode()

    assert "One answer settles every workflow of this call: Next steps waits on it too." in page


def test_a_set_not_waiting_for_a_choice_cannot_be_chosen(change_set, revops, login):
    response = _post(login(revops), change_set, action="choose", record_id="9001")

    assert _messages(response) == [
        "this change set is not waiting for a choice of record (it is waiting for review)"
    ]
    assert not MatchChoice.objects.exists()


def test_a_question_is_answered_once(needs_choice, revops, login, monkeypatch):
    monkeypatch.setattr(tasks.run_workflow, "delay", lambda run_id: None)
    client = login(revops)
    _post(client, needs_choice, action="choose", record_id="502")

    response = _post(client, needs_choice, action="choose", record_id="501")

    assert _messages(response) == ["this question was already answered: Acme (US) was chosen"]
    assert MatchChoice.objects.get().record_id == "502"
    page = client.get(_change_url(needs_choice)).content.decode()
    assert "was chosen by" in page
    assert 'value="Use this record"' not in page


def test_only_a_candidate_can_be_chosen(needs_choice, revops, login):
    response = _post(login(revops), needs_choice, action="choose", record_id="999")

    assert "999 is not one of the candidate records" in _messages(response)
    assert not MatchChoice.objects.exists()


# --- who may do what -----------------------------------------------------------------------
def test_a_rep_sees_the_review_without_controls(change_set, proposal, conflict, rep, login):
    client = login(rep)

    page = client.get(_change_url(change_set)).content.decode()

    assert "We can commit to $75,000." in page
    assert 'name="action"' not in page
    assert client.post(_review_url(change_set), {"action": "approve_all"}).status_code == 403
    response = client.post(_review_url(change_set), {"action": "dismiss", "proposal": conflict.pk})
    assert response.status_code == 403
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.PENDING


def test_an_outsider_gets_404(change_set, proposal, outsider, login):
    client = login(outsider)

    assert client.get(_change_url(change_set)).status_code == 404
    response = client.post(_review_url(change_set), {"action": "approve_all"})
    assert response.status_code == 404
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.PENDING


def test_decisions_are_posts_only(change_set, revops, login):
    assert login(revops).get(_review_url(change_set)).status_code == 405


def test_a_workspace_admin_may_decide(change_set, proposal, ws_admin, login, applied):
    _post(login(ws_admin), change_set, action="reject", proposal=proposal.pk, reason="No")

    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.REJECTED
