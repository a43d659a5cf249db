"""RevOps configures a workflow in the admin: pick fields, one instruction each."""

import pytest
from django.urls import reverse

from crm_agents.models import FieldRule, Workflow
from tests.factories import ConnectionFactory, CrmPropertyFactory


def _post(client, workspace, *rules):
    data = {
        "workspace": workspace.pk,
        "name": "Deal hygiene",
        "key": "hygiene",
        "provider": "hubspot",
        "object_type": "deal",
        "trigger_external_attendees": "on",
        "trigger_min_duration_s": "0",
        "no_match": "skip",
        "enabled": "on",
        "rules-TOTAL_FORMS": str(len(rules)),
        "rules-INITIAL_FORMS": "0",
        "rules-MIN_NUM_FORMS": "0",
        "rules-MAX_NUM_FORMS": "1000",
    }
    for index, (field, dependencies) in enumerate(rules):
        data.update(
            {
                f"rules-{index}-order": str(index),
                f"rules-{index}-field": field,
                f"rules-{index}-instruction": "What the buyer said about it",
                f"rules-{index}-write_mode": "overwrite",
                f"rules-{index}-read_dependencies": dependencies,
            }
        )
    return client.post(reverse("admin:crm_agents_workflow_add"), data)


@pytest.fixture
def deal_properties(workspace):
    connection = ConnectionFactory(workspace=workspace, provider="hubspot")
    for name in ("amount", "closedate", "dealstage", "hs_next_step"):
        CrmPropertyFactory(
            workspace=workspace,
            connection=connection,
            provider="hubspot",
            object_type="deal",
            name=name,
        )


@pytest.mark.django_db
def test_it_saves_a_workflow_with_its_rules_in_the_workspace(
    login, revops, workspace, deal_properties
):
    response = _post(login(revops), workspace, ("amount", '["stage"]'), ("next_step", "[]"))

    assert response.status_code == 302, response.content.decode()[:2000]
    workflow = Workflow.objects.get(workspace=workspace, key="hygiene")
    rules = list(workflow.rules.order_by("order"))
    assert [rule.field for rule in rules] == ["amount", "next_step"]
    assert {rule.workspace_id for rule in rules} == {workspace.pk}
    assert rules[0].read_dependencies == ["stage"]


@pytest.mark.django_db
def test_it_refuses_a_field_the_crm_does_not_have_and_suggests_one(
    login, revops, workspace, deal_properties
):
    response = _post(login(revops), workspace, ("ammount", "[]"))

    assert response.status_code == 200
    assert "The CRM has no deal property &#x27;ammount&#x27;. Did you mean amount?" in (
        response.content.decode()
    )
    assert not FieldRule.objects.exists()


@pytest.mark.django_db
def test_it_refuses_dependencies_that_are_not_a_list_of_names(
    login, revops, workspace, deal_properties
):
    response = _post(login(revops), workspace, ("amount", '{"stage": 1}'))

    assert response.status_code == 200
    assert "A list of field names" in response.content.decode()
    assert not Workflow.objects.exists()


@pytest.mark.django_db
def test_it_creates_a_workflow_from_a_template_in_minutes(login, revops, workspace):
    client = login(revops)
    url = reverse("admin:crm_agents_workflow_from_template")
    page = client.get(url)
    assert page.status_code == 200
    assert "MEDDPICC qualification" in page.content.decode()

    response = client.post(
        url, {"workspace": workspace.pk, "provider": "salesforce", "template": "amount-close-date"}
    )

    workflow = Workflow.objects.get(workspace=workspace, provider="salesforce")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:crm_agents_workflow_change", args=[workflow.pk])
    assert [rule.field for rule in workflow.rules.order_by("order")] == ["amount", "close_date"]
    assert workflow.rules.first().read_dependencies == ["stage"]
    again = client.post(
        url, {"workspace": workspace.pk, "provider": "salesforce", "template": "amount-close-date"}
    )
    assert "already has the Deal amount and close date workflow" in again.content.decode()


@pytest.mark.django_db
def test_it_offers_templates_only_to_those_who_configure(login, rep, outsider, workspace):
    url = reverse("admin:crm_agents_workflow_from_template")
    assert login(rep).get(url).status_code == 403
    response = login(outsider).post(
        url, {"workspace": workspace.pk, "provider": "hubspot", "template": "next-steps"}
    )
    assert response.status_code == 200  # the form: a foreign workspace is not a choice
    assert "Select a valid choice" in response.content.decode()
    assert not Workflow.objects.exists()
