"""The policy's change form: whitelists offer only the policy's own CRM properties."""

import pytest
from django.urls import reverse

from governance.models import ObjectScope
from tests.factories import ConnectionFactory, CrmPropertyFactory, PolicyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def policy(workspace):
    return PolicyFactory(workspace=workspace, provider="hubspot", deal_scope=ObjectScope.READ_WRITE)


@pytest.fixture
def hubspot(workspace):
    return ConnectionFactory(workspace=workspace, provider="hubspot")


def prop(connection, name: str, **fields):
    return CrmPropertyFactory(
        workspace=connection.workspace,
        connection=connection,
        provider=connection.provider,
        name=name,
        **fields,
    )


def change_url(policy) -> str:
    return reverse("admin:governance_policy_change", args=[policy.pk])


def test_it_offers_only_the_policys_workspace_and_crm(
    policy, hubspot, other_workspace, login, revops
):
    amount = prop(hubspot, "amount", label="Amount", type="number")
    computed = prop(hubspot, "days_to_close", label="Days to close", read_only=True)
    prop(ConnectionFactory(workspace=policy.workspace, provider="salesforce"), "Amount")
    prop(ConnectionFactory(workspace=other_workspace), "amount")

    form = login(revops).get(change_url(policy)).context["adminform"].form

    read = form.fields["read_properties"]
    assert set(read.queryset) == {amount, computed}
    assert read.label_from_instance(amount) == "deal · Amount (amount, number)"
    assert set(form.fields["write_properties"].queryset) == {amount}


def test_the_add_form_waits_for_the_workspace_and_crm(login, revops):
    form = login(revops).get(reverse("admin:governance_policy_add")).context["adminform"].form

    assert "read_properties" not in form.fields
    assert "write_properties" not in form.fields


def test_it_refuses_a_writable_property_that_is_not_readable(policy, hubspot, login, revops):
    amount = prop(hubspot, "amount", label="Amount", type="number")
    name = prop(hubspot, "dealname", label="Deal name")
    payload = {
        "company_scope": "read",
        "contact_scope": "read",
        "deal_scope": "read_write",
        "read_properties": [name.pk],
        "write_properties": [amount.pk],
        "review_default": "review",
        "review_overrides": '{"amount": "review"}',
        "hubspot_access_member": "owned",
        "hubspot_access_revops": "all",
        "hubspot_access_admin": "all",
    }

    response = login(revops).post(change_url(policy), payload)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["write_properties"] == [
        "deal · Amount (amount, number) is writable but not readable: add it to the read "
        "whitelist too (the agent reads a value before it overwrites it)."
    ]
    assert not policy.write_properties.exists()
