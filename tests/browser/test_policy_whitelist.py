"""A RevOps user chooses a real CRM property for the write whitelist in the stock two-pane
widget, and the guard then sends that write, which it refused before, on both CRMs."""

import pytest
from playwright.sync_api import expect

from governance import services
from governance.guard import Guard, WriteStatus
from governance.models import CrmProperty, ObjectScope, Policy
from integrations.connections import Purpose, resolve_connection
from integrations.crm.profiles import PROFILES
from integrations.crm.types import ObjectType, Provider
from integrations.models import ConnectionScope
from integrations.sandbox import seed
from integrations.services import connect_with_token
from tests.factories import PolicyFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def crm_url(settings, sandbox_server):
    settings.SANDBOX_URL = sandbox_server.url
    settings.HUBSPOT_API_URL = sandbox_server.url
    settings.SALESFORCE_LOGIN_URL = sandbox_server.url
    return sandbox_server.url


@pytest.mark.parametrize("provider", ["hubspot", "salesforce"])
def test_revops_adds_the_deal_amount_to_the_write_whitelist(
    provider, crm_url, live_server, page, admin_login, workspace, ws_admin, revops
):
    account = seed.create_account(provider, "Acme's CRM")
    crm_user = seed.add_user(account, "ops@seller.example", access="all")
    connection = connect_workspace(workspace, provider, crm_user, crm_url, ws_admin)
    services.do_refresh_properties(connection, acting_user=ws_admin)
    policy = PolicyFactory(
        workspace=workspace, provider=provider, deal_scope=ObjectScope.READ_WRITE
    )
    amount_name = PROFILES[Provider(provider)].native_field(ObjectType.DEAL, "amount")
    amount = CrmProperty.objects.get(connection=connection, object_type="deal", name=amount_name)
    deal = seed.add_record(account, ObjectType.DEAL, {"name": "Acme", "amount": 50000})
    assert _write_amount(workspace, provider, deal).status == WriteStatus.REFUSED

    admin_login(revops)
    page.goto(f"{live_server.url}/admin/governance/policy/{policy.pk}/change/")
    option = page.locator("#id_write_properties_from option", has_text=amount.choice_label())
    expect(option).to_have_count(1)
    option.click()
    page.click("#id_write_properties_add")
    expect(page.locator("#id_write_properties_to option")).to_have_text([amount.choice_label()])
    page.click("input[name=_save]")

    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    saved = Policy.objects.get(pk=policy.pk)
    assert saved.may_write("deal", amount_name)
    assert _write_amount(workspace, provider, deal).status == WriteStatus.SENT
    deal.refresh_from_db()
    assert float(deal.values[amount_name]) == 75000
    assert not saved.may_write(
        "deal", PROFILES[Provider(provider)].native_field(ObjectType.DEAL, "stage")
    )
    assert saved.history.latest().history_user == revops


def _write_amount(workspace, provider: str, deal):
    policy = Policy.objects.get(workspace=workspace, provider=provider)
    guard = Guard.for_resolved(resolve_connection(workspace, provider, Purpose.WORKFLOW), policy)
    amount = PROFILES[Provider(provider)].native_field(ObjectType.DEAL, "amount")
    return guard.update(ObjectType.DEAL, deal.crm_id, {amount: "75000"})


def connect_workspace(workspace, provider: str, crm_user, crm_url: str, acting_user):
    return connect_with_token(
        workspace,
        provider,
        ConnectionScope.WORKSPACE,
        access_token=seed.issue_token(crm_user).access_token,
        instance_url=crm_url,
        acting_user=acting_user,
    )
