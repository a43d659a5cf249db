"""Nothing accepted is lost or stuck (DESIGN.md invariant 9), on both CRMs, through the real
clients and the sandbox: claims that die with their worker, messages that never arrive, a
CRM outage longer than the retry budget, and a write whose answer was lost."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from config.celery import app as celery_app
from crm_agents import tasks
from crm_agents.calls import CallIn
from crm_agents.models import AgentRun, RunStatus
from crm_agents.reconcile import reconcile
from crm_agents.services import do_submit_call
from governance import review
from governance.models import Role
from governance.review_models import ChangeProposal, ChangeSet, ProposalStatus, SetStatus
from integrations.crm.clients import build_client
from integrations.sandbox import gateway
from integrations.sandbox.models import SandboxRequest
from tests.agents.conftest import pricing_call
from tests.factories import member_of


def _review_everything(world) -> None:
    world.policy.review_default = "review"
    world.policy.review_overrides = {}
    world.policy.save()


def _queued_run(world, **overrides) -> AgentRun:
    """A call accepted with its run, whose message never reached a worker."""
    call, created = do_submit_call(
        world.workspace, CallIn.model_validate(pricing_call(**overrides))
    )
    assert created
    return AgentRun.objects.get(call=call, workflow=world.workflow)


def _pending_set(world) -> ChangeSet:
    _review_everything(world)
    run = _queued_run(world)
    tasks.run_workflow.delay(run.pk)
    change_set = ChangeSet.objects.get(run=run)
    assert change_set.status == SetStatus.PENDING_REVIEW
    return change_set


def _writes(world) -> list[dict]:
    """What the CRM actually took: every write request that changed something."""
    return list(
        SandboxRequest.objects.filter(account=world.account, kind="write")
        .exclude(written={})
        .values_list("written", flat=True)
    )


def _set_in_crm(world, field: str, value: str) -> None:
    client = build_client(
        world.provider,
        base_url=world.connection.api_base_url,
        access_token=world.connection.credentials.access_token,
    )
    client.update("deal", world.deal.crm_id, {world.native(field): value})


def _later(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)


def _actions(*names: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action__in=names).order_by("sequence"))


def _console(world, login) -> str:
    """The RevOps console (the admin index), as RevOps sees it."""
    revops = member_of(world.workspace, Role.REVOPS, username="robin@acme.example")
    page = login(revops).get("/admin/")
    assert page.status_code == 200
    return page.content.decode()


@pytest.fixture
def no_eager_waits(monkeypatch):
    monkeypatch.setattr(tasks, "EAGER_RETRY_WAIT_CAP", 0)


# --- 1. a worker killed mid-run --------------------------------------------------------------
def _left_running(run: AgentRun, owner: str, lease_left: timedelta) -> None:
    now = timezone.now()
    AgentRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING,
        started_at=now,
        attempts=1,
        lease_owner=owner,
        lease_expires_at=now + lease_left,
        due_at=None,  # as a claim leaves it
    )


def test_a_run_whose_task_comes_again_is_taken_over_at_once(world):
    run = _queued_run(world)
    # The worker that took task-1 was killed: Celery delivers task-1 again within seconds,
    # long before the lease runs out.
    _left_running(run, "task-1", timedelta(minutes=5))

    tasks.run_workflow.apply(args=[run.pk], task_id="task-1")

    run.refresh_from_db()
    assert run.status == RunStatus.APPLIED, run.status_reason
    assert (run.lease_owner, run.lease_expires_at) == ("", None)
    (taken,) = _actions("run.taken_over")
    assert "its task was delivered again" in taken.reason
    assert len(_writes(world)) == 1


def test_a_run_another_worker_holds_is_left_alone(world):
    run = _queued_run(world)
    _left_running(run, "task-1", timedelta(minutes=5))

    tasks.run_workflow.apply(args=[run.pk], task_id="task-2")  # a duplicate message

    run.refresh_from_db()
    assert (run.status, run.lease_owner) == (RunStatus.RUNNING, "task-1")
    assert _writes(world) == []


def test_the_reconciler_hands_a_run_whose_lease_ran_out_to_another_worker(world):
    run = _queued_run(world)
    _left_running(run, "task-1", -timedelta(seconds=1))

    done = reconcile()

    assert done["runs_taken_over"] == 1
    run.refresh_from_db()
    assert run.status == RunStatus.APPLIED, run.status_reason
    assert [e.action for e in _actions("reconcile.run_resent", "run.taken_over")] == [
        "reconcile.run_resent",
        "run.taken_over",
    ]
    assert reconcile() == {}  # nothing owed is left


def test_a_run_taken_over_after_it_proposed_proposes_nothing_twice(world):
    change_set = _pending_set(world)
    run = change_set.run
    model_calls = SandboxRequest.objects.filter(account=world.model_account).count()
    # The worker recorded the change set and died before recording the run's end.
    AgentRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING,
        started_at=change_set.created_at - timedelta(seconds=1),
        lease_owner="task-1",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )

    reconcile()

    run.refresh_from_db()
    assert run.status == RunStatus.PENDING_REVIEW
    assert ChangeSet.objects.filter(run=run).count() == 1
    assert SandboxRequest.objects.filter(account=world.model_account).count() == model_calls


# --- 2. a worker killed mid-apply ------------------------------------------------------------
def _left_applying(change_set: ChangeSet, owner: str, claimed_ago: timedelta) -> None:
    change_set.proposals.filter(status=ProposalStatus.PENDING).update(
        status=ProposalStatus.APPLYING,
        claimed_at=timezone.now() - claimed_ago,
        claim_owner=owner,
    )


def test_an_apply_whose_task_comes_again_is_settled_and_written_once(world):
    change_set = _pending_set(world)
    _left_applying(change_set, "apply-1", timedelta(seconds=2))  # died before it wrote

    tasks.apply_change_set.apply(args=[change_set.pk], task_id="apply-1")

    statuses = set(change_set.proposals.values_list("status", flat=True))
    assert statuses == {ProposalStatus.APPLIED}
    assert len(_writes(world)) == 1
    assert float(world.deal_value("amount")) == 84000
    assert len(_actions("apply.taken_over")) == 3


def test_an_apply_that_wrote_before_its_worker_died_is_confirmed_not_written_again(world):
    change_set = _pending_set(world)
    _left_applying(change_set, "apply-1", timedelta(seconds=2))
    # The dead worker's write reached the CRM.
    _set_in_crm(world, "amount", "84000")
    writes = len(_writes(world))

    tasks.apply_change_set.apply(args=[change_set.pk], task_id="apply-1")

    amount = change_set.proposals.get(field="amount")
    assert amount.status == ProposalStatus.APPLIED
    assert "confirmed by reading the CRM after an interrupted apply" in amount.status_reason
    assert len(_writes(world)) == writes + 1  # the two other fields only
    settled = AuditEvent.objects.get(action="crm.write", field=world.native("amount"))
    assert (settled.outcome, settled.context["settled_by_reading"]) == ("ok", True)


def test_the_reconciler_settles_an_apply_whose_lease_ran_out(world, settings):
    change_set = _pending_set(world)
    _left_applying(change_set, "apply-1", timedelta(seconds=settings.WORK_LEASE_SECONDS + 5))

    done = reconcile()

    assert done["applies_taken_over"] == 1
    change_set.refresh_from_db()
    assert change_set.status == SetStatus.APPLIED
    assert change_set.run.status == RunStatus.APPLIED
    assert len(_writes(world)) == 1


# --- 3. accepted calls and lost messages ----------------------------------------------------
@pytest.fixture
def broker_down():
    """Celery as in production, but its broker is a port nothing listens on."""
    conf = celery_app.conf
    saved = conf.task_always_eager, conf.broker_url
    conf.task_always_eager, conf.broker_url = False, "redis://127.0.0.1:9/0"
    celery_app._after_fork()  # drop pooled connections to the old broker
    yield
    conf.task_always_eager, conf.broker_url = saved
    celery_app._after_fork()


def test_a_call_accepted_while_the_broker_is_down_keeps_its_runs_and_is_done_later(
    world, broker_down
):
    api = APIClient()
    api.force_authenticate(member_of(world.workspace, Role.ADMIN, username="hook@acme.example"))

    response = api.post("/api/v1/calls/", pricing_call(), format="json")

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["created"] is True
    assert [run["status"] for run in body["runs"]] == [RunStatus.QUEUED]
    retry = api.post("/api/v1/calls/", pricing_call(), format="json")
    assert (retry.status_code, retry.json()["runs"]) == (200, body["runs"])
    assert _writes(world) == []


def test_runs_whose_messages_were_lost_are_sent_again_by_the_reconciler(world, settings):
    # Ten calls accepted, then the broker's queue was emptied (a Redis restart without
    # persistence): their runs exist, queued, and nothing will ever deliver them.
    runs = [_queued_run(world, external_id=f"mtg-{n}") for n in range(10)]

    assert reconcile() == {}  # too soon to call their messages lost
    done = reconcile(_later(settings.REQUEUE_AFTER_SECONDS + 1))

    assert done["runs_resent"] == 10
    assert {r.status for r in AgentRun.objects.filter(pk__in=[r.pk for r in runs])} <= {
        RunStatus.APPLIED,
        RunStatus.NO_CHANGES,
    }
    assert len(_actions("reconcile.run_resent")) == 10


def test_a_call_stored_without_runs_gets_them_from_the_reconciler(world, settings):
    run = _queued_run(world)
    call = run.call
    run.delete()  # as an older version left it: the call stored, its runs never made
    type(call).objects.filter(pk=call.pk).update(runs_created_at=None)

    done = reconcile(_later(settings.REQUEUE_AFTER_SECONDS + 1))

    assert done["calls_without_runs"] == 1
    (run,) = AgentRun.objects.filter(call=call)
    assert run.status == RunStatus.APPLIED, run.status_reason
    assert _actions("reconcile.call_runs_created")[0].context["runs"] == [run.pk]


# --- 4. a CRM outage longer than the retry budget ------------------------------------------
def test_approved_changes_wait_out_an_outage_longer_than_the_retry_budget(
    world, settings, no_eager_waits, login
):
    settings.TASK_MAX_RETRIES = 2
    change_set = _pending_set(world)
    world.account.error_rate = 1.0
    world.account.save()

    review.do_approve_change_set(change_set, actor=None)

    waiting = list(change_set.proposals.all())
    assert {p.status for p in waiting} == {ProposalStatus.APPROVED}
    assert all(p.waiting_since and p.due_at for p in waiting)
    assert "waiting for the CRM" in waiting[0].status_reason
    assert "next try at" in waiting[0].status_reason
    assert _writes(world) == []
    assert "Waiting for the CRM: 3 items, next try at" in _console(world, login)
    world.account.error_rate = 0.0
    world.account.save()

    done = reconcile(_later(settings.RETRY_MAX_DELAY_SECONDS + settings.REQUEUE_AFTER_SECONDS))

    assert done["applies_resent"] == 1
    assert set(change_set.proposals.values_list("status", flat=True)) == {ProposalStatus.APPLIED}
    assert len(_writes(world)) == 1
    change_set.run.refresh_from_db()
    assert change_set.run.status == RunStatus.APPLIED


def test_changes_still_failing_after_the_outage_limit_fail_with_the_reason(
    world, settings, no_eager_waits, login
):
    settings.TASK_MAX_RETRIES = 0
    change_set = _pending_set(world)
    world.account.error_rate = 1.0
    world.account.save()
    review.do_approve_change_set(change_set, actor=None)
    ChangeProposal.objects.filter(change_set=change_set).update(
        waiting_since=timezone.now() - timedelta(seconds=settings.CRM_OUTAGE_LIMIT_SECONDS + 60)
    )

    done = reconcile(_later(settings.RETRY_MAX_DELAY_SECONDS + settings.REQUEUE_AFTER_SECONDS))

    assert done["applies_given_up"] == 3
    failed = list(change_set.proposals.all())
    assert {p.status for p in failed} == {ProposalStatus.FAILED}
    assert failed[0].status_reason.startswith("gave up: the CRM kept failing since")
    assert "the limit is 24 h" in failed[0].status_reason
    change_set.refresh_from_db()
    assert change_set.status == SetStatus.FAILED
    assert len(_actions("apply.gave_up")) == 3
    assert _writes(world) == []
    console = _console(world, login)
    assert "3 items failed after the CRM kept failing for 24 h" in console
    assert "Waiting for the CRM" not in console


def test_a_run_the_crm_keeps_failing_waits_then_gives_up(world, settings, no_eager_waits):
    settings.TASK_MAX_RETRIES = 1
    run = _queued_run(world)
    world.account.error_rate = 1.0
    world.account.save()

    tasks.run_workflow.delay(run.pk)

    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert run.status_reason.startswith("waiting for the CRM (")
    AgentRun.objects.filter(pk=run.pk).update(
        waiting_since=timezone.now() - timedelta(seconds=settings.CRM_OUTAGE_LIMIT_SECONDS + 1)
    )

    done = reconcile(_later(settings.RETRY_MAX_DELAY_SECONDS + settings.REQUEUE_AFTER_SECONDS))

    assert done["runs_given_up"] == 1
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.status_reason.startswith("gave up: the CRM or the model kept failing since")


# --- 5. a write whose answer was lost -------------------------------------------------------
@pytest.fixture
def first_write_answer_lost(monkeypatch):
    """The CRM takes the first write, then the connection drops before its answer."""
    real = gateway._inject_faults
    dropped: list[str] = []

    def inject(call):
        if call.request.method == "PATCH" and not dropped:
            dropped.append(call.request.path)
            return True
        return real(call)

    monkeypatch.setattr(gateway, "_inject_faults", inject)
    return dropped


def test_a_write_whose_answer_was_lost_is_found_written_not_a_conflict(
    world, first_write_answer_lost, no_eager_waits
):
    change_set = _pending_set(world)

    review.do_approve_change_set(change_set, actor=None)

    assert first_write_answer_lost, "the fault was never injected"
    proposals = list(change_set.proposals.all())
    assert {p.status for p in proposals} == {ProposalStatus.APPLIED}
    assert all(
        "confirmed by reading the CRM after its answer was lost" in p.status_reason
        for p in proposals
    )
    assert len(_writes(world)) == 1  # the lost one; nothing was sent twice
    writes = AuditEvent.objects.filter(action="crm.write").order_by("sequence")
    assert [e.outcome for e in writes] == ["unknown", "ok", "ok", "ok"]
    assert {e.field for e in writes[1:]} == {p.native_field for p in proposals}


# --- 6. runs and applies on queues of their own ---------------------------------------------
def test_every_task_is_routed_to_a_queue_a_worker_consumes(settings):
    routes = settings.CELERY_TASK_ROUTES
    assert routes["crm_agents.run_workflow"]["queue"] == "runs"
    assert routes["crm_agents.apply_change_set"]["queue"] == "apply"
    assert set(celery_app.tasks) >= set(routes)
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert visibility > settings.CELERY_TASK_TIME_LIMIT
    assert visibility > settings.RETRY_TASK_COUNTDOWN_CAP
    assert settings.WORK_LEASE_SECONDS > settings.CELERY_TASK_TIME_LIMIT


def test_manage_py_reconcile_says_what_it_did(world, settings):
    from io import StringIO

    from django.core.management import call_command

    settings.REQUEUE_AFTER_SECONDS = 0
    out = StringIO()
    call_command("reconcile", stdout=out)
    assert out.getvalue() == "Nothing owed was stuck.\n"

    _queued_run(world)
    out = StringIO()
    call_command("reconcile", stdout=out)

    assert out.getvalue() == "runs resent: 1\n"
    assert AgentRun.objects.get().status == RunStatus.APPLIED


def test_the_admin_runs_a_queued_run_again(world, login):
    run = _queued_run(world)  # its message was lost
    revops = member_of(world.workspace, Role.REVOPS, username="robin@acme.example")

    page = login(revops).post(
        "/admin/crm_agents/agentrun/",
        {"action": "rerun", "_selected_action": [run.pk]},
        follow=True,
    )

    assert "1 run(s) queued again." in page.content.decode()
    run.refresh_from_db()
    assert run.status == RunStatus.APPLIED, run.status_reason
    (event,) = _actions("run.rerun")
    assert (event.actor_user, event.reason) == (revops, "sent to the workers again")


def test_an_approval_landing_while_the_set_is_written_is_written_by_that_apply(world, monkeypatch):
    """The approval's own task finds the set busy (here its message is lost outright): the
    apply that is writing takes the newly approved change too, instead of leaving it to the
    reconciler's next pass."""
    from governance import apply, owed

    change_set = _pending_set(world)
    amount = change_set.proposals.get(field="amount")
    others = list(change_set.proposals.exclude(pk=amount.pk))
    reviewer = member_of(world.workspace, Role.REVOPS)
    write = apply._write
    landed = []

    def approval_lands_during_the_write(change_set, guard, proposals):
        if not landed:
            with monkeypatch.context() as lost:
                lost.setattr(owed, "send_on_commit", lambda *args, **kwargs: None)
                for other in others:
                    review.do_decide_proposal(other, "approve", actor=reviewer)
            landed.append(True)
        write(change_set, guard, proposals)

    monkeypatch.setattr(apply, "_write", approval_lands_during_the_write)
    review.do_decide_proposal(amount, "approve", actor=reviewer)

    statuses = set(change_set.proposals.values_list("status", flat=True))
    assert statuses == {ProposalStatus.APPLIED}
    assert len(_writes(world)) == 2  # the amount, then the two approved meanwhile
    change_set.refresh_from_db()
    assert change_set.status == SetStatus.APPLIED
