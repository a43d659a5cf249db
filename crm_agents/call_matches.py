"""One match per call, CRM and object type, shared by the call's runs (DESIGN.md step 2).

Each workflow of a call is its own run, and runs may go in parallel on several workers;
the record they are about is found once. The first run of a call that needs a match
computes it for every object type the call's runs target on that CRM (the attendees'
contacts and companies looked up once, shared by the contact, company and deal matches),
reading the candidates with the union of what those runs' rules need (their fields and
declared dependencies; a deal's stage always). It stores the result, a ``CallMatch`` per
object type, and the call's other runs reuse it with no CRM request.

Concurrency: the rows are unique per call, CRM and object type. A run claims the rows it
computes with a lease (governance/owed.py) in a short transaction, never across CRM
requests; a run whose row another holds waits for its result (up to
CALL_MATCH_WAIT_SECONDS, then it goes back to the queue). A run that fails mid-match
releases its claim; one that dies holds it until its lease runs out, and the next run
takes it over.

Freshness: values read by another run are used while younger than CALL_MATCH_FRESH_SECONDS
and when they include every property the run needs; otherwise the chosen record alone is
read again (one request), and the stored values follow. The apply's write is conditional on
what was read in any case (governance/apply.py).
"""

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.services import record_event
from crm_agents import crm_meta
from crm_agents.call_match_models import CallMatch
from crm_agents.matching import Matcher, MatchResult
from crm_agents.models import AgentRun, FieldRule
from crm_agents.types import Candidate
from governance import owed
from governance.models import ObjectScope
from integrations.crm.types import ObjectType, Record

POLL_SECONDS = 0.2


class MatchBusy(Exception):
    """Another worker is computing the call's match and has not stored it in time."""


@dataclass(frozen=True)
class Shared:
    """The call's match as a run gets it: computed by this run, or reused."""

    row: CallMatch
    result: MatchResult
    computed: bool


def rule_reads(rules, object_type: ObjectType, guard, specs) -> list[str]:
    """The native properties the rules need read: their fields and declared dependencies,
    those the CRM has and the policy lets CRM Steward read."""
    profile = guard.profile
    names: list[str] = []
    for rule in rules:
        for field in (rule.field, *(rule.read_dependencies or [])):
            native = profile.native_field(object_type, field)
            if native in specs and guard.policy.may_read(object_type, native):
                names.append(native)
    return list(dict.fromkeys(names))


def reads_of_call(steps, object_type: ObjectType, needed: list[str]) -> dict[ObjectType, list[str]]:
    """What each object type's candidates are read with: the union over the call's runs
    on this CRM targeting it (not TEST runs), and the asking run's own needs."""
    runs = AgentRun.objects.filter(
        call=steps.call, provider=steps.run_row.provider, is_test=False, workflow__isnull=False
    ).select_related("workflow")
    by_type: dict[ObjectType, list[int]] = {}
    for run in runs:
        kind = ObjectType(run.workflow.object_type)
        if steps.policy.object_scope(kind) != ObjectScope.NONE:
            by_type.setdefault(kind, []).append(run.workflow_id)
    reads: dict[ObjectType, list[str]] = {}
    for kind, workflow_ids in by_type.items():
        rules = FieldRule.objects.filter(workflow_id__in=workflow_ids, paused=False).order_by(
            "workflow_id", "order", "pk"
        )
        specs = crm_meta.property_specs(steps.connection, kind)
        reads[kind] = rule_reads(rules, kind, steps.guard, specs)
    reads[object_type] = list(dict.fromkeys([*reads.get(object_type, []), *needed]))
    return reads


def match_for_run(steps, object_type: ObjectType, needed: list[str]) -> Shared:
    """The call's match of ``object_type`` on the run's CRM: stored, or computed now (for
    every object type of the call that has none yet) and stored."""
    owner = f"run {steps.run_row.pk} {uuid.uuid4().hex}"
    reads = reads_of_call(steps, object_type, needed)
    deadline = time.monotonic() + settings.CALL_MATCH_WAIT_SECONDS
    while True:
        done, rows = _claim(steps, reads, object_type, owner)
        if done is not None:
            _prime_stages(steps, object_type)
            return Shared(done, from_row(done), computed=False)
        if rows:
            break
        if time.monotonic() >= deadline:
            raise MatchBusy(
                f"another run of this call is matching its {object_type} "
                f"(waited {settings.CALL_MATCH_WAIT_SECONDS} s)"
            )
        time.sleep(POLL_SECONDS)
    before = steps.guard.requests
    try:
        matcher = Matcher(steps.guard, steps.connection, steps.workspace, read_properties=needed)
        results = matcher.match_many(steps.view, {kind: reads[kind] for kind in rows})
    except BaseException:
        _release(rows, owner)
        raise
    stored = do_store_call_matches(
        steps, rows, results, reads, requests=steps.guard.requests - before, owner=owner
    )
    row = stored[object_type]
    return Shared(row, from_row(row), computed=row.matched_by_run_id == steps.run_row.pk)


