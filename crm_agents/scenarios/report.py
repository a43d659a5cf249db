"""The report of one scenario run, in the shape of shared/scenarios/README.md.

Records are named by their scenario keys throughout (an id the scenario did not create,
such as a record the agent created, stays an id). CRM values from the request log are
given as the agent's wire strings (numbers in plain decimal notation) whichever CRM wrote
them.
"""

from decimal import Decimal
from typing import Any

from audit.models import AuditEvent
from crm_agents.models import AgentRun, Call, RunStatus
from crm_agents.scenarios.setup import World
from governance.review_models import ChangeProposal, ProposalStatus
from integrations.sandbox.models import RequestKind, SandboxRecord, SandboxRequest

# Keys by which a model answer names a record (crm_agents/extraction.py RECORD_KEYS).
_RECORD_KEYS = ("record", "record_id", "recordId", "id")


def build(world: World, calls: dict[str, Call]) -> dict:
    runs = [_run(world, key, run) for key, run in runs_in_order(world, calls)]
    return {
        "scenario": world.scenario.name,
        "provider": world.provider,
        "passed": True,  # set once the checks are in
        "runs": runs,
        "writes": writes(world),
        "denied": [entry for run in runs for entry in run.pop("_denied")],
        "api_requests": api_requests(world),
        "audit_events": AuditEvent.objects.filter(workspace=world.workspace).count(),
        "checks": [],
    }


def runs_in_order(world: World, calls: dict[str, Call]) -> list[tuple[str, AgentRun]]:
    """Each run once, under the key of the first call that made it, calls in file order."""
    seen: set[int] = set()
    found = []
    for key, call in calls.items():
        if call.pk in seen:
            continue  # the same call submitted again: its runs are the first one's
        seen.add(call.pk)
        runs = AgentRun.objects.filter(call=call, is_test=False).select_related("workflow")
        for run in sorted(runs, key=lambda r: (r.workflow.key if r.workflow else "", r.pk)):
            found.append((key, run))
    return found


def proposals_of(run: AgentRun) -> list[ChangeProposal]:
    return list(
        ChangeProposal.objects.filter(change_set__run=run)
        .select_related("change_set")
        .order_by("change_set_id", "pk")
    )


def _run(world: World, call_key: str, run: AgentRun) -> dict:
    proposals = proposals_of(run)
    # A record the run created has its id on the change set only.
    created = next((p.change_set.record_id for p in proposals if p.change_set.record_id), None)
    return {
        "call": call_key,
        "workflow": run.workflow.key if run.workflow else run.workflow_label,
        "outcome": _outcome(run.status),
        "record": world.record_key(run.record_id or created),
        "candidates": [
            {
                "record": world.record_key(candidate.get("id")),
                "score": candidate.get("score"),
                "reasons": list(candidate.get("reasons", [])),
            }
            for candidate in run.candidates or []
        ],
        "proposals": [_proposal(world, p) for p in proposals],
        "_denied": [_denial(world, p) for p in proposals if is_refusal(p)],
    }


def _proposal(world: World, proposal: ChangeProposal) -> dict:
    new = proposal.value_to_write
    if new is None:  # refused before coercion: what the model answered
        raw = proposal.raw_value
        new = _keys(world, raw.get("value") if isinstance(raw, dict) and "value" in raw else raw)
    return {
        "field": proposal.field,
        "native_field": proposal.native_field,
        "old": proposal.current_value,
        "new": new,
        "evidence": proposal.evidence,
        "status": str(proposal.status),
        "reason": proposal.status_reason or None,
    }


def _keys(world: World, value: Any) -> Any:
    """Record ids in a model's answer, named by their scenario keys."""
    if isinstance(value, str):
        return world.record_key(value) if value in world.crm_ids() else value
    if isinstance(value, dict):
        return {k: _keys(world, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_keys(world, item) for item in value]
    return value


def is_refusal(proposal: ChangeProposal) -> bool:
    """Refused by policy, or by the answer contract (wrong field, record, type, quote).
    A value dropped by its write mode (already there, field not empty) is no refusal: it
    was coerced fine and would simply change nothing."""
    if proposal.status == ProposalStatus.DENIED:
        return True
    return proposal.status == ProposalStatus.DROPPED and proposal.proposed_value is None


def _denial(world: World, proposal: ChangeProposal) -> dict:
    record = proposal.change_set.record_id
    raw = proposal.raw_value
    if isinstance(raw, dict):
        named = next((raw[k] for k in _RECORD_KEYS if isinstance(raw.get(k), str)), None)
        record = named or record
    return {
        "record": world.record_key(record),
        "field": proposal.field or None,
        "reason": proposal.status_reason,
    }


# --- from the sandbox request log -----------------------------------------------------------


def _requests(world: World):
    return SandboxRequest.objects.filter(account=world.account, pk__gt=world.request_mark)


def api_requests(world: World) -> dict:
    kinds = list(_requests(world).exclude(kind=RequestKind.MODEL).values_list("kind", flat=True))
    return {
        "total": len(kinds),
        "reads": kinds.count(RequestKind.READ),
        "writes": kinds.count(RequestKind.WRITE),
        "searches": kinds.count(RequestKind.SEARCH),
    }


def write_requests(world: World):
    """Write requests the CRM accepted (a 412 on a changed record wrote nothing)."""
    return _requests(world).filter(kind=RequestKind.WRITE, status__lt=400)


def writes(world: World) -> list[dict]:
    objects = dict(
        SandboxRecord.objects.filter(account=world.account).values_list("crm_id", "object_name")
    )
    found = []
    for request in _requests(world).exclude(written={}).order_by("pk"):
        for crm_id, fields in request.written.items():
            object_name = objects.get(crm_id)
            found.append(
                {
                    "record": world.record_key(crm_id),
                    "fields": {
                        _canonical(world, object_name, name): wire(value)
                        for name, value in fields.items()
                    },
                }
            )
    return found


def written_ids(world: World) -> set[str]:
    ids: set[str] = set()
    for written in _requests(world).exclude(written={}).values_list("written", flat=True):
        ids.update(written)
    return ids


def _canonical(world: World, object_name: str | None, native: str) -> str:
    if object_name is None:
        return native
    try:
        object_type = world.profile.object_type_of(object_name)
    except KeyError:
        return native
    return world.profile.canonical_field(object_type, native)


def wire(value: Any) -> str | None:
    """A stored CRM value as the agent's wire string (Salesforce keeps JSON types)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        text = format(Decimal(str(value)).normalize(), "f")
        return "0" if text == "-0" else text
    return str(value)


def _outcome(status: str) -> str:
    """The scenario format's outcome words (../shared/scenarios/README.md) have no
    "superseded": a run whose every proposal a newer call replaced changed nothing itself."""
    return RunStatus.NO_CHANGES.value if status == RunStatus.SUPERSEDED else str(status)
