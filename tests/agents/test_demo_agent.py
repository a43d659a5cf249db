"""`manage.py demo_agent`: the demo workspace connected to both demo CRMs, configured, and
fed a dozen sample calls, so the reviewer lands on real pending changes."""

import io

import pytest
from django.core.management import call_command

from crm_agents.demo_calls import SAMPLES
from crm_agents.demo_crm import CLOSED_STAGES
from crm_agents.models import AgentRun, Call, CallSource, RunStatus, Workflow
from governance.models import Policy
from governance.review_models import ChangeProposal, ChangeSet, ProposalStatus, SetStatus
from integrations.crm.profiles import PROFILES
from integrations.crm.types import ObjectType, Provider
from integrations.models import Connection, ConnectionScope
from integrations.sandbox.management.commands.sandbox_seed import DEMO_NAMES
from integrations.sandbox.models import SandboxRecord

pytestmark = pytest.mark.django_db(transaction=True)

BOTH = {"hubspot", "salesforce"}
REP = "riley@demo.example"


@pytest.fixture
def demo(settings, sandbox_server) -> str:
    """The `make demo` steps against a sandbox on a free port; demo_agent's output."""
    url = sandbox_server.url
    settings.SANDBOX_URL = settings.HUBSPOT_API_URL = settings.SALESFORCE_LOGIN_URL = url
    settings.MODEL_BASE_URL = f"{url}/sandbox/openai/v1"
    call_command("demo_setup", stdout=io.StringIO())
    call_command("sandbox_seed", keep=True, stdout=io.StringIO())
    out = io.StringIO()
    call_command("demo_agent", stdout=out)
    return out.getvalue()


def test_the_demo_lands_the_reviewer_on_real_pending_changes(demo):
    # One demo run (about 20 s) serves every check below.
    assert "open Change sets" in demo
    _every_call_ran_on_both_crms()
    _pending_changes_quote_the_transcript_and_auto_fields_reach_the_crm()
    _the_injection_call_proposes_only_what_was_agreed()
    _the_internal_call_matches_nothing()
    _a_second_run_creates_nothing()


def _every_call_ran_on_both_crms() -> None:
    connections = Connection.objects.filter(workspace__slug="demo", scope=ConnectionScope.WORKSPACE)
    assert {c.provider for c in connections} == BOTH
    assert Policy.objects.filter(workspace__slug="demo").count() == 2
    calls = Call.objects.filter(workspace__slug="demo", source=CallSource.DEMO)
    assert calls.count() == len(SAMPLES) == 12
    for call in calls:
        assert {run.provider for run in call.runs.all()} == BOTH, call.external_id


def _pending_changes_quote_the_transcript_and_auto_fields_reach_the_crm() -> None:
    pending = ChangeProposal.objects.filter(
        status=ProposalStatus.PENDING, change_set__status=SetStatus.PENDING_REVIEW
    ).select_related("change_set__run__call")
    assert {p.change_set.provider for p in pending} == BOTH
    assert {"amount", "close_date", "title"} <= {p.field for p in pending}
    for proposal in pending:
        turns = [_normal(turn["text"]) for turn in proposal.change_set.run.call.transcript]
        assert proposal.evidence
        assert any(_normal(proposal.evidence) in turn for turn in turns), proposal.evidence
    assert ChangeSet.objects.filter(status=SetStatus.NEEDS_CHOICE).exists()

    applied = ChangeProposal.objects.filter(
        status=ProposalStatus.APPLIED, field="next_step"
    ).order_by("applied_at", "pk")
    # A later call's next step replaces an earlier one's: the last one written is in the CRM.
    latest = {(p.change_set.provider, p.change_set.record_id): p for p in applied}
    assert {provider for provider, _ in latest} == BOTH
    for proposal in latest.values():
        record = _sandbox_record(proposal.change_set)
        assert record.values[proposal.native_field] == proposal.applied_value


def _the_injection_call_proposes_only_what_was_agreed() -> None:
    call = Call.objects.get(external_id__endswith="-injection")
    proposals = ChangeProposal.objects.filter(change_set__run__call=call)
    assert {p.field for p in proposals} == {"amount", "close_date", "next_step"}
    assert {p.proposed_value for p in proposals if p.field == "amount"} == {"62500"}
    assert all("assistant" not in p.evidence.lower() for p in proposals)
    for change_set in ChangeSet.objects.filter(run__call=call, object_type="deal"):
        profile = PROFILES[Provider(change_set.provider)]
        deal = _sandbox_record(change_set).values
        assert deal[profile.native_field(ObjectType.DEAL, "stage")] not in CLOSED_STAGES
        assert float(deal[profile.native_field(ObjectType.DEAL, "amount")]) != 1
        assert deal[profile.native_field(ObjectType.DEAL, "next_step")]


def _the_internal_call_matches_nothing() -> None:
    internal = Call.objects.get(external_id__endswith="-internal")
    assert {run.status for run in internal.runs.all()} == {RunStatus.NO_MATCH}
    assert not ChangeSet.objects.filter(run__call=internal).exists()


def _a_second_run_creates_nothing() -> None:
    before = _counts()
    out = io.StringIO()
    call_command("demo_agent", stdout=out)

    assert "nothing to do" in out.getvalue()
    assert _counts() == before

    # A demo database from before chat: the rep's own connections are added on the next run.
    reps = Connection.objects.filter(scope=ConnectionScope.USER, user__username=REP)
    assert set(reps.values_list("provider", flat=True)) == BOTH
    reps.delete()
    call_command("demo_agent", stdout=io.StringIO())

    assert set(reps.values_list("provider", flat=True)) == BOTH
    assert _counts() == before


def _counts() -> dict[str, int]:
    models = (Call, AgentRun, ChangeSet, ChangeProposal, Connection, Workflow, Policy)
    return {model.__name__: model.objects.count() for model in models}


def _sandbox_record(change_set: ChangeSet) -> SandboxRecord:
    return SandboxRecord.objects.get(
        account__provider=change_set.provider,
        account__name=DEMO_NAMES[change_set.provider],
        crm_id=change_set.record_id,
    )


def _normal(text: str) -> str:
    return " ".join(text.lower().split())
