"""The cast every test can use: two workspaces and people in each role.

``workspace`` is the tenant under test; ``outsider`` is an admin of ``other_workspace``
and must never see anything of ``workspace``.
"""

import pytest
from django.test import Client

from governance.models import Role
from tests.factories import TEST_PASSWORD, UserFactory, WorkspaceFactory, member_of


@pytest.fixture
def workspace():
    return WorkspaceFactory(name="Acme Sales", slug="acme-sales")


@pytest.fixture
def other_workspace():
    return WorkspaceFactory(name="Globex Sales", slug="globex-sales")


@pytest.fixture
def ws_admin(workspace):
    return member_of(workspace, Role.ADMIN, username="ada@acme.example")


@pytest.fixture
def revops(workspace):
    return member_of(workspace, Role.REVOPS, username="robin@acme.example")


@pytest.fixture
def rep(workspace):
    return member_of(workspace, Role.MEMBER, username="riley@acme.example")


@pytest.fixture
def outsider(other_workspace):
    return member_of(other_workspace, Role.ADMIN, username="oscar@globex.example")


@pytest.fixture
def superuser():
    return UserFactory(username="root@steward.example", is_superuser=True)


@pytest.fixture
def login():
    """``login(user)`` returns a test client logged in as ``user``."""

    def _login(user) -> Client:
        client = Client()
        assert client.login(username=user.username, password=TEST_PASSWORD)
        return client

    return _login


@pytest.fixture
def sandbox_server(transactional_db):
    """The sandbox CRMs served over HTTP on a free loopback port, as `runsandbox` serves them.

    Its data is committed (transactional_db) so the server's threads see it on PostgreSQL.
    """
    from integrations.sandbox.server import SandboxServerThread

    server = SandboxServerThread()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sandbox_urls(settings, sandbox_server) -> str:
    """Point the CRM clients, OAuth and the model at the served sandbox; its URL."""
    url = sandbox_server.url
    settings.SANDBOX_URL = url
    settings.HUBSPOT_API_URL = url
    settings.HUBSPOT_AUTHORIZE_URL = f"{url}/oauth/authorize"
    settings.SALESFORCE_LOGIN_URL = url
    settings.MODEL_BASE_URL = f"{url}/sandbox/openai/v1"
    return url
