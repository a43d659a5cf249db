"""One workflow run on one call: connect, match, read, extract, plan, gate (DESIGN.md).

``execute_run`` is what the ``run_workflow`` task calls. It claims the run (so a duplicate
task does nothing), records every input and decision on the AgentRun, and leaves behind a
ChangeSet for the record it chose. Approved proposals are handed to the apply step; the
rest wait for review. Transient failures (the CRM or the model briefly unavailable) raise
``RetryLater`` after releasing the run, so the task can retry it with a back-off.
"""

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import record_event
from crm_agents import call_matches, crm_meta, extraction, questions, records
from crm_agents.matching import Matcher, MatchResult, confidence_bar, tie_break_confidence
from crm_agents.models import AgentRun, Call, FieldRule, RunStatus, Workflow
from crm_agents.planning import plan
from crm_agents.types import (
    Attendee,
    CallView,
    ContextField,
    CurrentValue,
    Dropped,
    ExtractionInput,
    FieldAsk,
    TranscriptTurn,
)
from governance import owed
from governance.guard import Guard, Refused
from governance.models import ObjectScope, Policy
from governance.prompt import policy_prompt_section
from governance.review_models import ChangeSet, SetStatus
from integrations.connections import ConnectionProblem, Purpose, resolve_connection
from integrations.crm import errors
from integrations.crm.types import ObjectType, Record


class RetryLater(Exception):
    """The run could not finish for a reason that may pass; retry after ``delay`` seconds
    (set to the back-off once the run is queued again), unless ``gave_up``: the failures
    lasted too long and the run failed with the reason."""

    def __init__(self, cause: Exception, delay: float | None = None) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.delay = delay
        self.gave_up = False


def call_view(call: Call) -> CallView:
    return CallView(
        external_id=call.external_id,
        title=call.title,
        started_at=call.started_at,
        duration_s=call.duration_s,
        owner_email=call.owner_email,
        attendees=tuple(
            Attendee(a.get("name", ""), a.get("email", ""), bool(a.get("internal")))
            for a in call.attendees
        ),
        transcript=tuple(
            TranscriptTurn(t.get("speaker", ""), float(t.get("start", 0)), t.get("text", ""))
            for t in call.transcript
        ),
    )


@transaction.atomic
def _claim(run_id: int, owner: str) -> tuple[AgentRun, datetime | None] | None:
    """Take the run: a queued one, or a running one whose worker is gone (its lease ran
    out, or this very task is delivered again, which happens only when the worker that had
    it died). Returns the run and, on such a take-over, when the dead worker started it."""
    run = AgentRun.objects.select_for_update().filter(pk=run_id).first()
    if run is None:
        return None
    now = timezone.now()
    taken_over = None
    if run.status == RunStatus.RUNNING:
        redelivered = bool(owner) and run.lease_owner == owner
        expired = run.lease_expires_at is not None and run.lease_expires_at <= now
        if not (redelivered or expired):
            return None  # another worker has it
        taken_over = run.started_at or now
        why = "its task was delivered again" if redelivered else "its lease ran out"
        record_event(
            run.workspace,
            action="run.taken_over",
            outcome="ok",
            actor_kind="system",
            crm=run.provider,
            reason=f"the worker running it stopped ({why}); another worker goes on",
            context={"lease_owner": run.lease_owner, "attempts": run.attempts},
            workflow_label=run.workflow_label,
            call_label=str(run.call)[:200],
            run_label=f"run {run.pk}",
        )
    elif run.status != RunStatus.QUEUED:
        return None  # finished
    run.status = RunStatus.RUNNING
    run.started_at = now
    run.attempts += 1
    run.lease_owner = owner
    run.lease_expires_at = owed.lease_expiry(now)
    run.due_at = None
    run.save(
        update_fields=[
            "status",
            "started_at",
            "attempts",
            "lease_owner",
            "lease_expires_at",
            "due_at",
        ]
    )
    return run, taken_over


