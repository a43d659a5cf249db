"""Run a scenario end to end against the sandbox CRMs, synchronously (Celery eager).

Per call: submit it, process it with the apply step held back, make the human CRM edits
that come after it, then run the held-back applies; review decisions come after the call
they name (``after_call``) or after all calls. The report (report.py) and the checks
(checks.py) are read from what the run left in the database and the sandbox request log.
"""

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from unittest import mock
from urllib.parse import urlsplit

from django.conf import settings
from django.test import override_settings

from crm_agents import services, tasks
from crm_agents.calls import CallIn
from crm_agents.models import AgentRun, Call, CallSource
from crm_agents.scenarios import checks, report
from crm_agents.scenarios.setup import World, build_world, resolve_answer
from crm_agents.scenarios.spec import CallSpec, ChooseDecision, EditDecision, ReviewSpec, Scenario
from governance import review
from governance.review_models import ProposalStatus, SetStatus
from integrations.sandbox import seed, store
from integrations.sandbox.models import SandboxProperty, SandboxRecord

MODEL_NAME = "sandbox-rules-1"
logger = logging.getLogger(__name__)


@dataclass
class Progress:
    """What happened while the scenario ran, beyond what the database holds."""

    calls: dict[str, Call] = field(default_factory=dict)
    problems: list[dict] = field(default_factory=list)  # failed steps, reported as checks


# --- the environment ---------------------------------------------------------------------


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def sandbox_environment(sandbox_url: str | None = None) -> Iterator[str]:
    """Settings pointing every CRM and the model at a sandbox, and Celery eager.

    The configured sandbox is used when SANDBOX_URL is set in the environment and answers;
    otherwise one is served on a free loopback port for the duration.
    """
    from config.celery import app
    from integrations.sandbox.server import SandboxServerThread

    server = None
    url = sandbox_url
    if url is None and os.environ.get("SANDBOX_URL") and _reachable(settings.SANDBOX_URL):
        url = settings.SANDBOX_URL
    if url is None:
        server = SandboxServerThread()
        server.start()
        url = server.url
    eager = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    try:
        with override_settings(
            SANDBOX_URL=url,
            HUBSPOT_API_URL=url,
            HUBSPOT_AUTHORIZE_URL=f"{url}/oauth/authorize",
            SALESFORCE_LOGIN_URL=url,
            MODEL_BASE_URL=f"{url}/sandbox/openai/v1",
            MODEL_NAME=MODEL_NAME,
            CELERY_TASK_ALWAYS_EAGER=True,
            CELERY_TASK_EAGER_PROPAGATES=True,
        ):
            yield url
    finally:
        app.conf.task_always_eager, app.conf.task_eager_propagates = eager
        if server is not None:
            server.stop()


# --- one scenario on one CRM -------------------------------------------------------------


def run(scenario: Scenario, provider: str, sandbox_url: str) -> dict:
    """The report of ``scenario`` on ``provider`` (inside ``sandbox_environment``)."""
    world = build_world(scenario, provider, sandbox_url)
    progress = Progress()
    with override_settings(MODEL_API_KEY=world.model_key):
        for index, call in enumerate(scenario.calls):
            _step(progress, f"calls[{index}]", _process_call, world, progress, call)
            for i, decision in enumerate(scenario.review):
                if decision.after_call == call.key:
                    _step(progress, f"review[{i}]", _decide, world, progress, decision)
        for i, decision in enumerate(scenario.review):
            if decision.after_call is None:
                _step(progress, f"review[{i}]", _decide, world, progress, decision)
    result = report.build(world, progress.calls)
    result["checks"] = [*progress.problems, *checks.evaluate(world, progress.calls, result)]
    result["passed"] = all(check["ok"] for check in result["checks"])
    return result


def _step(progress: Progress, name: str, function, *args) -> None:
    try:
        function(*args)
    except Exception as exc:  # reported as a failed check, so the other steps still run
        logger.exception("scenario step %s failed", name)
        detail = f"{type(exc).__name__}: {exc}"
        progress.problems.append({"check": name, "ok": False, "detail": detail})


def call_payload(call: CallSpec) -> CallIn:
    """The call as the product's API takes it; a re-submission of the same external id
    creates nothing new (services.do_submit_call), and processing it again makes no run."""
    return CallIn.model_validate(call.model_dump(exclude={"key"}))


