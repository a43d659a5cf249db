"""The guard applies the policy to every read and write, on both CRMs, over HTTP.

What was or was not sent is read from the sandbox's request log; every refusal must have
an audit event.
"""

import pytest

from audit.models import AuditEvent
from governance.guard import Guard, RefusalCode, Refused, WriteStatus
from governance.models import CrmProperty, ObjectScope, Policy
from governance.prompt import TOGGLES, policy_prompt_section
from governance.services import do_refresh_properties
from integrations.connections import Purpose, resolve_connection
from integrations.crm.types import ObjectType, Operator, SearchFilter, SearchQuery
from integrations.models import ConnectionScope
from integrations.sandbox import seed
from integrations.sandbox.models import SandboxRequest

DEAL, COMPANY, CONTACT = ObjectType.DEAL, ObjectType.COMPANY, ObjectType.CONTACT
STAGES = {"hubspot": ("qualifiedtobuy", "closedwon"), "salesforce": ("Qualification", "Closed Won")}


class World:
    def __init__(self, crm_setup, workspace, ws_admin) -> None:
        self.setup = crm_setup
        self.workspace = workspace
        self.connection = crm_setup.connect(
            workspace, ConnectionScope.WORKSPACE, crm_setup.admin, acting_user=ws_admin
        )
        do_refresh_properties(self.connection, acting_user=ws_admin)
        self.policy = Policy.objects.create(
            workspace=workspace, provider=crm_setup.provider, deal_scope=ObjectScope.READ_WRITE
        )
        self.profile = seed.profile_of(crm_setup.account)
        open_stage, closed_stage = STAGES[crm_setup.provider]
        self.acme = seed.add_record(crm_setup.account, COMPANY, {"name": "Acme"})
        self.deal = seed.add_record(
            crm_setup.account,
            DEAL,
            {"name": "Acme platform", "amount": 50000, "stage": open_stage},
            owner=crm_setup.rep,
            associations=[self.acme],
        )
        self.won = seed.add_record(
            crm_setup.account,
            DEAL,
            {"name": "Acme won", "amount": 9000, "stage": closed_stage},
            owner=crm_setup.rep,
        )
        self.closed_stage = closed_stage

    def f(self, canonical: str, object_type: ObjectType = DEAL) -> str:
        return self.profile.native_field(object_type, canonical)

    def allow(self, *canonical: str, read: tuple[str, ...] = ()) -> None:
        props = CrmProperty.objects.filter(connection=self.connection, object_type="deal")
        self.policy.write_properties.set(props.filter(name__in=[self.f(c) for c in canonical]))
        self.policy.read_properties.set(props.filter(name__in=[self.f(c) for c in read]))

    def guard(self) -> Guard:
        policy = Policy.objects.prefetch_related("read_properties", "write_properties").get(
            pk=self.policy.pk
        )
        resolved = resolve_connection(self.workspace, self.setup.provider, Purpose.WORKFLOW)
        return Guard.for_resolved(resolved, policy)

    def writes(self) -> dict:
        merged: dict = {}
        for written in SandboxRequest.objects.filter(account=self.setup.account).values_list(
            "written", flat=True
        ):
            for record_id, values in written.items():
                merged.setdefault(record_id, {}).update(values)
        return merged

    def denied(self) -> list[AuditEvent]:
        return list(AuditEvent.objects.filter(workspace=self.workspace, outcome="denied"))


@pytest.fixture
def world(crm_setup, workspace, ws_admin) -> World:
    return World(crm_setup, workspace, ws_admin)


def test_reads_never_return_what_the_policy_hides(world):
    world.allow(read=("name",))
    guard = world.guard()

    record = guard.get(DEAL, world.deal.crm_id, [world.f("name"), world.f("amount")])
    page = guard.search(SearchQuery(DEAL, properties=(world.f("name"), world.f("amount"))))
    specs = {spec.name for spec in guard.describe(DEAL)}

    assert set(record.properties) <= {world.f("name")}
    assert all(set(r.properties) <= {world.f("name")} for r in page.records)
    assert specs == {world.f("name")}


def test_an_object_out_of_scope_is_refused_and_audited(world):
    world.policy.contact_scope = ObjectScope.NONE
    world.policy.save()

    with pytest.raises(Refused) as caught:
        world.guard().search(SearchQuery(CONTACT))

    assert caught.value.refusal.code == RefusalCode.OBJECT_OUT_OF_SCOPE
    assert [event.action for event in world.denied()] == ["crm.read.denied"]


def test_associations_many_checks_both_objects_and_audits_one_read(world):
    found = world.guard().associations_many(COMPANY, [world.acme.crm_id], DEAL)
    world.policy.contact_scope = ObjectScope.NONE
    world.policy.save()

    with pytest.raises(Refused) as caught:
        world.guard().associations_many(COMPANY, [world.acme.crm_id], CONTACT)

    assert found == {world.acme.crm_id: [world.deal.crm_id]}
    read = AuditEvent.objects.get(workspace=world.workspace, action="crm.read.associations")
    assert read.context["to"] == "deal"
    assert read.context["ids"] == [[world.acme.crm_id, world.deal.crm_id]]
    assert caught.value.refusal.code == RefusalCode.OBJECT_OUT_OF_SCOPE
    assert [event.action for event in world.denied()] == ["crm.read.denied"]


