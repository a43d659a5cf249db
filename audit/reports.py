"""The RevOps reports: what one call changed and why, what each workflow does to the CRM,
and the history of one record's field.

Read-only queries over rows the caller has already scoped (audit/report_views.py checks
access first). Aggregates are grouped in SQL, one query per aggregate, so a page costs the
same number of queries whatever the amount of data.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.db.models import Count, Prefetch, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from crm_agents.models import AgentRun, Call, FieldRule, Workflow
from governance import crm_links
from governance.models import Workspace
from governance.review_models import ChangeProposal, ChangeSet, ProposalStatus
from integrations.models import Connection

# The audit actions that change, or decide about, one record's field.
FIELD_ACTIONS = Q(action__startswith="crm.write") | Q(action__startswith="review.")
FIELD_ACTIONS |= Q(action__in=["change.rollback", "change.conflict"])

# The outcomes the workflow tracking page counts, besides every proposal.
TRACKED_STATUSES = (
    ProposalStatus.APPLIED,
    ProposalStatus.REJECTED,
    ProposalStatus.CONFLICT,
    ProposalStatus.DENIED,
)


def crm_record_url(
    connection: Connection | None, provider: str, object_type: str, record_id: str
) -> str | None:
    """The record's page in the CRM's own UI, or None when it cannot be known."""
    if connection is None:
        return None
    return crm_links.record_url(
        provider,
        object_type,
        record_id,
        account_id=connection.crm_account_id,
        base_url=connection.api_base_url,
    )


def audit_url(record_id: str) -> str | None:
    if not record_id:
        return None
    return reverse("admin:audit_auditevent_changelist") + "?" + urlencode({"record_id": record_id})


def field_history_url(provider: str, object_type: str, record_id: str, native_field: str) -> str:
    query = {
        "provider": provider,
        "object_type": object_type,
        "record_id": record_id,
        "field": native_field,
    }
    return reverse("admin:audit_field_history") + "?" + urlencode(query)


def clock(seconds: float | None) -> str:
    """Seconds into a call as m:ss (or h:mm:ss), the way a recording player shows it."""
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


# --- post-call summary ---------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    proposal: ChangeProposal
    workflow_label: str  # the workflow whose field rule asked for it
    history_url: str

    @property
    def evidence_at(self) -> str:
        return clock(self.proposal.evidence_start)


@dataclass
class RecordSummary:
    """One record the call touched on one CRM: which and why, the workflows that acted on
    it, and every field any of them proposed."""

    provider: str
    object_type: str
    record_id: str
    record_name: str
    crm_url: str | None
    audit_url: str | None
    why: AgentRun  # the run whose match chose it: reason, confidence, candidates
    runs: list[AgentRun] = field(default_factory=list)
    change_sets: list[ChangeSet] = field(default_factory=list)
    fields: list[FieldChange] = field(default_factory=list)

    @property
    def provider_label(self) -> str:
        return self.why.get_provider_display()


@dataclass(frozen=True)
class CallSummary:
    records: list[RecordSummary]
    # Runs that reached no record: no match, waiting for a choice, failed, still queued.
    unmatched: list[AgentRun]


def call_summary(call: Call) -> CallSummary:
    """The call's work grouped by record: each record matched (or created) with why, then
    every field from every workflow; then the runs that reached no record."""
    proposals = ChangeProposal.objects.select_related("decided_by").order_by("pk")
    sets = (
        ChangeSet.objects.select_related("decided_by")
        .prefetch_related(Prefetch("proposals", queryset=proposals))
        .order_by("pk")
    )
    runs = (
        call.runs.select_related("workflow", "connection")
        .prefetch_related(Prefetch("change_sets", queryset=sets))
        .order_by("created_at", "pk")
    )
    records: dict[tuple, RecordSummary] = {}
    unmatched: list[AgentRun] = []
    for run in runs:
        object_type = run.workflow.object_type if run.workflow else ""
        change_sets = list(run.change_sets.all())
        if not run.record_id and not change_sets:
            unmatched.append(run)
            continue
        for change_set in change_sets:
            summary = _record(
                records, run, change_set.object_type, change_set.record_id, change_set
            )
            summary.change_sets.append(change_set)
            summary.fields.extend(
                FieldChange(
                    proposal,
                    change_set.workflow_label or run.workflow_label,
                    field_history_url(
                        change_set.provider,
                        change_set.object_type,
                        change_set.record_id,
                        proposal.native_field,
                    ),
                )
                for proposal in change_set.proposals.all()
            )
            if run not in summary.runs:
                summary.runs.append(run)
        if run.record_id:
            summary = _record(records, run, object_type, run.record_id, None)
            if run not in summary.runs:
                summary.runs.append(run)
    return CallSummary(records=list(records.values()), unmatched=unmatched)


def _record(
    records: dict[tuple, RecordSummary],
    run: AgentRun,
    object_type: str,
    record_id: str,
    change_set: ChangeSet | None,
) -> RecordSummary:
    # A record to create has no id yet: each such change set is its own entry.
    key = (run.provider, object_type, record_id or f"new:{change_set.pk if change_set else run.pk}")
    summary = records.get(key)
    if summary is None:
        name = (change_set.record_name if change_set else "") or run.record_name or record_id
        summary = records[key] = RecordSummary(
            provider=run.provider,
            object_type=object_type,
            record_id=record_id,
            record_name=name or "(new)",
            crm_url=crm_record_url(run.connection, run.provider, object_type, record_id)
            if record_id
            else None,
            audit_url=audit_url(record_id),
            why=run,
        )
    elif not summary.why.match_reason and run.match_reason:
        summary.why = run
    return summary


# --- workflow tracking ---------------------------------------------------------------------


@dataclass
class Counts:
    """How many in the last 7 days and in the last 30 (which include the 7)."""

    d7: int = 0
    d30: int = 0

    def add(self, d7: int, d30: int) -> None:
        self.d7 += d7
        self.d30 += d30


@dataclass
class Tally:
    """Proposed changes, and how many of them were applied, rejected, in conflict or denied."""

    proposed: Counts = field(default_factory=Counts)
    applied: Counts = field(default_factory=Counts)
    rejected: Counts = field(default_factory=Counts)
    conflict: Counts = field(default_factory=Counts)
    denied: Counts = field(default_factory=Counts)

    def add(self, row: dict[str, int]) -> None:
        for name in ("proposed", *TRACKED_STATUSES):
            getattr(self, name).add(row[f"{name}_7"], row[f"{name}_30"])

    @property
    def columns(self) -> list[Counts]:
        """In the order of the page's columns."""
        return [self.proposed, self.applied, self.rejected, self.conflict, self.denied]


