"""A workspace connected to a sandbox CRM with one company, contact and open deal, a policy
that lets the agent write the deal's amount, close date and next step without review, and
the sandbox's rule-based model: the pipeline end to end, through the real clients."""

from dataclasses import dataclass

import pytest
from django.core.cache import cache

from crm_agents.models import FieldRule, Workflow
from governance.models import CrmProperty, ObjectScope, Policy, Role
from governance.services import do_refresh_properties
from integrations import services
from integrations.crm.profiles import PROFILES
from integrations.sandbox import seed
from integrations.sandbox.models import SandboxAccount, SandboxRecord
from tests.factories import member_of

STAGES = {"hubspot": "qualifiedtobuy", "salesforce": "Qualification"}


@dataclass
class AgentWorld:
    provider: str
    workspace: object
    account: SandboxAccount
    connection: object
    policy: Policy
    workflow: Workflow
    deal: SandboxRecord
    model_account: SandboxAccount

    def native(self, field: str) -> str:
        return PROFILES[self.provider].native_field("deal", field)

    def deal_value(self, field: str):
        from integrations.crm.clients import build_client

        client = build_client(
            self.provider,
            base_url=self.connection.api_base_url,
            access_token=self.connection.credentials.access_token,
        )
        record = client.get("deal", self.deal.crm_id, [self.native(field)])
        return record.properties.get(self.native(field))


@pytest.fixture(params=["hubspot", "salesforce"])
def world(request, settings, sandbox_urls, workspace) -> AgentWorld:
    cache.clear()  # stage and owner metadata are cached per connection id
    provider = request.param
    url = sandbox_urls
    model_account, settings.MODEL_API_KEY = seed.create_model_account("rules")

    account = seed.create_account(provider, f"{provider} for the agent")
    admin = seed.add_user(account, "ops@seller.example", access="all")
    company = seed.add_record(
        account, "company", {"name": "Acme Logistics", "domain": "acme.example"}, owner=admin
    )
    jane = seed.add_record(
        account,
        "contact",
        {"first_name": "Jane", "last_name": "Doe", "email": "jane@acme.example"},
        owner=admin,
        associations=[company],
    )
    deal = seed.add_record(
        account,
        "deal",
        {
            "name": "Acme Logistics - Fleet platform",
            "amount": 50_000,
            "close_date": "2026-12-31",
            "stage": STAGES[provider],
        },
        owner=admin,
        associations=[company, jane],
    )
    acting = member_of(workspace, Role.ADMIN, username="ops", email="ops@demo.example")
    connection = services.connect_with_token(
        workspace,
        provider,
        "workspace",
        access_token=seed.issue_token(admin).access_token,
        instance_url=url,
        acting_user=acting,
    )
    do_refresh_properties(connection, acting_user=None)
    profile = PROFILES[provider]
    policy = Policy.objects.create(
        workspace=workspace,
        provider=provider,
        deal_scope=ObjectScope.READ_WRITE,
        review_default="auto",
        review_overrides={"amount": "auto", "close_date": "auto"},
    )
    policy.write_properties.set(
        CrmProperty.objects.filter(
            connection=connection,
            object_type="deal",
            name__in=[
                profile.native_field("deal", f) for f in ("amount", "close_date", "next_step")
            ],
        )
    )
    workflow = Workflow.objects.create(
        workspace=workspace, provider=provider, key="hygiene", name="Deal hygiene"
    )
    for order, (field, instruction) in enumerate(
        [
            ("amount", "The annual contract value the buyer agreed to, in dollars"),
            ("close_date", "The date the buyer expects to sign"),
            ("next_step", "The concrete next step both sides agreed on"),
        ]
    ):
        FieldRule.objects.create(
            workspace=workspace,
            workflow=workflow,
            field=field,
            instruction=instruction,
            order=order,
        )
    return AgentWorld(
        provider, workspace, account, connection, policy, workflow, deal, model_account
    )


def pricing_call(external_id: str = "mtg-1", **overrides) -> dict:
    call = {
        "external_id": external_id,
        "title": "Acme Logistics x Seller - pricing review",
        "started_at": "2026-11-21T15:00:00Z",
        "duration_s": 1740,
        "owner": "riley@seller.example",
        "attendees": [
            {"name": "Riley Rep", "email": "riley@seller.example", "internal": True},
            {"name": "Jane Doe", "email": "jane@acme.example"},
        ],
        "transcript": [
            {
                "speaker": "Jane Doe",
                "start": 12.5,
                "text": "We looked at the proposal with finance and the number we can work "
                "with is $84,000 a year.",
            },
            {
                "speaker": "Jane Doe",
                "start": 40.2,
                "text": "Our legal team needs the MSA, and we would like to sign by "
                "January 15, 2027.",
            },
            {
                "speaker": "Riley Rep",
                "start": 55.8,
                "text": "Next step then: I will send the MSA and order form by Friday November 27.",
            },
        ],
    }
    call.update(overrides)
    return call