@transaction.atomic
def _claim(
    steps, reads: dict[ObjectType, list[str]], mine: ObjectType, owner: str
) -> tuple[CallMatch | None, dict[ObjectType, CallMatch]]:
    """Under the rows' locks: the stored match of ``mine`` if there is one; else the rows
    this run now holds (``mine`` among them); else nothing (another run holds ``mine``)."""
    call, provider = steps.call, steps.run_row.provider
    for kind in sorted(reads):  # one order for every run: no deadlock between creators
        CallMatch.objects.get_or_create(
            call=call,
            provider=provider,
            object_type=kind,
            defaults={"workspace": steps.workspace},
        )
    rows = {
        ObjectType(row.object_type): row
        for row in CallMatch.objects.select_for_update()
        .filter(call=call, provider=provider, object_type__in=list(reads))
        .order_by("pk")
    }
    if rows[mine].matched_at is not None:
        return rows[mine], {}
    now = timezone.now()
    # A claim of this very run is an earlier attempt's: the run is held by one worker at a
    # time (pipeline._claim), so that attempt is over.
    this_run = f"run {steps.run_row.pk} "
    free = {
        kind: row
        for kind, row in rows.items()
        if row.matched_at is None
        and (
            not row.lease_owner
            or row.lease_owner.startswith(this_run)
            or row.lease_expires_at is None
            or row.lease_expires_at <= now
        )
    }
    if mine not in free:
        return None, {}
    for row in free.values():
        if row.lease_owner:  # the run matching died mid-match: this one takes over
            record_event(
                steps.workspace,
                action="match.taken_over",
                outcome="ok",
                actor_kind="system",
                crm=provider,
                object_type=row.object_type,
                reason="the run matching this call stopped (its lease ran out); another goes on",
                context={"call_match": row.pk, "lease_owner": row.lease_owner},
                **_labels(steps),
            )
        row.lease_owner, row.lease_expires_at = owner, owed.lease_expiry(now)
        row.save(update_fields=["lease_owner", "lease_expires_at"])
    return None, free


def _release(rows: dict[ObjectType, CallMatch], owner: str) -> None:
    CallMatch.objects.filter(pk__in=[row.pk for row in rows.values()], lease_owner=owner).update(
        lease_owner="", lease_expires_at=None
    )


@transaction.atomic
def do_store_call_matches(
    steps,
    rows: dict[ObjectType, CallMatch],
    results: dict[ObjectType, MatchResult],
    reads: dict[ObjectType, list[str]],
    *,
    requests: int,
    owner: str,
) -> dict[ObjectType, CallMatch]:
    """Store what the run matched, each with its audit event; a row another run stored
    meanwhile (this one's lease ran out) keeps that run's result."""
    now = timezone.now()
    stored = {}
    for kind, row in rows.items():
        row = CallMatch.objects.select_for_update().get(pk=row.pk)
        stored[kind] = row
        if row.matched_at is not None:
            continue
        result = results[kind]
        row.read_properties = reads[kind]
        row.candidates = [candidate_json(c) for c in result.candidates]
        row.winner_id = result.winner.id if result.winner else ""
        row.winner_name = result.winner.name[:500] if result.winner else ""
        row.reason = result.reason
        row.confidence = result.confidence
        row.ambiguous = result.ambiguous
        row.company_ids = list(result.company_ids)
        row.contact_ids = list(result.contact_ids)
        row.records = {
            record_id: _record_json(record, reads[kind], now)
            for record_id, record in result.records.items()
        }
        row.crm_requests = requests
        row.matched_by_run = steps.run_row
        row.matched_at = now
        row.lease_owner, row.lease_expires_at = "", None
        row.save()
        record_event(
            steps.workspace,
            action="match.computed",
            outcome="ok",
            actor_kind="system",
            crm=row.provider,
            object_type=str(kind),
            record_id=row.winner_id,
            reason=f"{result.reason} (matched once for every run of the call)",
            context={
                "call_match": row.pk,
                "candidates": [c.id for c in result.candidates],
                "read": reads[kind],
                "object_types": sorted(str(k) for k in rows),
                "crm_requests": requests,
            },
            **_labels(steps),
        )
    CallMatch.objects.filter(pk__in=[row.pk for row in rows.values()], lease_owner=owner).update(
        lease_owner="", lease_expires_at=None
    )
    return stored


def chosen_match(
    steps, object_type: ObjectType, record_id: str, needed: list[str]
) -> tuple[MatchResult, str | None] | None:
    """The record a human chose, from the call's stored match when it read it (read again
    if stale, and why); None when the call's match never read it."""
    row = CallMatch.objects.filter(
        call=steps.call,
        provider=steps.run_row.provider,
        object_type=object_type,
        matched_at__isnull=False,
    ).first()
    if row is None or record_id not in row.records:
        return None
    shared = Shared(row, from_row(row), computed=False)
    _prime_stages(steps, object_type)
    record, why = fresh_record(steps, shared, object_type, record_id, needed)
    if record is None:
        gone = f"the chosen record {record_id} is gone or no longer visible"
        return MatchResult(reason=gone), why
    name = next((c.name for c in shared.result.candidates if c.id == record_id), record_id)
    winner = Candidate(record_id, name, 1.0, ("chosen by a reviewer",))
    result = MatchResult(
        candidates=(winner,),
        winner=winner,
        confidence=1.0,
        reason="chosen by a reviewer",
        company_ids=shared.result.company_ids,
        contact_ids=shared.result.contact_ids,
        records={record_id: record},
    )
    return result, why


