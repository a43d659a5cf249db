"""Connections against the sandbox CRMs: a workspace, sandbox users, and a way to connect."""

from dataclasses import dataclass
from datetime import timedelta

import pytest

from governance.models import Role
from integrations import services
from integrations.models import Connection, Credentials
from integrations.sandbox import seed
from integrations.sandbox.models import SandboxAccount, SandboxUser
from tests.factories import member_of


@dataclass
class CrmSetup:
    provider: str
    account: SandboxAccount
    admin: SandboxUser  # all records
    rep: SandboxUser  # owned only, team west
    teammate: SandboxUser  # team west
    stranger: SandboxUser  # team east
    base_url: str

    def connect(
        self,
        workspace,
        scope: str,
        crm_user: SandboxUser,
        *,
        user=None,
        acting_user=None,
        oauth_expires_in: timedelta | None = None,
    ) -> Connection:
        """Connect through the product's own service, with a token the sandbox issued: a rep
        by OAuth (their own user), the workspace by private-app token / session by default."""
        if user is not None and oauth_expires_in is None:
            oauth_expires_in = timedelta(minutes=30)
        if oauth_expires_in is None:
            token = seed.issue_token(crm_user)
            return services.connect_with_token(
                workspace,
                self.provider,
                scope,
                access_token=token.access_token,
                instance_url=self.base_url,
                acting_user=acting_user or user,
                user=user,
            )
        token = seed.issue_token(crm_user, expires_in=oauth_expires_in, refresh=True)
        expires = token.expires_at.isoformat() if token.expires_at else None
        return services.connect_with_oauth_grant(
            workspace,
            self.provider,
            scope,
            credentials=Credentials(token.access_token, token.refresh_token, expires),
            instance_url=self.base_url,
            acting_user=acting_user or user,
            user=user,
        )


@pytest.fixture
def crm_settings(settings, sandbox_urls):
    return settings


@pytest.fixture(params=["hubspot", "salesforce"])
def crm_setup(request, crm_settings) -> CrmSetup:
    provider = request.param
    account = seed.create_account(provider, f"{provider} for connections")
    return CrmSetup(
        provider=provider,
        account=account,
        admin=seed.add_user(account, "ops@seller.example", access="all"),
        rep=seed.add_user(account, "riley@seller.example", access="owned", team="west"),
        teammate=seed.add_user(account, "morgan@seller.example", access="team", team="west"),
        stranger=seed.add_user(account, "sam@seller.example", access="owned", team="east"),
        base_url=crm_settings.SANDBOX_URL,
    )


@pytest.fixture
def rep_user(workspace):
    return member_of(
        workspace, Role.MEMBER, username="riley@seller.example", email="riley@seller.example"
    )