def execute_run(run_id: int, *, owner: str = "") -> AgentRun | None:
    """Do the run if it is owed; ``owner`` is the id of the task doing it (its lease)."""
    claimed = _claim(run_id, owner)
    if claimed is None:
        return None
    run, taken_over = claimed
    started = time.monotonic()
    steps = _Steps(run)
    if taken_over is not None and _finish_from_change_set(steps, taken_over, started):
        return run
    try:
        status, reason = steps.run()
    except RetryLater as exc:
        _wait(run, exc)
        raise
    except Exception as exc:  # recorded, never silent; the task re-raises nothing
        steps.finish(RunStatus.FAILED, f"unexpected error: {type(exc).__name__}: {exc}", started)
        raise
    steps.finish(status, reason, started)
    return run


def _finish_from_change_set(steps: "_Steps", since: datetime, started: float) -> bool:
    """A worker that died after recording the run's change set left it done but for its
    status: take the status from the set instead of proposing a second time."""
    change_set = (
        ChangeSet.objects.filter(run=steps.run_row, created_at__gte=since).order_by("-pk").first()
    )
    if change_set is None:
        return False
    records.hand_to_apply(change_set)
    status, reason = records.run_status_for(change_set)
    steps.finish(status, reason, started)
    return True


def _wait(run: AgentRun, exc: "RetryLater") -> None:
    """The CRM or the model failed in a way that may pass: the run is queued again with a
    back-off, or fails with the reason once the failures have lasted too long."""
    now = timezone.now()
    since = run.waiting_since or now
    what = "the CRM"
    if isinstance(exc.cause, extraction.ModelUnavailable):
        what = "the model"
    elif isinstance(exc.cause, call_matches.MatchBusy):
        what = "the call's match"
    fields = {"lease_owner": "", "lease_expires_at": None, "waiting_since": since}
    if owed.outage_over(run.waiting_since, now):
        reason = owed.gave_up_reason(what, exc.cause, since)
        AgentRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
            status=RunStatus.FAILED, status_reason=reason, error=reason, finished_at=now, **fields
        )
        record_event(
            run.workspace,
            action="run.gave_up",
            outcome="failed",
            actor_kind="system",
            crm=run.provider,
            reason=reason,
            workflow_label=run.workflow_label,
            call_label=str(run.call)[:200],
            run_label=f"run {run.pk}",
        )
        exc.gave_up = True
        return
    due = now + timedelta(seconds=owed.backoff(run.waiting_since, exc.delay, now))
    exc.delay = (due - now).total_seconds()
    AgentRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        status=RunStatus.QUEUED,
        status_reason=owed.waiting_reason(what, exc.cause, due),
        due_at=due,
        **fields,
    )


@dataclass
class _Asked:
    asks: dict[str, FieldAsk]
    rules: dict[str, FieldRule]
    read: list[str]
    context_names: dict[str, str]  # native -> canonical


