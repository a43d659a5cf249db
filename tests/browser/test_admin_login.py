"""A RevOps user signs in to the admin in a real browser and sees only their workspace."""

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_revops_sees_only_their_workspace(
    live_server, page, admin_login, workspace, other_workspace, revops, outsider
):
    admin_login(revops)

    assert "Acme Sales (RevOps)" in page.inner_text("#workspace-badge")
    page.locator("#content-main").get_by_role("link", name="Workspaces", exact=True).click()
    page.wait_for_url("**/admin/governance/workspace/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Acme Sales")
    expect(page.locator("#content")).not_to_contain_text("Globex Sales")

    response = page.goto(
        f"{live_server.url}/admin/governance/workspace/{other_workspace.pk}/change/"
    )
    assert response.status == 404


def test_revops_cannot_reach_platform_accounts(live_server, page, admin_login, revops):
    admin_login(revops)

    expect(page.locator("#content-main")).not_to_contain_text("Users")
    response = page.goto(f"{live_server.url}/admin/auth/user/")
    assert response.status == 403


def test_a_wrong_password_is_refused(live_server, page, revops):
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", revops.username)
    page.fill("#id_password", "not-the-password")
    page.click("input[type=submit]")

    expect(page.locator(".errornote")).to_contain_text("Please enter the correct")
