"""The review queue over the API: reading change sets, and deciding on them per field or
per set. Reps read; RevOps, admins and API keys decide; outsiders see nothing."""

import pytest

from audit.models import AuditEvent
from governance.review_models import ProposalStatus, SetStatus
from tests.factories import ChangeProposalFactory, ChangeSetFactory, CrmPropertyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def proposal(workspace):
    CrmPropertyFactory(workspace=workspace, name="amount", label="Amount", type="number")
    return ChangeProposalFactory(workspace=workspace)


def _decide(client, proposal, **body):
    return client.post(f"/api/v1/proposals/{proposal.pk}/decide/", body, format="json")


def test_it_shows_a_change_set_with_its_proposals(api_as, rep, proposal):
    body = api_as(rep).get(f"/api/v1/change-sets/{proposal.change_set_id}/").json()

    assert body["status"] == SetStatus.PENDING_REVIEW
    assert [p["id"] for p in body["proposals"]] == [proposal.pk]
    assert body["proposals"][0]["proposed_value"] == "75000"
    assert body["proposals"][0]["evidence"] == "We can commit to $75,000."


def test_it_filters_change_sets_by_status(api_as, rep, workspace, proposal):
    rejected = ChangeSetFactory(workspace=workspace, status=SetStatus.REJECTED)
    client = api_as(rep)

    def ids(status: str) -> list[int]:
        listed = client.get(f"/api/v1/change-sets/?status={status}").json()["results"]
        return [s["id"] for s in listed]

    assert ids("pending_review") == [proposal.change_set_id]
    assert ids("rejected") == [rejected.pk]


def test_revops_approves_a_proposal(api_as, revops, proposal):
    response = _decide(api_as(revops), proposal, decision="approve")

    assert response.status_code == 200
    assert response.json()["status"] == ProposalStatus.APPROVED
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.APPROVED
    assert proposal.decided_by == revops
    event = AuditEvent.objects.get(action="review.approve")
    assert event.actor_user == revops
    assert event.field == "amount"


def test_a_rejection_needs_a_reason(api_as, revops, proposal):
    response = _decide(api_as(revops), proposal, decision="reject")

    assert response.status_code == 400
    assert "reason is required" in " ".join(response.json()["reason"])
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.PENDING


def test_revops_rejects_a_proposal_with_a_reason(api_as, revops, proposal):
    response = _decide(api_as(revops), proposal, decision="reject", reason="Wrong deal")

    assert response.status_code == 200
    proposal.refresh_from_db()
    assert (proposal.status, proposal.status_reason) == (ProposalStatus.REJECTED, "Wrong deal")


def test_an_edit_is_checked_against_the_property_type(api_as, revops, proposal):
    response = _decide(api_as(revops), proposal, decision="edit", value="a lot")

    assert response.status_code == 400
    assert "detail" in response.json()
    proposal.refresh_from_db()
    assert (proposal.status, proposal.edited_value) == (ProposalStatus.PENDING, None)


def test_an_edit_is_approved_as_coerced(api_as, revops, proposal):
    response = _decide(api_as(revops), proposal, decision="edit", value="$80,000")

    assert response.status_code == 200
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.APPROVED
    assert proposal.edited_value == "80000"
    assert response.json()["value_to_write"] == "80000"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"decision": "maybe"}, "decision"),
        ({}, "decision"),
        ({"decision": "edit"}, "value"),
        ({"decision": "edit", "value": {"amount": 1}}, "value"),
    ],
)
def test_it_names_a_bad_decision_body(api_as, revops, proposal, body, field):
    response = _decide(api_as(revops), proposal, **body)

    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_a_decided_proposal_cannot_be_decided_again(api_as, revops, proposal):
    client = api_as(revops)
    _decide(client, proposal, decision="approve")

    again = _decide(client, proposal, decision="reject", reason="changed my mind")

    assert again.status_code == 409
    assert "already decided" in again.json()["detail"]


def test_a_rep_may_read_but_not_decide(api_as, rep, proposal):
    client = api_as(rep)

    assert client.get(f"/api/v1/proposals/{proposal.pk}/").status_code == 200
    response = _decide(client, proposal, decision="approve")
    set_response = client.post(f"/api/v1/change-sets/{proposal.change_set_id}/approve/")

    assert response.status_code == 403
    assert set_response.status_code == 403
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.PENDING


def test_an_outsider_gets_404_for_everything(api_as, outsider, proposal):
    client = api_as(outsider)
    set_id = proposal.change_set_id

    assert client.get(f"/api/v1/change-sets/{set_id}/").status_code == 404
    assert client.get(f"/api/v1/proposals/{proposal.pk}/").status_code == 404
    assert _decide(client, proposal, decision="approve").status_code == 404
    assert client.post(f"/api/v1/change-sets/{set_id}/approve/").status_code == 404
    reject = client.post(f"/api/v1/change-sets/{set_id}/reject/", {"reason": "x"}, format="json")
    assert reject.status_code == 404
    assert client.get("/api/v1/change-sets/").json()["results"] == []
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.PENDING


def test_an_admin_approves_a_whole_change_set(api_as, ws_admin, workspace, proposal):
    second = ChangeProposalFactory(
        workspace=workspace, change_set=proposal.change_set, field="close_date"
    )

    response = api_as(ws_admin).post(f"/api/v1/change-sets/{proposal.change_set_id}/approve/")

    assert response.status_code == 200
    assert response.json()["status"] == SetStatus.APPROVED
    statuses = {p["id"]: p["status"] for p in response.json()["proposals"]}
    assert statuses == {proposal.pk: "approved", second.pk: "approved"}
    assert AuditEvent.objects.filter(action="review.approve_set").count() == 1


def test_rejecting_a_change_set_needs_a_reason(api_as, revops, proposal):
    client = api_as(revops)
    url = f"/api/v1/change-sets/{proposal.change_set_id}/reject/"

    missing = client.post(url, {}, format="json")
    blank = client.post(url, {"reason": "  "}, format="json")
    given = client.post(url, {"reason": "Not this deal"}, format="json")

    assert missing.status_code == 400
    assert list(missing.json()) == ["reason"]
    assert blank.status_code == 400
    assert "reason is required" in " ".join(blank.json()["reason"])
    assert given.status_code == 200
    assert given.json()["reject_reason"] == "Not this deal"
    assert given.json()["status"] == SetStatus.REJECTED


def test_a_test_change_set_cannot_be_approved(api_as, revops, workspace):
    test_set = ChangeSetFactory(workspace=workspace, is_test=True)
    ChangeProposalFactory(workspace=workspace, change_set=test_set)

    response = api_as(revops).post(f"/api/v1/change-sets/{test_set.pk}/approve/")

    assert response.status_code == 409
    assert "TEST" in response.json()["detail"]


def test_the_models_raw_value_is_for_revops_only(api_as, rep, revops, proposal):
    url = f"/api/v1/proposals/{proposal.pk}/"

    assert "raw_value" not in api_as(rep).get(url).json()
    assert "raw_value" in api_as(revops).get(url).json()


def test_an_edit_without_a_crm_connection_is_a_clear_400(api_as, revops, workspace):
    # A workspace whose CRM was disconnected: nothing to check the edited value against.
    proposal = ChangeProposalFactory(workspace=workspace)

    response = _decide(api_as(revops), proposal, decision="edit", value="80000")

    assert response.status_code == 400
    assert "no HubSpot connection" in response.json()["detail"]
    proposal.refresh_from_db()
    assert (proposal.status, proposal.edited_value) == (ProposalStatus.PENDING, None)