class _Steps:
    def __init__(self, run: AgentRun) -> None:
        self.run_row = run
        self.call = run.call
        self.workflow: Workflow = run.workflow
        self.workspace = run.workspace
        self.view = call_view(self.call)
        self.object_type = ObjectType(self.workflow.object_type)
        self.timings: dict[str, float] = {}
        self.guard: Guard | None = None

    # --- bookkeeping -------------------------------------------------------------------------
    def _timed(self, step: str, started: float) -> None:
        self.timings[step] = round((time.monotonic() - started) * 1000, 1)

    def finish(self, status: str, reason: str, started: float) -> None:
        run = self.run_row
        run.status = status
        run.status_reason = reason
        run.lease_owner, run.lease_expires_at = "", None
        run.due_at = run.waiting_since = None
        self.timings["total"] = round((time.monotonic() - started) * 1000, 1)
        run.timings = self.timings
        run.crm_requests = self.guard.requests if self.guard else 0
        run.finished_at = timezone.now()
        if status == RunStatus.FAILED and not run.error:
            run.error = reason
        run.save()
        records.refresh_run_status(run.pk)

    # --- the steps ---------------------------------------------------------------------------
    def run(self) -> tuple[str, str]:
        run = self.run_row
        policy = (
            Policy.objects.prefetch_related("read_properties", "write_properties")
            .filter(workspace=self.workspace, provider=self.workflow.provider)
            .first()
        )
        if policy is None:
            return RunStatus.FAILED, (
                f"the workspace has no {self.workflow.get_provider_display()} policy: "
                "RevOps must set one up before workflows can run"
            )
        t = time.monotonic()
        try:
            resolved = resolve_connection(self.workspace, self.workflow.provider, Purpose.WORKFLOW)
        except ConnectionProblem as exc:
            return RunStatus.FAILED, exc.message
        run.connection = resolved.connection
        self.guard = Guard.for_resolved(
            resolved,
            policy,
            labels={
                "workflow_label": run.workflow_label,
                "call_label": str(self.call)[:200],
                "run_label": f"run {run.pk}",
            },
        )
        self.policy = policy
        self.connection = resolved.connection
        self._timed("connect", t)
        try:
            return self._match_and_propose()
        except (errors.RateLimited, errors.Transient) as exc:
            from integrations.throttle import retry_delay

            raise RetryLater(exc, retry_delay(exc, run.attempts)) from exc
        except extraction.ModelUnavailable as exc:
            raise RetryLater(exc, exc.retry_after) from exc
        except call_matches.MatchBusy as exc:
            raise RetryLater(exc, settings.RETRY_BASE_SECONDS) from exc
        except (errors.CrmError, Refused) as exc:
            return RunStatus.FAILED, f"the CRM refused: {exc}"
        except (extraction.ModelRejected, extraction.ModelNotConfigured) as exc:
            return RunStatus.FAILED, str(exc)

    def _asked(self) -> _Asked:
        specs = crm_meta.property_specs(self.connection, self.object_type)
        asks: dict[str, FieldAsk] = {}
        rules: dict[str, FieldRule] = {}
        decisions = []
        read: list[str] = []
        context: dict[str, str] = {}
        profile = self.guard.profile
        for rule in self.workflow.rules.filter(paused=False).order_by("order", "pk"):
            native = profile.native_field(self.object_type, rule.field)
            canonical = profile.canonical_field(self.object_type, native)
            spec = specs.get(native)
            if spec is None:
                decisions.append(
                    {
                        "field": rule.field,
                        "reason": f"the CRM has no {self.object_type} property {native}",
                    }
                )
                continue
            if not self.guard.policy.may_read(self.object_type, native):
                decisions.append(
                    {"field": rule.field, "reason": "the policy does not let CRM Steward read it"}
                )
                continue
            asks[canonical] = FieldAsk(
                canonical, native, spec, rule.instruction, rule.write_mode, CurrentValue(None, None)
            )
            rules[canonical] = rule
            read.append(native)
            for dependency in rule.read_dependencies or []:
                dep_native = profile.native_field(self.object_type, dependency)
                if dep_native in specs and self.guard.policy.may_read(self.object_type, dep_native):
                    read.append(dep_native)
                    context[dep_native] = profile.canonical_field(self.object_type, dep_native)
        self.run_row.decisions = decisions
        return _Asked(asks, rules, list(dict.fromkeys(read)), context)

    def _match_and_propose(self) -> tuple[str, str]:
        run = self.run_row
        asked = self._asked()
        if self.policy.object_scope(self.object_type) == ObjectScope.NONE:
            return RunStatus.FAILED, (
                f"the {self.workflow.get_provider_display()} policy gives CRM Steward no access "
                f"to {self.object_type} records: RevOps must open the {self.object_type} scope "
                "for this workflow to run"
            )
        if not asked.asks and not run.decisions:
            return RunStatus.NO_CHANGES, "every field rule of this workflow is paused"
        if not asked.asks:
            reasons = "; ".join(f"{d['field']}: {d['reason']}" for d in run.decisions)
            return RunStatus.FAILED, f"no field of this workflow can be read ({reasons})"
        t = time.monotonic()
        chosen = bool(run.record_id)  # by a human, after "needs a choice"
        result, shared, read_again = self._match(asked, chosen)
        self._timed("match", t)
        if not (chosen and run.candidates):  # keep the candidates the human chose among
            run.candidates = [
                {"id": c.id, "name": c.name, "score": c.score, "reasons": list(c.reasons)}
                for c in result.candidates
            ]
        run.match_reason = result.reason
        run.match_confidence = result.confidence
        run.decisions = [
            *run.decisions,
            {
                "step": "match",
                "company_ids": list(result.company_ids),
                "contact_ids": list(result.contact_ids),
                **_sharing(shared),
            },
        ]
        if result.ambiguous:
            result = self._settle_ambiguity(result)
            if result.winner is None:
                question = questions.wait_for_choice(run, self.object_type, result)
                if question.status != SetStatus.CHOSEN:
                    return RunStatus.AMBIGUOUS, questions.waiting_reason(run, question, result)
                result = questions.answered(result, question)  # answered meanwhile
            run.match_reason, run.match_confidence = result.reason, result.confidence
        if result.winner is None:
            if self.workflow.no_match == "create":
                return records.propose_create(self, asked, result)
            return RunStatus.NO_MATCH, result.reason
        record = result.records[result.winner.id]
        if shared is not None:  # values another run read may be too old, or lack a field
            record, read_again = call_matches.fresh_record(
                self, shared, self.object_type, result.winner.id, asked.read
            )
            if record is None:
                return RunStatus.NO_MATCH, (
                    f"{result.winner.name} is gone or no longer visible since the call's match"
                )
        if read_again:
            run.decisions = [
                *run.decisions,
                {"step": "read_again", "record": result.winner.id, "why": read_again},
            ]
        run.record_id = record.id
        run.record_name = result.winner.name
        return self._extract_and_plan(asked, record)

    def _match(
        self, asked: _Asked, chosen: bool
    ) -> tuple[MatchResult, "call_matches.Shared | None", str | None]:
        """The call's match for this object type (computed once for the call's runs), or
        the record a human chose; with why a stored read was read again, if it was. A TEST
        run matches on its own, apart from the call's real runs."""
        run = self.run_row
        if chosen and not run.is_test:
            stored = call_matches.chosen_match(self, self.object_type, run.record_id, asked.read)
            if stored is not None:
                return stored[0], None, stored[1]
        if chosen or run.is_test:
            matcher = Matcher(
                self.guard, self.connection, self.workspace, read_properties=asked.read
            )
            if chosen:
                return (
                    records.forced_match(matcher, self.object_type, run.record_id, asked.read),
                    None,
                    None,
                )
            return matcher.match(self.view, self.object_type), None, None
        shared = call_matches.match_for_run(self, self.object_type, asked.read)
        return shared.result, shared, None

    def _kept_values(self, asked: _Asked, record: Record) -> list[str]:
        """The values the run keeps: the rule fields, their dependencies and, for a deal,
        its stage (the apply makes its write conditional on it, see governance/apply.py)."""
        names = list(asked.read)
        if self.object_type == ObjectType.DEAL:
            stage = self.guard.profile.native_field(ObjectType.DEAL, "stage")
            if stage in record.properties:
                names.append(stage)
        return list(dict.fromkeys(names))

    def _settle_ambiguity(self, result: MatchResult) -> MatchResult:
        """The call's own answer to "which record?" if a human gave it; no tie-break while
        the question is open (one answer settles every workflow); else the model's."""
        question = questions.question_for(self.run_row, self.object_type, result)
        if question is not None and question.status == SetStatus.CHOSEN:
            return questions.answered(result, question)
        if question is not None:
            return result
        return self._tie_break(result)

    def _tie_break(self, result: MatchResult) -> MatchResult:
        close = [c for c in result.candidates if result.candidates[0].score - c.score < 0.2]
        try:
            pick = extraction.choose_record(
                self.workspace, self.view, self.object_type, close, script_key=self._script_key()
            )
        except (extraction.ModelRejected, extraction.ModelNotConfigured) as exc:
            return _unresolved(result, f"{result.reason}; no model tie-break ({exc})")
        self.run_row.decisions = [
            *self.run_row.decisions,
            {"step": "choose_record", "answer": pick.exchange.raw_answer, "reason": pick.reason},
        ]
        if pick.record_id is None:
            return _unresolved(
                result, f"{result.reason}; the model's pick was refused: {pick.reason}"
            )
        confidence = tie_break_confidence(result)
        winner = next(c for c in result.candidates if c.id == pick.record_id)
        if confidence < confidence_bar():
            return _unresolved(
                result,
                f"{result.reason}; the model picked {winner.name} but the confidence "
                f"{confidence:.2f} is below the bar {confidence_bar():.2f}: a human decides",
            )
        return MatchResult(
            candidates=result.candidates,
            winner=winner,
            confidence=confidence,
            reason=f"{result.reason}; the model picked {winner.name}: {pick.reason}",
            company_ids=result.company_ids,
            contact_ids=result.contact_ids,
            records=result.records,
        )

    def _script_key(self) -> str:
        return f"{self.call.external_id}/{self.workflow.key}"

    def _extract_and_plan(self, asked: _Asked, record: Record, *, creating: bool = False):
        run = self.run_row
        asks = {
            name: FieldAsk(
                ask.name,
                ask.native,
                ask.spec,
                ask.instruction,
                ask.write_mode,
                CurrentValue(record.properties.get(ask.native), record.modified_at.get(ask.native)),
            )
            for name, ask in asked.asks.items()
        }
        run.current_values = {
            native: {
                "value": record.properties.get(native),
                "modified_at": _iso(record.modified_at.get(native)),
            }
            for native in self._kept_values(asked, record)
        }
        context = tuple(
            ContextField(
                canonical,
                canonical.replace("_", " "),
                CurrentValue(record.properties.get(native), record.modified_at.get(native)),
            )
            for native, canonical in asked.context_names.items()
            if canonical not in asks
        )
        t = time.monotonic()
        extracted = extraction.extract(
            self.workspace,
            ExtractionInput(
                call=self.view,
                object_type=str(self.object_type),
                record_name=run.record_name,
                fields=tuple(asks.values()),
                context=context,
                policy_section=policy_prompt_section(self.policy),
            ),
            script_key=self._script_key(),
        )
        self._timed("extract", t)
        split = extraction.plan_decision(extracted)
        if split is not None:
            run.decisions = [*run.decisions, split]
            for index, call in enumerate(extracted.calls, start=1):
                self.timings[f"extract_call_{index}"] = call.elapsed_ms
        exchange = extracted.exchange
        run.prompt, run.prompt_hash, run.prompt_version = (
            exchange.prompt,
            exchange.prompt_hash,
            exchange.prompt_version,
        )
        run.model, run.raw_answer, run.answer_cached = (
            exchange.model,
            exchange.raw_answer,
            exchange.cached,
        )
        run.prompt_tokens, run.completion_tokens = (
            exchange.prompt_tokens,
            exchange.completion_tokens,
        )
        t = time.monotonic()
        stage_native = self.guard.profile.native_field(ObjectType.DEAL, "stage")
        planned = plan(
            extracted.values,
            asks,
            asked.rules,
            guard=self.guard,
            policy=self.policy,
            object_type=self.object_type,
            record_id=None if creating else record.id,
            current_stage=record.properties.get(stage_native)
            if self.object_type == ObjectType.DEAL
            else None,
            call_date=self.view.call_date,
            creating=creating,
        )
        self._timed("plan", t)
        records.audit_dropped(self, extracted.dropped)
        run.decisions = [
            *run.decisions,
            *(
                {"field": d.field, "reason": d.reason, "raw": _jsonable(d.raw)}
                for d in extracted.dropped
            ),
        ]
        change_set = records.record_change_set(
            self, record, planned, extracted.dropped, creating=creating
        )
        return records.settle(self, change_set)


def _sharing(shared: "call_matches.Shared | None") -> dict:
    """What the run's decisions say of the call's shared match."""
    if shared is None:
        return {}
    row = shared.row
    if shared.computed:
        said = (
            f"matched once for the call's runs on this CRM ({row.crm_requests} CRM request(s), "
            "shared with every object type matched with it)"
        )
    else:
        said = f"reused the call's match (run {row.matched_by_run_id}): no CRM request to match"
    return {"call_match": row.pk, "computed_here": shared.computed, "shared": said}


def _unresolved(result: MatchResult, reason: str) -> MatchResult:
    return MatchResult(
        candidates=result.candidates,
        confidence=result.confidence,
        reason=reason,
        ambiguous=True,
        company_ids=result.company_ids,
        contact_ids=result.contact_ids,
        records=result.records,
    )


def _iso(moment) -> str | None:
    return moment.isoformat() if moment is not None else None


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return repr(value)


__all__ = ["Dropped", "RetryLater", "call_view", "execute_run"]