@dataclass
class FieldRow:
    object_type: str
    native_field: str
    tally: Tally = field(default_factory=Tally)


@dataclass
class OwnerRow:
    owner_email: str
    runs: Counts = field(default_factory=Counts)
    tally: Tally = field(default_factory=Tally)


@dataclass
class WorkflowRow:
    workflow: Workflow
    rules: list[FieldRule]
    runs: Counts = field(default_factory=Counts)
    test_runs: int = 0  # in 30 days; not in ``runs`` or any tally
    tally: Tally = field(default_factory=Tally)
    fields: list[FieldRow] = field(default_factory=list)
    owners: list[OwnerRow] = field(default_factory=list)


def _windowed(name: str, since7: datetime, condition: Q | None = None) -> dict[str, Count]:
    """``<name>_30`` and ``<name>_7`` counts of a query already limited to 30 days."""
    condition = condition or Q()
    return {
        f"{name}_30": Count("pk", filter=condition),
        f"{name}_7": Count("pk", filter=condition & Q(created_at__gte=since7)),
    }


def _tally_counts(since7: datetime) -> dict[str, Count]:
    counts = _windowed("proposed", since7)
    for status in TRACKED_STATUSES:
        counts.update(_windowed(status, since7, Q(status=status)))
    return counts


def workflow_tracking(
    workspaces: QuerySet[Workspace], *, provider: str = "", now: datetime | None = None
) -> list[WorkflowRow]:
    """Every workflow of ``workspaces`` with its runs and proposed changes over 7 and 30
    days, by field and by call owner. TEST runs and their proposals are left out of the
    counts (runs are shown apart)."""
    now = now or timezone.now()
    since7, since30 = now - timedelta(days=7), now - timedelta(days=30)
    workflows = (
        Workflow.objects.filter(workspace__in=workspaces)
        .select_related("workspace")
        .prefetch_related(Prefetch("rules", queryset=FieldRule.objects.order_by("order", "pk")))
        .order_by("workspace__name", "name", "pk")
    )
    if provider:
        workflows = workflows.filter(provider=provider)
    rows = {wf.pk: WorkflowRow(wf, list(wf.rules.all())) for wf in workflows}
    if not rows:
        return []
    owners: dict[tuple[int, str], OwnerRow] = {}

    def owner_row(workflow_id: int, email: str) -> OwnerRow:
        key = (workflow_id, email)
        if key not in owners:
            owners[key] = OwnerRow(email)
            rows[workflow_id].owners.append(owners[key])
        return owners[key]

    runs = (
        AgentRun.objects.filter(workflow__in=list(rows), created_at__gte=since30)
        .values("workflow_id", "call__owner_email")
        .annotate(
            **_windowed("runs", since7, Q(is_test=False)), tests=Count("pk", filter=Q(is_test=True))
        )
        .order_by()
    )
    for run in runs:
        row = rows[run["workflow_id"]]
        row.runs.add(run["runs_7"], run["runs_30"])
        row.test_runs += run["tests"]
        if run["runs_30"]:
            owner_row(run["workflow_id"], run["call__owner_email"]).runs.add(
                run["runs_7"], run["runs_30"]
            )

    proposals = ChangeProposal.objects.filter(
        change_set__run__workflow__in=list(rows),
        change_set__is_test=False,
        created_at__gte=since30,
    ).order_by()
    by_field = proposals.values(
        "change_set__run__workflow_id", "change_set__object_type", "native_field"
    ).annotate(**_tally_counts(since7))
    for group in by_field:
        row = rows[group["change_set__run__workflow_id"]]
        field_row = FieldRow(group["change_set__object_type"], group["native_field"])
        field_row.tally.add(group)
        row.tally.add(group)
        row.fields.append(field_row)
    # The call's owner rather than the set's copy of it, so runs and changes group alike.
    by_owner = proposals.values(
        "change_set__run__workflow_id", "change_set__run__call__owner_email"
    )
    for group in by_owner.annotate(**_tally_counts(since7)):
        owner = owner_row(
            group["change_set__run__workflow_id"], group["change_set__run__call__owner_email"]
        )
        owner.tally.add(group)

    for row in rows.values():
        row.fields.sort(key=lambda f: (f.object_type, f.native_field))
        row.owners.sort(key=lambda o: (-o.runs.d30, o.owner_email))
    return list(rows.values())