def fresh_record(
    steps, shared: Shared, object_type: ObjectType, record_id: str, needed: list[str]
) -> tuple[Record | None, str | None]:
    """The stored record if its read is fresh and has what the run needs, else read again
    (and stored); with why it was read again, or None."""
    data = shared.row.records.get(record_id) or {}
    why = _stale(data, needed)
    if why is None:
        return _record(object_type, record_id, data), None
    names = [*_identity(steps.guard.profile, object_type), *data.get("read", []), *needed]
    found = steps.guard.get_many(object_type, [record_id], list(dict.fromkeys(names)))
    if not found:
        return None, why
    do_store_read_again(steps, shared.row, found[0], list(dict.fromkeys(names)), why)
    return found[0], why


@transaction.atomic
def do_store_read_again(steps, row: CallMatch, record: Record, read: list[str], why: str) -> None:
    row = CallMatch.objects.select_for_update().get(pk=row.pk)
    row.records = {**row.records, record.id: _record_json(record, read, timezone.now())}
    row.save(update_fields=["records"])
    record_event(
        steps.workspace,
        action="match.read_again",
        outcome="ok",
        actor_kind="system",
        crm=row.provider,
        object_type=row.object_type,
        record_id=record.id,
        reason=f"the call's stored read of the record was {why}: read again",
        context={"call_match": row.pk, "read": read},
        **_labels(steps),
    )


def _prime_stages(steps, object_type: ObjectType) -> None:
    """A deal's plan checks stages: the ones the match read, from the connection's cache
    (a run that reuses the match makes no request for them either)."""
    if object_type == ObjectType.DEAL:
        crm_meta.deal_stages(steps.guard, steps.connection)


def _stale(data: dict, needed: list[str]) -> str | None:
    read_at = parse_datetime(data.get("read_at") or "")
    if read_at is None:
        return "missing"
    age = timezone.now() - read_at
    if age > timedelta(seconds=settings.CALL_MATCH_FRESH_SECONDS):
        return f"{int(age.total_seconds())} s old (fresh for {settings.CALL_MATCH_FRESH_SECONDS} s)"
    missing = [name for name in needed if name not in data.get("read", [])]
    if missing:
        return f"without {', '.join(missing)}"
    return None


def _identity(profile, object_type: ObjectType) -> list[str]:
    """What a read of the chosen record always carries: its name and, for a deal, the stage
    the apply's write is conditional on."""
    if object_type == ObjectType.CONTACT:
        return []
    names = [profile.native_field(object_type, "name")]
    if object_type == ObjectType.DEAL:
        names.append(profile.native_field(object_type, "stage"))
    return names


def from_row(row: CallMatch) -> MatchResult:
    kind = ObjectType(row.object_type)
    candidates = tuple(
        Candidate(str(c["id"]), c["name"], c["score"], tuple(c["reasons"])) for c in row.candidates
    )
    winner = next((c for c in candidates if c.id == row.winner_id), None)
    return MatchResult(
        candidates=candidates,
        winner=winner,
        confidence=row.confidence,
        reason=row.reason,
        ambiguous=row.ambiguous,
        company_ids=tuple(row.company_ids),
        contact_ids=tuple(row.contact_ids),
        records={rid: _record(kind, rid, data) for rid, data in row.records.items()},
    )


def candidate_json(candidate: Candidate) -> dict:
    return {
        "id": candidate.id,
        "name": candidate.name,
        "score": candidate.score,
        "reasons": list(candidate.reasons),
    }


def _record_json(record: Record, read: list[str], read_at: datetime) -> dict:
    return {
        "properties": dict(record.properties),
        "modified_at": {name: _iso(at) for name, at in record.modified_at.items()},
        "updated_at": _iso(record.updated_at),
        "owner_id": record.owner_id,
        "read": list(read),
        "read_at": read_at.isoformat(),
    }


def _record(object_type: ObjectType, record_id: str, data: dict) -> Record:
    return Record(
        object_type=object_type,
        id=record_id,
        properties=dict(data.get("properties") or {}),
        modified_at={
            name: parse_datetime(at) if at else None
            for name, at in (data.get("modified_at") or {}).items()
        },
        updated_at=parse_datetime(data["updated_at"]) if data.get("updated_at") else None,
        owner_id=data.get("owner_id"),
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _labels(steps) -> dict[str, str]:
    return {
        "workflow_label": steps.run_row.workflow_label,
        "call_label": str(steps.call)[:200],
        "run_label": f"run {steps.run_row.pk}",
    }
