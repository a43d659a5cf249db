"""Property test of the guard: for random policies, connection access and proposed reads
and writes, nothing outside the policy is ever returned or sent to the sandbox (checked
against its request log), and every refusal has an audit event. Both CRMs."""

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from governance.guard import Guard, Refused, WriteStatus
from governance.models import CrmProperty, ObjectScope, Policy
from integrations.connections import Purpose, resolve_connection
from integrations.crm import errors
from integrations.crm.types import ObjectType, SearchQuery
from integrations.models import ConnectionScope
from integrations.sandbox import seed
from integrations.sandbox.models import SandboxRequest
from tests.governance.test_guard import STAGES, World

DEAL, COMPANY, CONTACT = ObjectType.DEAL, ObjectType.COMPANY, ObjectType.CONTACT
FIELDS = ["name", "amount", "stage", "close_date", "next_step", "description"]
UNKNOWN = "no_such_field_x"
TOGGLES = [
    "allow_create",
    "allow_stage_change",
    "allow_update_closed",
    "allow_clear_values",
    "allow_create_associations",
]
SCOPES = [ObjectScope.NONE, ObjectScope.READ, ObjectScope.READ_WRITE]

policies = st.fixed_dictionaries(
    {
        "scopes": st.tuples(*[st.sampled_from(SCOPES)] * 3),
        "read": st.sets(st.sampled_from(FIELDS)),
        "write": st.sets(st.sampled_from(FIELDS)),
        "toggles": st.fixed_dictionaries({name: st.booleans() for name in TOGGLES}),
        "dry_run": st.booleans(),
        "paused": st.booleans(),
        "as_rep": st.booleans(),
    }
)
field_names = st.sampled_from([*FIELDS, UNKNOWN])
values = st.sampled_from(["Proposed", "", None, "75000", "OPEN_STAGE", "CLOSED_STAGE"])
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("get"),
            st.sampled_from(["deal", "won", "other"]),
            st.lists(field_names, max_size=4),
        ),
        st.tuples(
            st.just("search"),
            st.sampled_from([DEAL, COMPANY, CONTACT]),
            st.lists(field_names, max_size=4),
        ),
        st.tuples(
            st.just("update"),
            st.sampled_from(["deal", "won", "other"]),
            st.dictionaries(field_names, values, min_size=1, max_size=3),
        ),
        st.tuples(
            st.just("create"),
            st.booleans(),
            st.dictionaries(field_names, values, min_size=1, max_size=3),
        ),
    ),
    min_size=1,
    max_size=4,
)


@pytest.fixture
def world(crm_setup, workspace, ws_admin, rep_user):
    world = World(crm_setup, workspace, ws_admin)
    world.other = seed.add_record(
        crm_setup.account, DEAL, {"name": "Sam's deal"}, owner=crm_setup.stranger
    )
    crm_setup.connect(workspace, ConnectionScope.USER, crm_setup.rep, user=rep_user)
    world.rep_user = rep_user
    return world


def _configure(world: World, spec: dict) -> Policy:
    policy = world.policy
    policy.company_scope, policy.contact_scope, policy.deal_scope = spec["scopes"]
    for name, on in spec["toggles"].items():
        setattr(policy, name, on)
    policy.dry_run, policy.paused = spec["dry_run"], spec["paused"]
    policy.save()
    props = CrmProperty.objects.filter(connection=world.connection, object_type="deal")
    policy.read_properties.set(props.filter(name__in=[world.f(f) for f in spec["read"]]))
    policy.write_properties.set(props.filter(name__in=[world.f(f) for f in spec["write"]]))
    return Policy.objects.prefetch_related("read_properties", "write_properties").get(pk=policy.pk)


def _value(world: World, value):
    open_stage, closed_stage = STAGES[world.setup.provider]
    return {"OPEN_STAGE": open_stage, "CLOSED_STAGE": closed_stage}.get(value, value)


def _native(world: World, name: str) -> str:
    return name if name == UNKNOWN else world.f(name)


def _spec(**changes) -> dict:
    """A policy that would allow writing the next step and the stage, then ``changes``."""
    spec = {
        "scopes": (ObjectScope.READ, ObjectScope.READ, ObjectScope.READ_WRITE),
        "read": set(),
        "write": {"next_step", "stage"},
        "toggles": dict.fromkeys(TOGGLES, False),
        "dry_run": False,
        "paused": False,
        "as_rep": False,
    }
    spec.update(changes)
    return spec


