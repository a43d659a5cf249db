"""One question "which record?" per call, CRM and object type.

When the matcher cannot tell close candidates apart and the model's tie-break does not
settle it, a human chooses. The first run of the call that needs the choice asks: a change
set with status NEEDS_CHOICE, the question the review queue shows. Every other run of the
same call, CRM and object type with the same candidates waits on that question
(``AgentRun.waits_on``) instead of asking again, and a run that arrives after the answer
uses it. One answer (services.do_choose_record) continues every waiting run on the chosen
record. The call's row is the lock: asking, joining and answering take it first, so a run
never joins a question that is being answered without being continued by the answer.
"""

from collections.abc import Iterable

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.services import record_event
from crm_agents.matching import MatchResult
from crm_agents.models import AgentRun, Call
from crm_agents.types import Candidate
from governance.review_models import ChangeSet, SetStatus
from integrations.crm.types import ObjectType

QUESTION_STATUSES = (SetStatus.NEEDS_CHOICE, SetStatus.CHOSEN)


def candidate_ids(candidates: Iterable) -> frozenset[str]:
    """The ids of candidates as a match gives them, or as a run stores them."""
    return frozenset(str(c["id"] if isinstance(c, dict) else c.id) for c in candidates)


def questions_of_call(call_id: int, provider: str, object_type: str) -> QuerySet[ChangeSet]:
    return ChangeSet.objects.filter(
        run__call_id=call_id,
        provider=provider,
        object_type=object_type,
        is_test=False,
        status__in=QUESTION_STATUSES,
    ).select_related("run", "decided_by")


def asked_among(question: ChangeSet) -> frozenset[str]:
    """The candidates the question offers: those of the run that asked it."""
    return candidate_ids(question.run.candidates or []) if question.run else frozenset()


def question_for(run: AgentRun, object_type: ObjectType, result: MatchResult) -> ChangeSet | None:
    """The call's question this run's ambiguous match is about: an answered one whose
    record is among the run's candidates, else an open one offering the same candidates.
    TEST runs neither join nor reuse: a test stays apart from the real queue."""
    if run.is_test:
        return None
    ids = candidate_ids(result.candidates)
    questions = list(questions_of_call(run.call_id, run.provider, object_type).order_by("-pk"))
    for question in questions:
        if question.status == SetStatus.CHOSEN and question.record_id in ids:
            return question
    for question in questions:
        if question.status == SetStatus.NEEDS_CHOICE and asked_among(question) == ids:
            return question
    return None


def answered(result: MatchResult, question: ChangeSet) -> MatchResult:
    """The match settled by the call's answered question (no CRM request: the candidates
    were read by the match)."""
    chosen = next(c for c in result.candidates if c.id == question.record_id)
    who = question.decided_by.get_username() if question.decided_by else "a reviewer"
    reason = f"{chosen.name} was chosen by {who} for this call (one choice for every workflow)"
    winner = Candidate(chosen.id, chosen.name, chosen.score, (*chosen.reasons, reason))
    return MatchResult(
        candidates=tuple(winner if c.id == winner.id else c for c in result.candidates),
        winner=winner,
        confidence=1.0,
        reason=reason,
        company_ids=result.company_ids,
        contact_ids=result.contact_ids,
        records=result.records,
    )


@transaction.atomic
def wait_for_choice(run: AgentRun, object_type: ObjectType, result: MatchResult) -> ChangeSet:
    """Under the call's lock: the call's answered question (the caller uses its answer),
    or the open question the run now waits on, joined or asked."""
    Call.objects.select_for_update().filter(pk=run.call_id).first()
    question = question_for(run, object_type, result)
    if question is not None and question.status == SetStatus.CHOSEN:
        return question
    if question is None:
        question = _ask(run, object_type, result)
    else:
        _join(run, question, result)
    run.waits_on = question
    AgentRun.objects.filter(pk=run.pk).update(waits_on=question)
    return question


def waiting_reason(run: AgentRun, question: ChangeSet, result: MatchResult) -> str:
    if question.run_id == run.pk:
        return f"{result.reason}: a human chooses the record, once for every workflow of the call"
    return (
        f"{result.reason}; waits on the choice of record already asked for this call by "
        f"{question.workflow_label} (change set {question.pk}): one answer continues it too"
    )


def _ask(run: AgentRun, object_type: ObjectType, result: MatchResult) -> ChangeSet:
    call = run.call
    question = ChangeSet.objects.create(
        workspace=run.workspace,
        run=run,
        provider=run.provider,
        object_type=object_type,
        status=SetStatus.NEEDS_CHOICE,
        call_title=call.title,
        call_started_at=call.started_at,
        workflow_label=run.workflow_label,
        owner_email=call.owner_email,
        is_test=run.is_test,
        read_at=timezone.now(),
    )
    record_event(
        run.workspace,
        action="match.needs_choice",
        outcome="ok",
        actor_kind="system",
        crm=run.provider,
        object_type=str(object_type),
        reason=f"{result.reason}: a human chooses among {len(result.candidates)} candidates",
        context={"question": question.pk, "candidates": sorted(candidate_ids(result.candidates))},
        workflow_label=run.workflow_label,
        call_label=str(call)[:200],
        run_label=f"run {run.pk}",
    )
    return question


def _join(run: AgentRun, question: ChangeSet, result: MatchResult) -> None:
    record_event(
        run.workspace,
        action="match.waits_on_choice",
        outcome="ok",
        actor_kind="system",
        crm=run.provider,
        object_type=question.object_type,
        reason=(
            f"{result.reason}; the same choice of record is already asked for this call by "
            f"{question.workflow_label}: this run waits on that answer"
        ),
        context={"question": question.pk, "asked_by_run": question.run_id},
        workflow_label=run.workflow_label,
        call_label=str(run.call)[:200],
        run_label=f"run {run.pk}",
    )


def resulting_change_sets(question: ChangeSet) -> list[ChangeSet]:
    """The change sets the runs continued by this answer made since, the asking run's
    first; superseded ones left out (the reviewer is sent where the changes are)."""
    if question.status != SetStatus.CHOSEN:
        return []
    runs = set(question.waiting_runs.values_list("pk", flat=True))
    if question.run_id:
        runs.add(question.run_id)
    sets = (
        ChangeSet.objects.filter(run_id__in=runs, pk__gt=question.pk)
        .exclude(status__in=[*QUESTION_STATUSES, SetStatus.SUPERSEDED])
        .order_by("pk")
    )
    return sorted(sets, key=lambda s: (s.run_id != question.run_id, s.pk))