def test_searching_by_a_hidden_property_is_refused(world):
    world.allow(read=("name",))
    query = SearchQuery(DEAL, filter_groups=((SearchFilter(world.f("amount"), Operator.GT, "1"),),))

    with pytest.raises(Refused, match="cannot search by"):
        world.guard().search(query)


def test_only_whitelisted_properties_are_written(world):
    world.allow("next_step")

    outcome = world.guard().update(
        DEAL, world.deal.crm_id, {world.f("next_step"): "Send the MSA", world.f("amount"): "1"}
    )

    assert outcome.status == WriteStatus.SENT
    assert outcome.sent == {world.f("next_step"): "Send the MSA"}
    assert [(r.code, r.field) for r in outcome.refusals] == [
        (RefusalCode.NOT_WRITABLE, world.f("amount"))
    ]
    assert world.writes() == {world.deal.crm_id: {world.f("next_step"): "Send the MSA"}}
    assert [(e.field, e.reason) for e in world.denied()] == [
        (world.f("amount"), f"{world.f('amount')} is not in the write whitelist")
    ]


def _new_deal(world, name: str) -> dict:
    return {
        world.f("name"): name,
        world.f("stage"): STAGES[world.setup.provider][0],
        world.f("close_date"): "2026-12-31",
    }


def _attempt(world, toggle: str):
    guard = world.guard()
    if toggle == "allow_create":
        return guard.create(DEAL, _new_deal(world, "New deal"))
    if toggle == "allow_stage_change":
        return guard.update(DEAL, world.deal.crm_id, {world.f("stage"): world.closed_stage})
    if toggle == "allow_update_closed":
        return guard.update(DEAL, world.won.crm_id, {world.f("next_step"): "Upsell"})
    if toggle == "allow_clear_values":
        return guard.update(DEAL, world.deal.crm_id, {world.f("next_step"): None})
    return guard.create(
        DEAL, _new_deal(world, "Linked"), associations={COMPANY: [world.acme.crm_id]}
    )


@pytest.mark.parametrize("toggle", [attribute for attribute, _ in TOGGLES])
@pytest.mark.parametrize("allowed", [False, True])
def test_each_toggle_is_enforced_and_told_to_the_model_the_same_way(world, toggle, allowed):
    world.allow("name", "stage", "next_step", "close_date")
    if toggle == "allow_create_associations":
        world.policy.allow_create = True
    setattr(world.policy, toggle, allowed)
    world.policy.save()
    action = dict(TOGGLES)[toggle]

    outcome = _attempt(world, toggle)
    prompt = policy_prompt_section(world.guard().policy)

    assert (outcome.status == WriteStatus.SENT) is allowed, outcome
    assert f"You {'may' if allowed else 'may NOT'} {action}." in prompt
    if not allowed:
        assert world.writes() == {}
        assert world.denied(), "a refusal without an audit event"


def test_dry_run_sends_nothing_and_says_what_it_would_have_sent(world):
    world.allow("next_step")
    world.policy.dry_run = True
    world.policy.save()

    outcome = world.guard().update(DEAL, world.deal.crm_id, {world.f("next_step"): "Call"})

    assert outcome.status == WriteStatus.DRY_RUN
    assert outcome.sent == {world.f("next_step"): "Call"}
    assert world.writes() == {}
    assert AuditEvent.objects.filter(outcome="dry_run").count() == 1
    assert "DRY RUN" in policy_prompt_section(world.policy)


def test_pause_sends_nothing_at_all(world):
    world.allow("next_step")
    world.policy.paused = True
    world.policy.save()
    before = SandboxRequest.objects.count()

    outcome = world.guard().update(DEAL, world.deal.crm_id, {world.f("next_step"): "Call"})

    assert outcome.status == WriteStatus.REFUSED
    assert outcome.refusals[0].code == RefusalCode.PAUSED
    assert SandboxRequest.objects.count() == before
    assert world.denied()


def test_a_record_outside_the_reps_access_is_a_refusal_not_a_write(
    world, crm_setup, workspace, rep_user
):
    world.allow("next_step")
    other = seed.add_record(crm_setup.account, DEAL, {"name": "Sam's"}, owner=crm_setup.stranger)
    crm_setup.connect(workspace, ConnectionScope.USER, crm_setup.rep, user=rep_user)
    resolved = resolve_connection(workspace, crm_setup.provider, Purpose.CHAT, rep_user)
    guard = Guard.for_resolved(resolved, world.policy)

    outcome = guard.update(DEAL, other.crm_id, {world.f("next_step"): "Hijack"})

    assert outcome.status == WriteStatus.REFUSED
    assert outcome.refusals[-1].code == RefusalCode.RECORD_ACCESS
    assert other.crm_id not in world.writes()
    assert world.denied()
