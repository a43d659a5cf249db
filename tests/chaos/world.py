"""The world the chaos run works in: both sandbox CRMs with one company, buyer and open deal
per call, a workspace connected to both, a policy that applies the next step at once and
sends amount and close date to review, one workflow per CRM, an API key, and the
rule-based model. Calls are worded the way the rules model reads them."""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.conf import settings

from crm_agents.models import FieldRule, Workflow
from governance import services as governance_services
from governance.api_keys import do_create_api_key
from governance.models import CrmProperty, ObjectScope, Policy
from integrations import services
from integrations.crm.profiles import PROFILES
from integrations.sandbox import seed
from integrations.sandbox.models import SandboxAccount, SandboxRecord, SandboxUser

PROVIDERS = ("hubspot", "salesforce")
FIELDS = ("amount", "close_date", "next_step")
AUTO_FIELDS = ("next_step",)  # the others (amount, close date) wait for review
STAGES = {"hubspot": "qualifiedtobuy", "salesforce": "Qualification"}
INSTRUCTIONS = {
    "amount": "The annual contract value the buyer agreed to, in dollars",
    "close_date": "The date the buyer expects to sign",
    "next_step": "The concrete next step both sides agreed on",
}


@dataclass
class Crm:
    provider: str
    account: SandboxAccount
    agent: SandboxUser  # the workspace connection acts as this CRM user
    human: SandboxUser  # a colleague who edits records by hand, through the API
    human_token: str
    deals: dict[int, SandboxRecord] = field(default_factory=dict)  # call number -> deal

    def native(self, canonical: str) -> str:
        return PROFILES[self.provider].native_field("deal", canonical)


@dataclass
class World:
    workspace: object
    api_key: str
    model_key: str
    model_account: SandboxAccount
    crms: dict[str, Crm]

    @property
    def accounts(self) -> list[SandboxAccount]:
        return [crm.account for crm in self.crms.values()]


def point_settings_at(target, sandbox_url: str) -> None:
    """Make this process's CRM clients, OAuth and model use the served sandbox."""
    target.SANDBOX_URL = sandbox_url
    target.HUBSPOT_API_URL = sandbox_url
    target.HUBSPOT_AUTHORIZE_URL = f"{sandbox_url}/oauth/authorize"
    target.SALESFORCE_LOGIN_URL = sandbox_url
    target.MODEL_BASE_URL = f"{sandbox_url}/sandbox/openai/v1"


def build_world(calls: int, sandbox_url: str, providers=PROVIDERS) -> World:
    model_account, model_key = seed.create_model_account("rules", name="chaos model")
    workspace = governance_services.do_create_workspace("Chaos", slug="chaos", acting_user=None)
    admin, _ = governance_services.get_or_create_user(
        "chaos-admin@example.com", password="chaos-only-password-1"
    )
    crms = {}
    for provider in providers:
        crm = _build_crm(provider, calls)
        _connect(workspace, crm, admin, sandbox_url)
        crms[provider] = crm
    issued = do_create_api_key(workspace, "chaos driver", acting_user=None)
    return World(workspace, issued.secret, model_key, model_account, crms)


def _build_crm(provider: str, calls: int) -> Crm:
    account = seed.create_account(provider, f"chaos {provider}")
    agent = seed.add_user(account, "ops@seller.example")
    human = seed.add_user(account, "human@seller.example")
    crm = Crm(provider, account, agent, human, seed.issue_token(human).access_token)
    for i in range(calls):
        company = seed.add_record(
            account, "company", {"name": f"Chaos Co {i}", "domain": f"co{i}.example"}, owner=agent
        )
        contact = seed.add_record(
            account,
            "contact",
            {"first_name": "Buyer", "last_name": f"N{i}", "email": f"buyer{i}@co{i}.example"},
            owner=agent,
            associations=[company],
        )
        crm.deals[i] = seed.add_record(
            account,
            "deal",
            {
                "name": f"Co {i} Platform",
                "amount": 10_000,
                "stage": STAGES[provider],
                "close_date": "2027-03-31",
            },
            owner=agent,
            associations=[company, contact],
        )
    return crm


def _connect(workspace, crm: Crm, admin, sandbox_url: str) -> None:
    connection = services.connect_with_token(
        workspace,
        crm.provider,
        "workspace",
        access_token=seed.issue_token(crm.agent).access_token,
        instance_url=sandbox_url,
        acting_user=admin,
    )
    governance_services.do_refresh_properties(connection, acting_user=None)
    policy = Policy.objects.create(
        workspace=workspace,
        provider=crm.provider,
        deal_scope=ObjectScope.READ_WRITE,
        review_default="review",
        review_overrides={"amount": "review", "close_date": "review", "next_step": "auto"},
    )
    policy.write_properties.set(
        CrmProperty.objects.filter(
            connection=connection,
            object_type="deal",
            name__in=[crm.native(name) for name in FIELDS],
        )
    )
    workflow = Workflow.objects.create(
        workspace=workspace, provider=crm.provider, key=f"hygiene-{crm.provider}", name="Hygiene"
    )
    for order, name in enumerate(FIELDS):
        FieldRule.objects.create(
            workspace=workspace,
            workflow=workflow,
            field=name,
            instruction=INSTRUCTIONS[name],
            order=order,
        )


def call_payload(i: int) -> dict:
    """Call ``i``: buyer ``i`` agrees an amount, a sign date and a next step."""
    amount = 20_000 + 500 * i
    sign = date(2027, 1, 1) + timedelta(days=i % 200)
    return {
        "external_id": f"chaos-{i}",
        "title": f"Co {i} x Seller: pricing",
        "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": 1800,
        "owner": "riley@seller.example",
        "attendees": [
            {"name": "Riley Rep", "email": "riley@seller.example", "internal": True},
            {"name": f"Buyer N{i}", "email": f"buyer{i}@co{i}.example"},
        ],
        "transcript": [
            {"speaker": "Riley Rep", "start": 3.0, "text": "Thanks for the time today."},
            {
                "speaker": f"Buyer N{i}",
                "start": 9.5,
                "text": f"We looked at it with finance and we can work with ${amount:,} a year.",
            },
            {
                "speaker": f"Buyer N{i}",
                "start": 21.0,
                "text": f"We would like to sign by {sign.strftime('%B')} {sign.day}, {sign.year}.",
            },
            {
                "speaker": "Riley Rep",
                "start": 33.0,
                "text": f"Next step: I will send order form {i} by Friday.",
            },
        ],
    }


def secrets_env() -> dict[str, str]:
    """What every process must share with this one to read and extend what it stored
    (credentials are encrypted, and the audit chain signed, with these keys)."""
    shared = {
        "SECRET_KEY": settings.SECRET_KEY,
        "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
    }
    if getattr(settings, "AUDIT_KEYS", None):  # the audit chain's HMAC keys
        shared["AUDIT_KEYS"] = ",".join(settings.AUDIT_KEYS)
    return shared