# --- field history -------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    proposal: ChangeProposal | None = None
    event: AuditEvent | None = None

    @property
    def evidence_at(self) -> str:
        return clock(self.proposal.evidence_start) if self.proposal else ""


@dataclass(frozen=True)
class FieldHistory:
    record_name: str
    crm_url: str | None
    audit_url: str | None
    entries: list[TimelineEntry]


def field_history(
    workspaces: QuerySet[Workspace],
    *,
    provider: str,
    object_type: str,
    record_id: str,
    native_field: str,
) -> FieldHistory:
    """Every proposal for one record's field and every audit event that wrote or decided
    it, oldest first. ``object_type`` may be empty (any type)."""
    proposals = (
        ChangeProposal.objects.filter(
            workspace__in=workspaces,
            change_set__provider=provider,
            change_set__record_id=record_id,
            native_field=native_field,
        )
        .select_related("change_set__run__connection", "decided_by")
        .order_by("created_at", "pk")
    )
    events = AuditEvent.objects.filter(
        FIELD_ACTIONS,
        workspace__in=workspaces,
        crm=provider,
        record_id=record_id,
        field=native_field,
    ).order_by("at", "pk")
    if object_type:
        proposals = proposals.filter(change_set__object_type=object_type)
        events = events.filter(object_type=object_type)
    proposals, events = list(proposals), list(events)
    entries = [TimelineEntry(p.created_at, proposal=p) for p in proposals]
    entries += [TimelineEntry(e.at, event=e) for e in events]
    entries.sort(key=lambda entry: entry.at)

    sets = [proposal.change_set for proposal in reversed(proposals)]  # newest first
    connection = next((cs.run.connection for cs in sets if cs.run and cs.run.connection), None)
    return FieldHistory(
        record_name=next((cs.record_name for cs in sets if cs.record_name), ""),
        crm_url=crm_record_url(
            connection, provider, object_type or (sets[0].object_type if sets else ""), record_id
        ),
        audit_url=audit_url(record_id),
        entries=entries,
    )
