"""Playwright driving Debian's Chromium against pytest-django's live server.

`playwright install` cannot download browsers here, so the tests launch the system
Chromium (CHROMIUM_PATH, default /usr/bin/chromium). Without it the browser tests skip
with that reason, except under CI (CI=true), where a missing browser is a failure.
A failing test leaves a full-page screenshot under test-results/screenshots/.
"""

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command

from governance.review_models import ChangeSet, SetStatus

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"

# Playwright's sync API runs an event loop in this thread; Django's ORM refuses to run
# inside one unless told the calls are safe (they are: the loop only drives the browser).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def browser() -> Iterator:
    if not os.path.exists(CHROMIUM):
        message = f"Chromium not found at {CHROMIUM}; install Debian's chromium package"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    context.close()


@pytest.fixture
def admin_login(live_server, page):
    """``admin_login(user)`` signs ``user`` in through the real login form."""
    from tests.factories import TEST_PASSWORD

    def _login(user) -> None:
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", TEST_PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_selector("#user-tools")

    return _login


@pytest.fixture
def demo(sandbox_urls) -> str:
    """The demo workspace connected to the demo CRMs, its 12 calls processed; the sandbox
    (CRMs and model) answers at the returned URL."""
    out = io.StringIO()
    call_command("demo_setup", stdout=out)
    call_command("sandbox_seed", stdout=out)  # demo_agent connects both CRMs
    call_command("demo_agent", stdout=out, stderr=out)
    assert ChangeSet.objects.filter(status=SetStatus.PENDING_REVIEW).exists(), out.getvalue()
    return sandbox_urls
