"""The report pages: post-call summary, workflow tracking and field history."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.urls import reverse
from django.utils import timezone

from audit import reports
from crm_agents.models import AgentRun, RunStatus
from governance.models import CrmProvider, Role
from governance.review_models import ChangeProposal, ChangeSet, ProposalStatus, SetStatus
from tests.factories import (
    AgentRunFactory,
    AuditEventFactory,
    CallFactory,
    ChangeProposalFactory,
    ChangeSetFactory,
    ConnectionFactory,
    MembershipFactory,
    UserFactory,
    WorkflowFactory,
    member_of,
)

pytestmark = pytest.mark.django_db

SF_BASE = "https://acme.my.salesforce.com"


def _summary_url(call) -> str:
    return reverse("admin:audit_call_summary", args=[call.pk])


def _history_url(**params: str) -> str:
    query = {"provider": "hubspot", "object_type": "deal", "record_id": "5001", "field": "amount"}
    query.update(params)
    return reverse("admin:audit_field_history") + "?" + urlencode(query)


def _aged(model, obj, days: float) -> None:
    model.objects.filter(pk=obj.pk).update(created_at=timezone.now() - timedelta(days=days))


@pytest.fixture
def call(workspace):
    return CallFactory(workspace=workspace, title="Acme pricing call")


@pytest.fixture
def hubspot_run(workspace, call):
    connection = ConnectionFactory(workspace=workspace, crm_account_id="12345678")
    return AgentRunFactory(
        workspace=workspace,
        call=call,
        workflow=WorkflowFactory(workspace=workspace, name="Deal hygiene"),
        connection=connection,
        status=RunStatus.PENDING_REVIEW,
        record_id="5001",
        record_name="Acme renewal",
        match_reason="jane@acme.example is a contact on the only open deal",
        match_confidence=0.92,
        candidates=[
            {"id": "5001", "name": "Acme renewal", "score": 0.92, "reasons": ["open deal"]},
            {"id": "5002", "name": "Acme pilot", "score": 0.4, "reasons": ["closed last year"]},
        ],
    )


@pytest.fixture
def salesforce_run(workspace, call):
    connection = ConnectionFactory(
        workspace=workspace, provider=CrmProvider.SALESFORCE, api_base_url=SF_BASE
    )
    return AgentRunFactory(
        workspace=workspace,
        call=call,
        workflow=WorkflowFactory(
            workspace=workspace, name="Opportunity hygiene", provider=CrmProvider.SALESFORCE
        ),
        provider=CrmProvider.SALESFORCE,
        connection=connection,
        status=RunStatus.APPLIED,
        record_id="006000000000001AAA",
        record_name="Acme Opportunity",
        match_reason="the account's only open opportunity",
    )


@pytest.fixture
def proposal(workspace, hubspot_run):
    change_set = ChangeSetFactory(
        workspace=workspace, run=hubspot_run, record_id="5001", record_name="Acme renewal"
    )
    return ChangeProposalFactory(
        workspace=workspace,
        change_set=change_set,
        label="Amount",
        current_value="50000",
        proposed_value="75000",
        evidence="We can commit to $75,000.",
        evidence_start=65,
    )


# --- links ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("object_type", "type_id"), [("deal", "0-3"), ("contact", "0-1"), ("company", "0-2")]
)
def test_it_links_hubspot_records(workspace, object_type, type_id):
    connection = ConnectionFactory(workspace=workspace, crm_account_id="12345678")

    url = reports.crm_record_url(connection, "hubspot", object_type, "42")

    assert url == f"https://app.hubspot.com/contacts/12345678/record/{type_id}/42"


@pytest.mark.parametrize(
    ("object_type", "sobject"),
    [("deal", "Opportunity"), ("contact", "Contact"), ("company", "Account")],
)
def test_it_links_salesforce_records(workspace, object_type, sobject):
    connection = ConnectionFactory(
        workspace=workspace, provider=CrmProvider.SALESFORCE, api_base_url=SF_BASE + "/"
    )

    url = reports.crm_record_url(connection, "salesforce", object_type, "001X")

    assert url == f"{SF_BASE}/lightning/r/{sobject}/001X/view"


def test_it_gives_no_link_without_a_connection_or_a_record(workspace):
    connection = ConnectionFactory(workspace=workspace)

    assert reports.crm_record_url(None, "hubspot", "deal", "42") is None
    assert reports.crm_record_url(connection, "hubspot", "deal", "") is None
    assert reports.crm_record_url(connection, "hubspot", "ticket", "42") is None


# --- post-call summary ----------------------------------------------------------------------


def test_it_summarises_every_run_of_a_call(login, revops, call, proposal, salesforce_run):
    ChangeProposalFactory(
        workspace=call.workspace,
        change_set=ChangeSetFactory(
            workspace=call.workspace,
            run=salesforce_run,
            provider=CrmProvider.SALESFORCE,
            record_id="006000000000001AAA",
            status=SetStatus.APPLIED,
        ),
        field="next_step",
        native_field="NextStep",
        current_value=None,
        proposed_value="Send the order form",
        applied_value="Send the order form",
        evidence="I'll send the order form tomorrow.",
        status=ProposalStatus.APPLIED,
        status_reason="written to the CRM",
    )

    response = login(revops).get(_summary_url(call))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Post-call summary: Acme pricing call" in html
    assert "Deal hygiene" in html
    assert "Opportunity hygiene" in html
    # The matched record and why, with the ranked candidates.
    assert "jane@acme.example is a contact on the only open deal" in html
    assert "Acme pilot" in html
    assert "closed last year" in html
    # Every field before → after, with status and evidence.
    assert '<span class="before">50000</span> → <span class="after">75000</span>' in html
    assert "We can commit to $75,000." in html
    assert "at 1:05" in html
    assert "Waiting for review" in html
    assert (
        '<span class="before">(empty)</span> → <span class="after">Send the order form</span>'
        in (html)
    )
    assert "written to the CRM" in html
    # Links to each CRM, the audit and the field's history.
    assert "https://app.hubspot.com/contacts/12345678/record/0-3/5001" in html
    assert f"{SF_BASE}/lightning/r/Opportunity/006000000000001AAA/view" in html
    assert reverse("admin:audit_auditevent_changelist") + "?record_id=5001" in html
    history = reports.field_history_url("hubspot", "deal", "5001", "amount")
    assert history.replace("&", "&amp;") in html


def test_it_groups_the_call_by_record_with_every_workflows_fields(
    login, revops, workspace, call, hubspot_run, proposal
):
    forecast = AgentRunFactory(
        workspace=workspace,
        call=call,
        workflow=WorkflowFactory(workspace=workspace, name="Forecast"),
        connection=hubspot_run.connection,
        status=RunStatus.APPLIED,
        record_id="5001",
        record_name="Acme renewal",
        match_reason="the only candidate: Acme renewal",
    )
    ChangeProposalFactory(
        workspace=workspace,
        change_set=ChangeSetFactory(
            workspace=workspace,
            run=forecast,
            record_id="5001",
            record_name="Acme renewal",
            workflow_label="Forecast",
            status=SetStatus.APPLIED,
        ),
        field="close_date",
        native_field="closedate",
        current_value="2027-01-31",
        proposed_value="2027-03-31",
        status=ProposalStatus.APPLIED,
    )
    AgentRunFactory(
        workspace=workspace,
        call=call,
        workflow=WorkflowFactory(workspace=workspace, name="Contact roles", object_type="contact"),
        status=RunStatus.NO_MATCH,
        status_reason="no external attendee is a contact in the CRM",
    )

    summary = reports.call_summary(call)
    html = login(revops).get(_summary_url(call)).content.decode()

    # One record, both workflows and both fields under it; the third workflow apart.
    [record] = summary.records
    assert (record.record_id, [run.workflow_label for run in record.runs]) == (
        "5001",
        ["Deal hygiene", "Forecast"],
    )
    assert [(c.workflow_label, c.proposal.field) for c in record.fields] == [
        ("Deal hygiene", "amount"),
        ("Forecast", "close_date"),
    ]
    assert [run.workflow_label for run in summary.unmatched] == ["Contact roles"]
    assert html.count('class="module record"') == 1
    assert html.count('class="proposal"') == 2
    assert "Workflows that reached no record" in html
    assert "no external attendee is a contact in the CRM" in html


def test_it_shows_who_decided(login, revops, proposal):
    ChangeProposal.objects.filter(pk=proposal.pk).update(
        status=ProposalStatus.REJECTED,
        status_reason="the customer only floated that number",
        decided_by=revops,
        decided_at=timezone.now(),
    )

    html = login(revops).get(_summary_url(proposal.change_set.run.call)).content.decode()

    assert "Rejected" in html
    assert "the customer only floated that number" in html
    assert revops.username in html


def test_it_labels_test_runs(login, revops, workspace, call):
    AgentRunFactory(workspace=workspace, call=call, is_test=True, status=RunStatus.DRY_RUN)

    html = login(revops).get(_summary_url(call)).content.decode()

    assert "TEST · " in html


def test_it_shows_a_call_to_every_member_of_its_workspace(login, rep, call):
    assert login(rep).get(_summary_url(call)).status_code == 200


def test_it_hides_a_call_from_outsiders(login, outsider, call):
    assert login(outsider).get(_summary_url(call)).status_code == 404


def test_it_summarises_a_call_in_few_queries(
    login, revops, workspace, call, django_assert_max_num_queries
):
    connection = ConnectionFactory(workspace=workspace)
    for _ in range(4):
        run = AgentRunFactory(workspace=workspace, call=call, connection=connection)
        change_set = ChangeSetFactory(workspace=workspace, run=run, decided_by=revops)
        for name in ("amount", "stage", "close_date"):
            ChangeProposalFactory(
                workspace=workspace,
                change_set=change_set,
                field=name,
                native_field=name,
                decided_by=revops,
            )
    client = login(revops)

    with django_assert_max_num_queries(12):
        response = client.get(_summary_url(call))

    assert response.status_code == 200
    assert response.content.decode().count('class="proposal"') == 12


# --- workflow tracking ----------------------------------------------------------------------


def _tracked(workspace, workflow, *, days: float, status: str, owner: str = "riley@acme.example"):
    """A run of ``workflow`` ``days`` ago with one proposal in ``status``."""
    run = AgentRunFactory(
        workspace=workspace, workflow=workflow, call__owner_email=owner, call__workspace=workspace
    )
    change_set = ChangeSetFactory(workspace=workspace, run=run)
    proposal = ChangeProposalFactory(workspace=workspace, change_set=change_set, status=status)
    _aged(AgentRun, run, days)
    _aged(ChangeProposal, proposal, days)
    return run


def _row(response, workflow) -> reports.WorkflowRow:
    return next(row for row in response.context["rows"] if row.workflow == workflow)


def test_it_counts_runs_and_changes_over_7_and_30_days(login, revops, workspace):
    workflow = WorkflowFactory(workspace=workspace, name="Deal hygiene")
    _tracked(workspace, workflow, days=1, status=ProposalStatus.APPLIED)
    _tracked(workspace, workflow, days=2, status=ProposalStatus.REJECTED)
    _tracked(workspace, workflow, days=10, status=ProposalStatus.APPLIED)
    _tracked(workspace, workflow, days=12, status=ProposalStatus.CONFLICT)
    _tracked(workspace, workflow, days=20, status=ProposalStatus.DENIED)
    _tracked(workspace, workflow, days=45, status=ProposalStatus.APPLIED)  # too old

    response = login(revops).get(reverse("admin:audit_workflow_tracking"))

    assert response.status_code == 200
    row = _row(response, workflow)
    assert (row.runs.d7, row.runs.d30) == (2, 5)
    assert (row.tally.proposed.d7, row.tally.proposed.d30) == (2, 5)
    assert (row.tally.applied.d7, row.tally.applied.d30) == (1, 2)
    assert (row.tally.rejected.d7, row.tally.rejected.d30) == (1, 1)
    assert (row.tally.conflict.d7, row.tally.conflict.d30) == (0, 1)
    assert (row.tally.denied.d7, row.tally.denied.d30) == (0, 1)
    assert [(f.object_type, f.native_field) for f in row.fields] == [("deal", "amount")]
    assert row.fields[0].tally.applied.d30 == 2
    assert "Deal hygiene" in response.content.decode()


def test_it_counts_per_owner(login, revops, workspace):
    workflow = WorkflowFactory(workspace=workspace)
    _tracked(workspace, workflow, days=1, status=ProposalStatus.APPLIED, owner="riley@acme.example")
    _tracked(workspace, workflow, days=9, status=ProposalStatus.APPLIED, owner="riley@acme.example")
    _tracked(workspace, workflow, days=3, status=ProposalStatus.REJECTED, owner="sam@acme.example")

    response = login(revops).get(reverse("admin:audit_workflow_tracking"))

    owners = {owner.owner_email: owner for owner in _row(response, workflow).owners}
    riley, sam = owners["riley@acme.example"], owners["sam@acme.example"]
    assert (riley.runs.d7, riley.runs.d30) == (1, 2)
    assert (riley.tally.applied.d7, riley.tally.applied.d30) == (1, 2)
    assert (sam.runs.d7, sam.runs.d30) == (1, 1)
    assert (sam.tally.rejected.d7, sam.tally.applied.d30) == (1, 0)
    assert "sam@acme.example" in response.content.decode()


def test_it_counts_test_runs_apart(login, revops, workspace):
    workflow = WorkflowFactory(workspace=workspace)
    run = AgentRunFactory(workspace=workspace, workflow=workflow, is_test=True)
    ChangeProposalFactory(
        workspace=workspace,
        change_set=ChangeSetFactory(workspace=workspace, run=run, is_test=True),
        status=ProposalStatus.DRY_RUN,
    )

    row = _row(login(revops).get(reverse("admin:audit_workflow_tracking")), workflow)

    assert (row.runs.d30, row.test_runs, row.tally.proposed.d30) == (0, 1, 0)


def test_it_lists_workflows_that_never_ran_with_their_fields(login, revops, workspace):
    workflow = WorkflowFactory(workspace=workspace, name="Contact hygiene", object_type="contact")
    workflow.rules.create(workspace=workspace, field="title", instruction="Their job title")

    response = login(revops).get(reverse("admin:audit_workflow_tracking"))

    row = _row(response, workflow)
    assert (row.runs.d30, row.tally.proposed.d30) == (0, 0)
    assert [rule.field for rule in row.rules] == ["title"]
    assert "Contact hygiene" in response.content.decode()


def test_it_filters_by_crm_and_workspace(login, workspace, other_workspace):
    user = member_of(workspace, Role.REVOPS)
    both = member_of(workspace, Role.REVOPS)
    MembershipFactory(workspace=other_workspace, user=both, role=Role.REVOPS)
    hubspot = WorkflowFactory(workspace=workspace)
    salesforce = WorkflowFactory(workspace=workspace, provider=CrmProvider.SALESFORCE)
    elsewhere = WorkflowFactory(workspace=other_workspace)
    url = reverse("admin:audit_workflow_tracking")

    def listed(client, query: str = "") -> set:
        return {row.workflow for row in client.get(url + query).context["rows"]}

    assert listed(login(user)) == {hubspot, salesforce}
    assert listed(login(user), "?provider=salesforce") == {salesforce}
    assert listed(login(both)) == {hubspot, salesforce, elsewhere}
    assert listed(login(both), f"?workspace={other_workspace.pk}") == {elsewhere}


def test_it_tracks_only_the_users_workspaces(login, outsider, workspace):
    WorkflowFactory(workspace=workspace, name="Acme only workflow")
    client = login(outsider)

    response = client.get(reverse("admin:audit_workflow_tracking"))

    assert response.status_code == 200
    assert "Acme only workflow" not in response.content.decode()
    assert response.context["rows"] == []
    query = f"?workspace={workspace.pk}"
    assert client.get(reverse("admin:audit_workflow_tracking") + query).status_code == 404


def test_it_404s_tracking_for_someone_in_no_workspace(login):
    assert login(UserFactory()).get(reverse("admin:audit_workflow_tracking")).status_code == 404


def test_it_tracks_any_amount_of_data_in_a_fixed_number_of_queries(
    login, revops, workspace, django_assert_max_num_queries
):
    statuses = [ProposalStatus.APPLIED, ProposalStatus.REJECTED, ProposalStatus.CONFLICT]
    for n in range(6):
        workflow = WorkflowFactory(workspace=workspace)
        workflow.rules.create(workspace=workspace, field="amount", instruction="The amount")
        for days in (1, 9):
            _tracked(
                workspace,
                workflow,
                days=days,
                status=statuses[n % 3],
                owner=f"rep{n % 2}@acme.example",
            )
    client = login(revops)

    with django_assert_max_num_queries(15):
        response = client.get(reverse("admin:audit_workflow_tracking"))

    assert response.status_code == 200
    assert len(response.context["rows"]) == 6


# --- field history --------------------------------------------------------------------------


def test_it_shows_the_timeline_of_one_field(login, revops, workspace, proposal):
    later = ChangeProposalFactory(
        workspace=workspace,
        change_set=ChangeSetFactory(
            workspace=workspace,
            run=AgentRunFactory(workspace=workspace, call__title="Acme follow-up"),
            record_id="5001",
            call_title="Acme follow-up",
        ),
        current_value="75000",
        proposed_value="80000",
        edited_value="82000",
        applied_value="82000",
        status=ProposalStatus.APPLIED,
        decided_by=revops,
        decided_at=timezone.now(),
        evidence="Let's make it eighty thousand.",
    )
    fields = {"crm": "hubspot", "object_type": "deal", "record_id": "5001", "field": "amount"}
    AuditEventFactory(
        workspace=workspace,
        action="review.edit",
        actor_kind="user",
        before="75000",
        after="82000",
        **fields,
    )
    AuditEventFactory(workspace=workspace, action="crm.write", after="82000", **fields)
    AuditEventFactory(workspace=workspace, action="change.rollback", reason="undo", **fields)
    AuditEventFactory(workspace=workspace, action="crm.read", **fields)  # not a change
    AuditEventFactory(workspace=workspace, action="crm.write", **{**fields, "field": "dealstage"})
    AuditEventFactory(workspace=workspace, action="crm.write", **{**fields, "record_id": "5002"})

    response = login(revops).get(_history_url())

    assert response.status_code == 200
    entries = response.context["history"].entries
    assert [entry.proposal for entry in entries[:2]] == [proposal, later]
    assert [entry.event.action for entry in entries[2:]] == [
        "review.edit",
        "crm.write",
        "change.rollback",
    ]
    html = response.content.decode()
    assert "Acme pricing call" in html
    assert "Acme follow-up" in html
    assert reverse("admin:audit_call_summary", args=[later.change_set.run.call_id]) in html
    assert '<span class="edited">82000</span>' in html
    assert '<span class="written">82000</span>' in html
    assert "Let&#x27;s make it eighty thousand." in html
    assert revops.username in html
    assert "https://app.hubspot.com/contacts/12345678/record/0-3/5001" in html


def test_it_labels_test_proposals_in_a_fields_history(login, revops, workspace, proposal):
    ChangeSet.objects.filter(pk=proposal.change_set_id).update(is_test=True)

    html = login(revops).get(_history_url()).content.decode()

    assert "TEST · " in html


def test_it_hides_a_fields_history_from_outsiders(login, outsider, proposal):
    assert login(outsider).get(_history_url()).status_code == 404


def test_it_404s_a_field_with_no_history(login, revops, proposal):
    client = login(revops)

    assert client.get(_history_url(field="dealstage")).status_code == 404
    assert client.get(reverse("admin:audit_field_history")).status_code == 404


def test_it_shows_a_salesforce_fields_history_with_its_link(
    login, revops, workspace, salesforce_run
):
    ChangeProposalFactory(
        workspace=workspace,
        change_set=ChangeSetFactory(
            workspace=workspace,
            run=salesforce_run,
            provider=CrmProvider.SALESFORCE,
            record_id="006000000000001AAA",
        ),
        field="next_step",
        native_field="NextStep",
    )

    response = login(revops).get(
        _history_url(provider="salesforce", record_id="006000000000001AAA", field="NextStep")
    )

    assert response.status_code == 200
    assert f"{SF_BASE}/lightning/r/Opportunity/006000000000001AAA/view" in response.content.decode()


def test_the_audit_list_links_to_workflow_tracking(login, revops):
    html = login(revops).get(reverse("admin:audit_auditevent_changelist")).content.decode()

    assert reverse("admin:audit_workflow_tracking") in html
    assert "Workflow tracking" in html