UPDATE_DEAL = [("update", "deal", {"next_step": "Proposed"})]


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(spec=_spec(paused=True), ops=UPDATE_DEAL)
@example(spec=_spec(dry_run=True), ops=UPDATE_DEAL)
@example(spec=_spec(as_rep=True), ops=[("update", "other", {"next_step": "Proposed"})])
@example(spec=_spec(), ops=[("update", "won", {"next_step": "Proposed"})])
@example(spec=_spec(), ops=[("update", "deal", {"stage": "CLOSED_STAGE"})])
@example(spec=_spec(), ops=[("update", "deal", {"next_step": None})])
@example(spec=_spec(), ops=[("create", False, {"name": "New", "stage": "OPEN_STAGE"})])
@example(spec=_spec(scopes=(ObjectScope.READ,) * 3), ops=UPDATE_DEAL)
@example(spec=_spec(write=set()), ops=UPDATE_DEAL)
@given(spec=policies, ops=operations)
def test_nothing_outside_the_policy_is_returned_or_sent(world, spec, ops):
    policy = _configure(world, spec)
    if spec["as_rep"]:
        resolved = resolve_connection(
            world.workspace, world.setup.provider, Purpose.CHAT, world.rep_user
        )
    else:
        resolved = resolve_connection(world.workspace, world.setup.provider, Purpose.WORKFLOW)
    guard = Guard.for_resolved(resolved, policy)
    records = {"deal": world.deal, "won": world.won, "other": world.other}
    first_request = SandboxRequest.objects.order_by("-pk").values_list("pk", flat=True).first()
    first_event = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    readable = {f for f in [*FIELDS, UNKNOWN] if policy.may_read(DEAL, _native(world, f))}
    refusals = 0

    for op in ops:
        try:
            if op[0] == "get":
                record = guard.get(DEAL, records[op[1]].crm_id, [_native(world, f) for f in op[2]])
                assert set(record.properties) <= {_native(world, f) for f in readable}
            elif op[0] == "search":
                page = guard.search(
                    SearchQuery(
                        op[1], properties=tuple(_native(world, f) for f in op[2] if op[1] == DEAL)
                    )
                )
                if op[1] == DEAL:
                    for record in page.records:
                        assert set(record.properties) <= {_native(world, f) for f in readable}
            elif op[0] == "update":
                outcome = guard.update(
                    DEAL,
                    records[op[1]].crm_id,
                    {_native(world, f): _value(world, v) for f, v in op[2].items()},
                )
                refusals += len(outcome.refusals)
            else:
                associations = {COMPANY: [world.acme.crm_id]} if op[1] else None
                outcome = guard.create(
                    DEAL,
                    {_native(world, f): _value(world, v) for f, v in op[2].items()},
                    associations=associations,
                )
                refusals += len(outcome.refusals)
                assert outcome.status != WriteStatus.SENT or policy.allow_create
        except Refused:
            refusals += 1
        except (errors.NotFound, errors.PermissionDenied, errors.ValidationFailed):
            pass  # the CRM (or record access) refused: nothing was written

    new_requests = SandboxRequest.objects.filter(pk__gt=first_request or 0)
    for request in new_requests:
        for record_id, written in request.written.items():
            assert not policy.paused, (request.path, written)
            assert not policy.dry_run, (request.path, written)
            assert policy.object_scope(DEAL) == ObjectScope.READ_WRITE
            creating = request.method == "POST" and record_id not in {
                r.crm_id for r in records.values()
            }
            for name in written:
                assert policy.may_write(DEAL, name) or name in _system_fields(world), name
                if not creating:
                    assert written[name] not in (None, "") or policy.allow_clear_values
            if not creating:
                assert record_id != world.won.crm_id or policy.allow_update_closed
                assert world.f("stage") not in written or policy.allow_stage_change
                if spec["as_rep"]:
                    assert record_id != world.other.crm_id
            else:
                assert policy.allow_create
    denied = AuditEvent.objects.filter(pk__gt=first_event or 0, outcome="denied").count()
    assert denied >= refusals


def _system_fields(world: World) -> set[str]:
    # What a CRM adds to a create by itself (HubSpot's owner for a rep's record, Salesforce
    # lookups and junctions set from the requested associations).
    return {world.f("owner"), "AccountId", "OpportunityId", "ContactId", "pipeline"}