def _process_call(world: World, progress: Progress, spec: CallSpec) -> None:
    payload = call_payload(spec)  # valid: the loader checked it as the API would
    call, _ = services.do_submit_call(world.workspace, payload, source=CallSource.SCENARIO)
    progress.calls[spec.key] = call
    held: list[int] = []
    # Applies wait until the humans who edit the CRM "after extraction" have done so.
    with mock.patch.object(tasks, "apply_change_set", SimpleNamespace(delay=held.append)):
        tasks.process_call.delay(call.pk)
    for edit in world.scenario.crm_edits:
        if edit.after_call == spec.key:
            human_edit(world, edit.record, edit.by, edit.fields, delete=edit.delete)
    for change_set_id in held:
        tasks.apply_change_set.delay(change_set_id)


def human_edit(
    world: World, record_key: str, user_key: str, fields: dict, *, delete: bool = False
) -> None:
    """A person changes (or deletes) the record in the CRM: the values, their history and
    the record's change time move exactly as an edit in the CRM's own UI moves them."""
    record = SandboxRecord.objects.get(pk=world.records[record_key].pk)
    if delete:
        store.delete_record(record)
        return
    object_type = world.profile.object_type_of(record.object_name)
    properties = {
        prop.name: prop
        for prop in SandboxProperty.objects.filter(
            account=world.account, object_name=record.object_name
        )
    }
    schema = seed.schema_of(world.provider)
    user = world.users[user_key]
    values = {}
    for name, value in fields.items():
        native = world.profile.native_field(object_type, name)
        if native not in properties:
            raise ValueError(f"{record.object_name} has no property {native!r} (from {name!r})")
        values[native] = schema.to_native(properties[native], world.value(value))
    store.update_record(
        record, values, source_type="CRM_UI", source_id=f"userId:{user.crm_user_id}"
    )


def run_of(progress: Progress, call_key: str, workflow_key: str) -> AgentRun | None:
    call = progress.calls.get(call_key)
    if call is None:
        return None
    return (
        AgentRun.objects.filter(call=call, workflow__key=workflow_key, is_test=False)
        .order_by("pk")
        .first()
    )


def _decide(world: World, progress: Progress, decision: ReviewSpec) -> None:
    run = run_of(progress, decision.call, decision.workflow)
    if run is None:
        raise ValueError(f"no run of {decision.workflow} on call {decision.call}")
    actor, choice = world.runner, decision.decision
    if isinstance(choice, ChooseDecision):
        _choose(world, run, choice)
        return
    change_set = run.change_sets.order_by("-pk").first()
    if change_set is None:
        raise ValueError(f"the run of {decision.call}/{decision.workflow} proposed nothing")
    reason = decision.reason or "rejected in the scenario"
    if isinstance(choice, EditDecision):
        for name, value in choice.edit.items():
            proposal = _pending(change_set, name)
            value = resolve_answer(world, value)
            review.do_decide_proposal(proposal, "edit", actor=actor, value=value)
        return
    if decision.field is not None:
        proposal = _pending(change_set, decision.field)
        review.do_decide_proposal(proposal, choice, actor=actor, reason=reason)
    elif choice == "approve":
        review.do_approve_change_set(change_set, actor=actor)
    else:
        review.do_reject_change_set(change_set, actor=actor, reason=reason)


def _choose(world: World, run: AgentRun, choice: ChooseDecision) -> None:
    """Answer the question of record the run waits on (asked by it or by another workflow
    of the call). The call's one answer settles every workflow: choosing the same record
    again for another workflow of the call is the same answer, already given."""
    record_id = world.records[choice.choose].crm_id
    question = run.waits_on or run.change_sets.order_by("-pk").first()
    if question is not None and question.status == SetStatus.CHOSEN:
        if question.record_id != record_id:
            raise ValueError(
                f"this call's choice of record was already answered: {question.record_name}"
            )
        return
    if question is None or question.status != SetStatus.NEEDS_CHOICE:
        raise ValueError(f"the run is not waiting for a choice of record ({run.status})")
    services.do_choose_record(question, record_id, actor=world.runner)


def _pending(change_set, name: str):
    proposal = change_set.proposals.filter(field=name, status=ProposalStatus.PENDING).first()
    if proposal is None:
        raise ValueError(f"no proposal for {name} waits for review in {change_set}")
    return proposal


# --- several scenarios, several CRMs -------------------------------------------------------


def run_all(
    scenarios: list[Scenario], provider: str | None = None, *, sandbox_url: str | None = None
) -> list[dict]:
    """Every scenario on every CRM it names (or ``provider``); with two CRMs, each report
    also checks that the two agree."""
    reports: list[dict] = []
    with sandbox_environment(sandbox_url) as url:
        for scenario in scenarios:
            pair = [run(scenario, name, url) for name in scenario.providers(provider)]
            if len(pair) == 2:
                agreement = checks.providers_agree(scenario, *pair)
                for one in pair:
                    one["checks"].append(agreement)
                    one["passed"] = all(check["ok"] for check in one["checks"])
            reports.extend(pair)
    return reports
