"""What the chaos run must leave behind, judged from the sandbox's request log and
property history (what the CRM received) and the product's database (what it says).

Every check returns readable violations with the evidence (ids, states, reasons), so a
failure says which item broke which promise and why.
"""

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from audit.models import AuditEvent
from crm_agents.models import AgentRun, Call
from governance.review_models import ChangeProposal, ChangeSet
from integrations.sandbox.models import SandboxPropertyChange, SandboxRecord, SandboxRequest
from tests.chaos.world import FIELDS, World

WORKING_RUN = {"queued", "running", "applying"}
WORKING_PROPOSAL = {"approved", "applying"}
WORKING_SET = {"approved"}
NOT_DECIDED = {"pending"}


def norm(value: object) -> object:
    """One comparable form for a value as the CRMs store it and as the product holds it
    (HubSpot strings, Salesforce typed JSON, the proposal's text)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value).strip()
    if not text:
        return None
    if re.fullmatch(r"\d{12,13}", text) and int(text) % 86_400_000 == 0:  # HubSpot epoch date
        return datetime.fromtimestamp(int(text) / 1000, UTC).date().isoformat()
    try:
        number = float(text.replace(",", "")) if re.fullmatch(r"-?[\d,]+(\.\d+)?", text) else None
    except ValueError:
        number = None
    if number is not None:
        return int(number) if number == int(number) else number
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2})(T00:00(:00(\.0+)?)?(Z|\+00:00)?)?", text)
    if match:
        return match.group(1)
    return text


@dataclass(frozen=True)
class Write:
    """One field of one write request our connection sent that the CRM carried out
    (including requests whose response was then dropped: the sandbox logs them as done)."""

    provider: str
    record_id: str
    field: str
    value: object  # normalised
    raw: object
    request_id: int
    started_at: datetime

    @property
    def key(self) -> tuple:
        return (self.provider, self.record_id, self.field, self.value)


@dataclass
class Report:
    violations: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, object] = field(default_factory=dict)

    def add(self, check: str, problem: str) -> None:
        self.violations.setdefault(check, []).append(problem)

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    def describe_violations(self, limit: int = 15) -> str:
        lines = []
        for check, problems in self.violations.items():
            lines.append(f"{check}: {len(problems)}")
            lines.extend(f"  - {problem}" for problem in problems[:limit])
            if len(problems) > limit:
                lines.append(f"  … and {len(problems) - limit} more")
        return "\n".join(lines)


def agent_writes(world: World) -> list[Write]:
    natives = {crm.provider: {crm.native(name) for name in FIELDS} for crm in world.crms.values()}
    agents = {crm.agent.pk for crm in world.crms.values()}
    writes = []
    requests = SandboxRequest.objects.filter(
        account__in=world.accounts, kind="write", user_id__in=agents, status__lt=400
    ).order_by("pk")
    for request in requests:
        for record_id, values in (request.written or {}).items():
            for name, value in values.items():
                if name in natives[request.provider]:
                    writes.append(
                        Write(
                            request.provider,
                            record_id,
                            name,
                            norm(value),
                            value,
                            request.pk,
                            request.started_at,
                        )
                    )
    return writes


def _proposal_key(proposal: ChangeProposal) -> tuple:
    change_set = proposal.change_set
    return (
        change_set.provider,
        change_set.record_id,
        proposal.native_field,
        norm(proposal.value_to_write),
    )


def _run_evidence(run: AgentRun) -> str:
    return (
        f"run {run.pk} ({run.provider}, call {run.call.external_id}) status={run.status} "
        f"reason={run.status_reason!r} attempts={run.attempts} "
        f"lease_owner={getattr(run, 'lease_owner', '-')!r} "
        f"lease_expires_at={getattr(run, 'lease_expires_at', '-')} "
        f"waiting_since={getattr(run, 'waiting_since', '-')} error={run.error[:160]!r}"
    )


def _proposal_evidence(proposal: ChangeProposal) -> str:
    change_set = proposal.change_set
    return (
        f"proposal {proposal.pk} (set {change_set.pk}, {change_set.provider} deal "
        f"{change_set.record_id}, {proposal.field}) status={proposal.status} "
        f"reason={proposal.status_reason!r} read={proposal.current_value!r} "
        f"value={proposal.value_to_write!r} review={proposal.review_mode} "
        f"claimed_at={proposal.claimed_at} "
        f"claim_owner={getattr(proposal, 'claim_owner', '-')!r} "
        f"in_doubt_since={getattr(proposal, 'in_doubt_since', '-')}"
    )


def check(world: World, accepted: set[str]) -> Report:
    report = Report()
    workspace = world.workspace
    calls = {c.external_id: c for c in Call.objects.filter(workspace=workspace)}
    runs = list(AgentRun.objects.filter(workspace=workspace, is_test=False).select_related("call"))
    sets = list(ChangeSet.objects.filter(workspace=workspace, is_test=False))
    proposals = list(
        ChangeProposal.objects.filter(workspace=workspace, change_set__is_test=False)
        .select_related("change_set")
        .order_by("pk")
    )
    writes = agent_writes(world)

    _check_calls(report, accepted, calls, runs)
    _check_working(report, runs, proposals, sets)
    _check_exactly_once(report, proposals, writes)
    _check_no_clobber(report, world, proposals, writes)
    _check_audited(report, world, writes)
    _count(report, world, calls, runs, sets, proposals, writes)
    return report


def _check_calls(report: Report, accepted: set[str], calls: dict, runs: list[AgentRun]) -> None:
    with_runs = {run.call.external_id for run in runs}
    for external_id in sorted(accepted):
        call = calls.get(external_id)
        if call is None:
            report.add("accepted call lost", f"{external_id}: answered 2xx, not in the database")
            continue
        if external_id not in with_runs and getattr(call, "runs_created_at", None) is None:
            report.add(
                "accepted call without runs",
                f"call {call.pk} {external_id}: no runs, runs_created_at="
                f"{getattr(call, 'runs_created_at', 'n/a')}",
            )


def _check_working(report, runs, proposals, sets) -> None:
    for run in runs:
        if run.status in WORKING_RUN:
            report.add("run left in a working state", _run_evidence(run))
    for proposal in proposals:
        if proposal.status in WORKING_PROPOSAL:
            report.add("proposal left in a working state", _proposal_evidence(proposal))
        elif proposal.status in NOT_DECIDED:
            report.add("proposal never decided", _proposal_evidence(proposal))
    for change_set in sets:
        if change_set.status in WORKING_SET:
            report.add(
                "change set left in a working state",
                f"set {change_set.pk} ({change_set.provider} deal {change_set.record_id}) "
                f"status={change_set.status}",
            )


def _check_exactly_once(report, proposals, writes: list[Write]) -> None:
    written = Counter(write.key for write in writes)
    applied = Counter(_proposal_key(p) for p in proposals if p.status == "applied")
    for proposal in proposals:
        key = _proposal_key(proposal)
        times = written.get(key, 0)
        if proposal.status == "applied":
            if times != applied[key]:
                report.add(
                    "applied change not written exactly once",
                    f"{_proposal_evidence(proposal)}: the CRM received it {times} time(s)",
                )
        elif proposal.status in WORKING_PROPOSAL | NOT_DECIDED:
            continue  # reported as working / undecided
        else:
            if not proposal.status_reason.strip():
                report.add("change ended without a reason", _proposal_evidence(proposal))
            if times and not applied[key]:
                report.add(
                    "change written but not recorded as applied",
                    f"{_proposal_evidence(proposal)}: the CRM received it {times} time(s)",
                )
    proposed = {_proposal_key(p) for p in proposals}
    for write in writes:
        if write.key not in proposed:
            report.add(
                "write without a proposal",
                f"request {write.request_id}: {write.provider} deal {write.record_id} "
                f"{write.field}={write.raw!r}",
            )


def _check_no_clobber(report, world: World, proposals, writes: list[Write]) -> None:
    by_key = defaultdict(list)
    for proposal in proposals:
        by_key[_proposal_key(proposal)].append(proposal)
    accounts = {crm.provider: crm.account for crm in world.crms.values()}
    records = {
        (r.account.provider, r.crm_id): r.pk
        for r in SandboxRecord.objects.filter(account__in=world.accounts).select_related("account")
    }
    history = defaultdict(list)
    changes = SandboxPropertyChange.objects.filter(
        record__account__in=accounts.values(),
        name__in={w.field for w in writes},
        record_id__in=[records.get((w.provider, w.record_id)) for w in writes],
    ).order_by("changed_at", "pk")
    for change in changes:
        history[(change.record_id, change.name)].append(change)
    for write in writes:
        entries = history.get((records.get((write.provider, write.record_id)), write.field), [])
        index = next(
            (
                i
                for i, change in enumerate(entries)
                if change.changed_at >= write.started_at and norm(change.value) == write.value
            ),
            None,
        )
        if index is None:
            continue  # the value was already there: nothing was replaced
        replaced = entries[index - 1].value if index else None
        candidates = by_key.get(write.key, [])
        if not candidates:
            continue  # reported as a write without a proposal
        if all(norm(replaced) != norm(p.current_value) for p in candidates):
            report.add(
                "write overwrote a newer value",
                f"request {write.request_id}: {write.provider} deal {write.record_id} "
                f"{write.field} {replaced!r} -> {write.raw!r}, but the agent had read "
                f"{[p.current_value for p in candidates]!r} "
                f"({'; '.join(_proposal_evidence(p) for p in candidates)})",
            )


def _check_audited(report, world: World, writes: list[Write]) -> None:
    events = Counter(
        (event.crm, event.record_id, event.field, norm(event.after))
        for event in AuditEvent.objects.filter(
            workspace=world.workspace, action="crm.write", outcome="ok"
        ).only("crm", "record_id", "field", "after")
    )
    written = Counter(write.key for write in writes)
    for key, times in written.items():
        if events.get(key, 0) < times:
            provider, record_id, name, value = key
            report.add(
                "write without its audit event",
                f"{provider} deal {record_id} {name}={value!r}: written {times} time(s), "
                f"{events.get(key, 0)} crm.write ok event(s)",
            )


def _count(report, world, calls, runs, sets, proposals, writes) -> None:
    agents = {crm.agent.pk for crm in world.crms.values()}
    humans = {crm.human.pk for crm in world.crms.values()}
    crm_requests = SandboxRequest.objects.filter(account__in=world.accounts)
    audit = AuditEvent.objects.filter(workspace=world.workspace)
    report.counts.update(
        calls=len(calls),
        calls_with_runs=len({run.call_id for run in runs}),
        runs=dict(Counter(run.status for run in runs)),
        change_sets=dict(Counter(s.status for s in sets)),
        proposals=dict(Counter(p.status for p in proposals)),
        auto_applied=sum(1 for p in proposals if p.review_mode == "auto" and p.status == "applied"),
        writes_effective=len(writes),
        write_requests_effective=len({w.request_id for w in writes}),
        human_edits=crm_requests.filter(user_id__in=humans, kind="write", status__lt=400).count(),
        crm_requests=crm_requests.filter(user_id__in=agents).count(),
        crm_5xx=crm_requests.filter(status__in=[500, 502, 503]).count(),
        crm_timeouts=crm_requests.filter(status=504).count(),
        crm_rate_limited=crm_requests.filter(status=429).count()
        + crm_requests.filter(error_code="REQUEST_LIMIT_EXCEEDED").count(),
        audit_crm_write=dict(
            Counter(audit.filter(action="crm.write").values_list("outcome", flat=True))
        ),
        reconciler=dict(
            Counter(audit.filter(action__startswith="reconcile").values_list("action", flat=True))
        ),
    )
