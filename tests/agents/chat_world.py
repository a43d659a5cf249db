"""A rep in the agent's world (tests/agents/conftest.py): their own CRM user with owned-only
access, their own deal, and their own connection to the sandbox CRM; the world's deal
belongs to another CRM user. Chat talks to the rules model unless a test scripts it."""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings

from crm_agents.chat.services import do_post_chat_message, do_start_chat_session
from crm_agents.chat_models import ChatMessage, ChatSession
from governance.models import Role
from integrations import services
from integrations.models import Connection, ConnectionScope, Credentials
from integrations.sandbox import seed
from integrations.sandbox.models import SandboxAccount, SandboxRecord, SandboxRequest
from tests.factories import member_of

RILEY_DEAL = "Riley Freight - Route planner"
OPEN_STAGE = {"hubspot": "qualifiedtobuy", "salesforce": "Qualification"}
CLOSED_STAGE = {"hubspot": "closedwon", "salesforce": "Closed Won"}


@dataclass
class ChatWorld:
    world: object
    rep: object  # the CRM Steward user
    rep_connection: Connection | None
    own_deal: SandboxRecord

    @property
    def provider(self) -> str:
        return self.world.provider

    def session(self) -> ChatSession:
        return do_start_chat_session(self.world.workspace, self.rep, self.provider)

    def say(self, session: ChatSession, text: str) -> ChatMessage:
        return do_post_chat_message(session, text, user=self.rep)

    def scripted(self, session: ChatSession, *answers: dict) -> SandboxAccount:
        """Switch the model to scripted mode with ``answers`` for this session, in order
        (the last one repeats once the others are used)."""
        account, settings.MODEL_API_KEY = seed.create_model_account("scripted")
        for position, answer in enumerate(answers):
            seed.script_answer(account, session.script_key, "chat", answer, position=position)
        return account

    def written(self) -> dict:
        """Every value the sandbox CRM wrote, by record id."""
        merged: dict = {}
        rows = SandboxRequest.objects.filter(account=self.world.account).values_list(
            "written", flat=True
        )
        for written in rows:
            for record_id, values in written.items():
                merged.setdefault(record_id, {}).update(values)
        return merged


def make_chat_world(world, *, own_connection: bool = True) -> ChatWorld:
    rep_crm = seed.add_user(world.account, "riley@seller.example", access="owned", team="west")
    own_deal = seed.add_record(
        world.account,
        "deal",
        {
            "name": RILEY_DEAL,
            "amount": 12_000,
            "close_date": "2026-12-15",
            "stage": OPEN_STAGE[world.provider],
        },
        owner=rep_crm,
    )
    rep = member_of(
        world.workspace,
        Role.MEMBER,
        username="riley",
        email="riley@seller.example",
        first_name="Riley",
        last_name="Rep",
    )
    connection = connect_rep(world, rep_crm, rep) if own_connection else None
    return ChatWorld(world, rep, connection, own_deal)


def connect_rep(world, crm_user, user) -> Connection:
    """The rep's own connection, by OAuth as a rep connects (HubSpot then knows whose it is,
    which a private-app token does not say)."""
    token = seed.issue_token(crm_user, expires_in=timedelta(hours=1), refresh=True)
    return services.connect_with_oauth_grant(
        world.workspace,
        world.provider,
        ConnectionScope.USER,
        credentials=Credentials(
            token.access_token, token.refresh_token, token.expires_at.isoformat()
        ),
        instance_url=world.connection.api_base_url,
        acting_user=user,
        user=user,
    )
