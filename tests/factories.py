"""Factories for every model, in one place.

tests/test_tenant_isolation.py creates a row of every admin-registered model through the
factory named ``<Model>Factory`` here, passing ``workspace=``; a new tenant model needs a
factory that accepts it.
"""

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from factory.django import DjangoModelFactory

from audit.models import ActorKind, AuditEvent, Outcome
from audit.services import record_event
from crm_agents.models import AgentRun, Call, CallMatch, FieldRule, RunStatus, Workflow
from governance.api_auth import ApiKey, ApiToken
from governance.api_keys import do_create_api_key, do_create_api_token
from governance.models import CrmProperty, CrmProvider, Membership, Policy, Role, Workspace
from governance.review_models import ChangeProposal, ChangeSet, ProposalStatus, SetStatus
from integrations.models import AuthKind, Connection, ConnectionScope, Credentials, CrmCall

TEST_PASSWORD = "correct-horse-battery-staple"


class WorkspaceFactory(DjangoModelFactory):
    class Meta:
        model = Workspace
        django_get_or_create = ["slug"]

    name = factory.Sequence(lambda n: f"Workspace {n}")
    slug = factory.Sequence(lambda n: f"workspace-{n}")


class UserFactory(DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}@seller.example")
    email = factory.SelfAttribute("username")
    is_staff = True

    @factory.post_generation
    def password(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        self.set_password(extracted or TEST_PASSWORD)
        if create:
            self.save(update_fields=["password"])


def member_of(workspace: Workspace, role: Role, **user_fields: object):
    """A staff user holding ``role`` in ``workspace``."""
    user = UserFactory(**user_fields)
    MembershipFactory(workspace=workspace, user=user, role=role)
    return user


class MembershipFactory(DjangoModelFactory):
    class Meta:
        model = Membership

    workspace = factory.SubFactory(WorkspaceFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER


class GroupFactory(DjangoModelFactory):
    class Meta:
        model = Group

    name = factory.Sequence(lambda n: f"group {n}")


class PolicyFactory(DjangoModelFactory):
    class Meta:
        model = Policy

    workspace = factory.SubFactory(WorkspaceFactory)
    provider = CrmProvider.HUBSPOT


class ConnectionFactory(DjangoModelFactory):
    """A workspace connection with a (fake) private-app token; pass ``token=`` to choose it."""

    class Meta:
        model = Connection
        skip_postgeneration_save = True

    workspace = factory.SubFactory(WorkspaceFactory)
    provider = CrmProvider.HUBSPOT
    scope = ConnectionScope.WORKSPACE
    auth_kind = AuthKind.PRIVATE_APP
    crm_account_id = "12345678"
    api_base_url = "http://127.0.0.1:8100"
    crm_user_id = "1000001"
    crm_user_email = factory.Sequence(lambda n: f"crm-user{n}@seller.example")

    @factory.post_generation
    def token(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        self.set_credentials(Credentials(extracted or "pat-na1-test-token"))
        if create:
            self.save()


class CrmCallFactory(DjangoModelFactory):
    class Meta:
        model = CrmCall

    workspace = factory.SubFactory(WorkspaceFactory)
    connection = factory.SubFactory(
        ConnectionFactory, workspace=factory.SelfAttribute("..workspace")
    )
    connection_label = "HubSpot (workspace)"
    provider = CrmProvider.HUBSPOT
    scope = ConnectionScope.WORKSPACE
    purpose = "workflow"
    operation = "search"
    outcome = "ok"


class CrmPropertyFactory(DjangoModelFactory):
    """A deal property cached from the workspace's HubSpot connection."""

    class Meta:
        model = CrmProperty

    workspace = factory.SubFactory(WorkspaceFactory)
    connection = factory.SubFactory(
        ConnectionFactory,
        workspace=factory.SelfAttribute("..workspace"),
        provider=factory.SelfAttribute("..provider"),
    )
    provider = CrmProvider.HUBSPOT
    object_type = "deal"
    name = factory.Sequence(lambda n: f"property_{n}")
    label = factory.LazyAttribute(lambda prop: prop.name.replace("_", " ").capitalize())
    type = "string"
    last_seen_at = factory.LazyFunction(timezone.now)


class AuditEventFactory(DjangoModelFactory):
    """An event appended through the real chain (audit.services.record_event)."""

    class Meta:
        model = AuditEvent

    workspace = factory.SubFactory(WorkspaceFactory)
    action = "crm.read"
    outcome = Outcome.OK
    actor_kind = ActorKind.AGENT
    crm = CrmProvider.HUBSPOT
    object_type = "deal"
    record_id = factory.Sequence(lambda n: str(9000 + n))

    @classmethod
    def _create(cls, model_class: type[AuditEvent], workspace, **kwargs: object) -> AuditEvent:
        return record_event(workspace, **kwargs)


class CallFactory(DjangoModelFactory):
    class Meta:
        model = Call

    workspace = factory.SubFactory(WorkspaceFactory)
    external_id = factory.Sequence(lambda n: f"mtg-{n:05d}")
    title = factory.Sequence(lambda n: f"Customer call {n}")
    started_at = factory.LazyFunction(timezone.now)
    duration_s = 1200
    owner_email = "riley@seller.example"
    attendees = factory.LazyFunction(
        lambda: [
            {"name": "Riley Rep", "email": "riley@seller.example", "internal": True},
            {"name": "Jane Doe", "email": "jane@acme.example", "internal": False},
        ]
    )
    transcript = factory.LazyFunction(
        lambda: [{"speaker": "Jane Doe", "start": 3.0, "text": "We can commit to $50,000."}]
    )


class WorkflowFactory(DjangoModelFactory):
    class Meta:
        model = Workflow

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"Deal hygiene {n}")
    key = factory.Sequence(lambda n: f"hygiene-{n}")
    provider = CrmProvider.HUBSPOT
    object_type = "deal"


class FieldRuleFactory(DjangoModelFactory):
    class Meta:
        model = FieldRule

    workspace = factory.SubFactory(WorkspaceFactory)
    workflow = factory.SubFactory(WorkflowFactory, workspace=factory.SelfAttribute("..workspace"))
    field = factory.Sequence(lambda n: f"field_{n}")
    instruction = "The next step both sides agreed on"


class AgentRunFactory(DjangoModelFactory):
    class Meta:
        model = AgentRun

    workspace = factory.SubFactory(WorkspaceFactory)
    call = factory.SubFactory(CallFactory, workspace=factory.SelfAttribute("..workspace"))
    workflow = factory.SubFactory(WorkflowFactory, workspace=factory.SelfAttribute("..workspace"))
    workflow_label = factory.LazyAttribute(lambda run: run.workflow.name)
    provider = CrmProvider.HUBSPOT
    status = RunStatus.PENDING_REVIEW


class CallMatchFactory(DjangoModelFactory):
    class Meta:
        model = CallMatch

    workspace = factory.SubFactory(WorkspaceFactory)
    call = factory.SubFactory(CallFactory, workspace=factory.SelfAttribute("..workspace"))
    provider = CrmProvider.HUBSPOT
    object_type = "deal"
    winner_id = "10001"
    winner_name = "Acme platform"
    reason = "the only candidate: Acme platform"
    confidence = 0.95
    matched_at = factory.LazyFunction(timezone.now)


class ChangeSetFactory(DjangoModelFactory):
    class Meta:
        model = ChangeSet

    workspace = factory.SubFactory(WorkspaceFactory)
    run = factory.SubFactory(AgentRunFactory, workspace=factory.SelfAttribute("..workspace"))
    provider = CrmProvider.HUBSPOT
    object_type = "deal"
    record_id = factory.Sequence(lambda n: str(5000 + n))
    record_name = factory.Sequence(lambda n: f"Acme deal {n}")
    call_title = "Acme pricing call"
    workflow_label = "Deal hygiene"
    status = SetStatus.PENDING_REVIEW
    read_at = factory.LazyFunction(timezone.now)


class ChangeProposalFactory(DjangoModelFactory):
    class Meta:
        model = ChangeProposal

    workspace = factory.SubFactory(WorkspaceFactory)
    change_set = factory.SubFactory(
        ChangeSetFactory, workspace=factory.SelfAttribute("..workspace")
    )
    field = "amount"
    native_field = "amount"
    proposed_value = "75000"
    current_value = "50000"
    evidence = "We can commit to $75,000."
    confidence = 0.9
    write_mode = "overwrite"
    status = ProposalStatus.PENDING


class ApiKeyFactory(DjangoModelFactory):
    """A key issued through the real service; its clear secret is on ``.secret``."""

    class Meta:
        model = ApiKey

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"Integration {n}")
    created_by = None

    @classmethod
    def _create(cls, model_class: type[ApiKey], workspace, name, created_by) -> ApiKey:
        issued = do_create_api_key(workspace, name, acting_user=created_by)
        issued.credential.secret = issued.secret
        return issued.credential


class ApiTokenFactory(DjangoModelFactory):
    """A person's token issued through the real service; its clear secret is on ``.secret``."""

    class Meta:
        model = ApiToken

    user = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Script {n}")

    @classmethod
    def _create(cls, model_class: type[ApiToken], user, name) -> ApiToken:
        issued = do_create_api_token(user, name)
        issued.credential.secret = issued.secret
        return issued.credential
