"""The OAuth connect flow in a real browser: CRM Steward -> the sandbox CRM's consent page
-> back to CRM Steward, for both CRMs."""

import pytest
from playwright.sync_api import expect

from integrations.models import Connection, ConnectionScope, ConnectionStatus
from integrations.sandbox import seed

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NAMES = {"hubspot": "HubSpot", "salesforce": "Salesforce"}


@pytest.mark.parametrize("provider", ["hubspot", "salesforce"])
def test_an_admin_connects_the_workspace_by_oauth(
    provider, sandbox_urls, live_server, page, admin_login, workspace, ws_admin
):
    account = seed.create_account(provider, "Acme's CRM")
    seed.add_user(account, "ops@seller.example", first_name="Avery", last_name="Ops")
    name = NAMES[provider]
    admin_login(ws_admin)

    page.click("#crm-connections-link")
    page.get_by_role("button", name=f"Connect {name} for the workspace").click()
    page.wait_for_url(f"{sandbox_urls}/**")
    expect(page.locator("body")).to_contain_text(f"Sandbox {name}")
    option = page.locator("select[name=user] option", has_text="ops@seller.example")
    page.select_option("select[name=user]", value=option.get_attribute("value"))
    page.get_by_role("button", name="Allow").click()

    page.wait_for_url(f"{live_server.url}/connections/")
    expect(page.locator(".messagelist")).to_contain_text("Connected")
    row = page.locator(f"tr.crm-{provider} td.workspace-connection")
    expect(row).to_contain_text("Active")
    expect(row).to_contain_text("ops@seller.example")
    connection = Connection.objects.get(workspace=workspace, provider=provider)
    assert connection.scope == ConnectionScope.WORKSPACE
    assert connection.status == ConnectionStatus.ACTIVE
    assert connection.crm_account_id == account.external_id
    assert connection.credentials.refresh_token
    assert connection.credentials.access_token not in page.content()


@pytest.mark.parametrize("provider", ["hubspot", "salesforce"])
def test_a_rep_who_denies_consent_is_told_and_nothing_is_stored(
    provider, sandbox_urls, live_server, page, admin_login, workspace, rep
):
    account = seed.create_account(provider, "Acme's CRM")
    seed.add_user(account, "riley@seller.example", first_name="Riley")
    admin_login(rep)

    page.goto(f"{live_server.url}/connections/")
    page.get_by_role("button", name=f"Connect {NAMES[provider]}", exact=True).click()
    page.wait_for_url(f"{sandbox_urls}/**")
    page.get_by_role("button", name="Deny").click()

    page.wait_for_url(f"{live_server.url}/connections/")
    expect(page.locator(".messagelist")).to_contain_text(f"{NAMES[provider]} was not connected")
    assert not Connection.objects.exists()
    # Reps cannot connect the workspace: they have no such button.
    expect(
        page.get_by_role("button", name=f"Connect {NAMES[provider]} for the workspace")
    ).to_have_count(0)
