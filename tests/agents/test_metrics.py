"""/metrics for Prometheus and the metrics section of the admin index."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from crm_agents.models import RunStatus
from governance.review_models import ProposalStatus
from tests.factories import (
    AgentRunFactory,
    AuditEventFactory,
    ChangeProposalFactory,
    ChangeSetFactory,
    ConnectionFactory,
    CrmCallFactory,
    PolicyFactory,
)

TOKEN = "scrape-me-0123456789"


def _samples(response) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture
def activity(workspace):
    """Runs, proposals, refusals and CRM writes, one permission miss among four writes."""
    AgentRunFactory.create_batch(2, workspace=workspace, status=RunStatus.APPLIED)
    AgentRunFactory(workspace=workspace, status=RunStatus.FAILED, provider="salesforce")
    AgentRunFactory(workspace=workspace, status=RunStatus.DRY_RUN, is_test=True)
    now = timezone.now()
    change_set = ChangeSetFactory(workspace=workspace, run=None)
    ChangeProposalFactory(
        workspace=workspace,
        change_set=change_set,
        status=ProposalStatus.APPLIED,
        decided_at=now - timedelta(seconds=3),
        applied_at=now,
    )
    ChangeProposalFactory(
        workspace=workspace,
        change_set=change_set,
        status=ProposalStatus.APPLIED,
        decided_at=now - timedelta(seconds=120),
        applied_at=now,
    )
    ChangeProposalFactory.create_batch(3, workspace=workspace, change_set=change_set)
    ChangeProposalFactory(workspace=workspace, status=ProposalStatus.DENIED, change_set__run=None)
    for code in ("not_writable", "not_writable", "stage_change"):
        AuditEventFactory(
            workspace=workspace, action="crm.write.denied", outcome="denied", context={"code": code}
        )
    AuditEventFactory(workspace=workspace, action="model.answer.refused", outcome="denied")
    connection = ConnectionFactory(workspace=workspace)
    calls = {"workspace": workspace, "connection": connection}
    CrmCallFactory.create_batch(3, **calls, operation="update")
    CrmCallFactory(
        **calls,
        operation="update",
        outcome="PermissionDenied",
        error="INSUFFICIENT_ACCESS_OR_READONLY (HTTP 400)",
    )
    # Refused by CRM Steward's own record-access check before sending: not a write sent.
    CrmCallFactory(
        **calls,
        operation="update",
        outcome="PermissionDenied",
        error="outside your HubSpot record access (HTTP 403, RECORD_ACCESS)",
    )
    CrmCallFactory.create_batch(5, **calls, operation="get")


@pytest.mark.django_db
def test_it_refuses_anonymous_scrapes(settings):
    settings.METRICS_TOKEN = TOKEN

    response = Client().get("/metrics")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_it_refuses_a_wrong_token(settings):
    settings.METRICS_TOKEN = TOKEN

    response = Client().get("/metrics", headers={"Authorization": "Bearer nope"})

    assert response.status_code == 401


@pytest.mark.django_db
def test_it_refuses_any_token_when_none_is_configured(settings):
    settings.METRICS_TOKEN = ""

    response = Client().get("/metrics", headers={"Authorization": "Bearer "})

    assert response.status_code == 401


@pytest.mark.django_db
def test_it_refuses_a_workspace_admin(settings, login, ws_admin):
    settings.METRICS_TOKEN = TOKEN

    assert login(ws_admin).get("/metrics").status_code == 401


@pytest.mark.django_db
def test_it_serves_a_superuser_without_a_token(settings, login, superuser):
    settings.METRICS_TOKEN = ""

    response = login(superuser).get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.django_db
def test_it_counts_what_the_database_holds(settings, activity):
    settings.METRICS_TOKEN = TOKEN

    response = Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    samples = _samples(response)
    runs = {
        labels: value
        for (name, labels), value in samples.items()
        if name == "crm_steward_runs_total"
    }
    assert runs == {
        (("provider", "hubspot"), ("status", "applied")): 2,
        (("provider", "salesforce"), ("status", "failed")): 1,
    }  # the TEST run is not counted
    assert samples[("crm_steward_proposals_total", (("status", "applied"),))] == 2
    assert samples[("crm_steward_proposals_total", (("status", "pending"),))] == 3
    assert samples[("crm_steward_proposals_total", (("status", "denied"),))] == 1
    assert samples[("crm_steward_refusals_total", (("reason", "not_writable"),))] == 2
    assert samples[("crm_steward_refusals_total", (("reason", "stage_change"),))] == 1
    assert samples[("crm_steward_refusals_total", (("reason", "model_output"),))] == 1
    assert samples[("crm_steward_apply_latency_seconds_count", ())] == 2
    assert samples[("crm_steward_apply_latency_seconds_bucket", (("le", "5.0"),))] == 1
    assert samples[("crm_steward_apply_latency_seconds_bucket", (("le", "300.0"),))] == 2
    assert samples[("crm_steward_apply_latency_seconds_sum", ())] == pytest.approx(123, abs=1)
    assert samples[("crm_steward_crm_writes_total", ())] == 4
    assert samples[("crm_steward_permission_violations_total", ())] == 1
    assert samples[("crm_steward_permission_violations_ratio", ())] == 0.25


@pytest.mark.django_db
def test_it_reports_zero_violations_without_writes(settings, login, superuser):
    response = login(superuser).get("/metrics")

    assert _samples(response)[("crm_steward_permission_violations_ratio", ())] == 0.0


@pytest.mark.django_db
def test_the_admin_index_shows_the_workspace_figures(login, revops, workspace, activity):
    PolicyFactory(workspace=workspace, provider="hubspot")

    response = login(revops).get(reverse("admin:index"))

    assert response.status_code == 200
    (figures,) = response.context["steward_metrics"]
    assert figures.workspace == workspace
    assert figures.runs_total == 3
    assert dict(figures.proposal_counts)["Applied"] == 2
    assert dict(figures.proposal_counts)["Waiting for review"] == 3
    assert (figures.writes_sent, figures.violations) == (4, 1)
    page = response.content.decode()
    assert 'id="steward-metrics"' in page
    assert "25.0%" in page
    assert "Pause everything" in page


@pytest.mark.django_db
def test_the_admin_index_keeps_other_workspaces_figures_away(login, outsider, activity):
    response = login(outsider).get(reverse("admin:index"))

    assert response.status_code == 200
    assert [f.workspace.slug for f in response.context["steward_metrics"]] == ["globex-sales"]
    page = response.content.decode()
    assert "Acme Sales" not in page
    assert "25.0%" not in page


@pytest.mark.django_db
def test_a_rep_sees_figures_but_no_pause_button(login, rep, workspace, activity):
    PolicyFactory(workspace=workspace, provider="hubspot")

    response = login(rep).get(reverse("admin:index"))

    (figures,) = response.context["steward_metrics"]
    assert figures.may_control is False
    assert "Pause everything" not in response.content.decode()


@pytest.mark.django_db
def test_the_admin_index_stays_within_a_query_budget(
    login, superuser, workspace, other_workspace, activity, django_assert_max_num_queries
):
    client = login(superuser)
    with django_assert_max_num_queries(20):
        response = client.get(reverse("admin:index"))
    assert len(response.context["steward_metrics"]) == 2
