"""Figures for operators (a Prometheus endpoint) and for RevOps (the admin index).

Every number is counted in the database when it is asked for, never kept in process
memory, so any number of web and worker processes report the same figures.

"Permission violations" is measured as guard misses: write requests that CRM Steward sent
to a CRM (the guard had checked the policy and the connection's record access) and that the
CRM then refused for permissions (``PermissionDenied``: a 403, or Salesforce's
INSUFFICIENT_ACCESS family), over every write request sent. The CRM stopped each of them,
so nothing was written; any of them means our checks let through a write the CRM's own
permissions forbid, and the share must stay 0. Writes the HubSpot record-access check
refused before sending (integrations/record_access.py) are the guard working, not misses,
and are not counted as sent.
"""

import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib import admin
from django.db.models import (
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Min,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from audit.models import AuditEvent
from crm_agents.models import AgentRun, RunStatus, Workflow
from governance import owed
from governance.models import CONFIGURE_ROLES, Policy, Workspace
from governance.review_models import ChangeProposal, ProposalStatus
from governance.selectors import workspaces_for_user
from integrations.models import CrmCall

WRITE_OPERATIONS = ("update", "update_many", "create")
# integrations/record_access.py refuses with this code before any request leaves.
OWN_RECORD_ACCESS_CODE = "RECORD_ACCESS"
# Seconds from approval (a reviewer's, or the policy's when applied automatically) to written.
LATENCY_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86400.0)
INDEX_WINDOW = timedelta(days=7)
# Audit actions of work failed for good after a CRM or model outage (crm_agents/reconcile.py).
GAVE_UP_ACTIONS = ("run.gave_up", "apply.gave_up")
INDEX_PROPOSAL_STATUSES = (
    ProposalStatus.APPLIED,
    ProposalStatus.PENDING,
    ProposalStatus.REJECTED,
    ProposalStatus.CONFLICT,
    ProposalStatus.DENIED,
)


# --- the counts ------------------------------------------------------------------------------
def _write_totals() -> dict[str, Count]:
    denied = Q(outcome="PermissionDenied")
    own = denied & Q(error__contains=OWN_RECORD_ACCESS_CODE)
    return {
        "writes": Count("pk"),
        "own": Count("pk", filter=own),
        "misses": Count("pk", filter=denied & ~own),
    }


def _sent_and_misses(totals: dict) -> tuple[int, int]:
    return totals["writes"] - totals["own"], totals["misses"]


def write_counts(calls: QuerySet[CrmCall]) -> tuple[int, int]:
    """(write requests sent, of which refused by the CRM for permissions)."""
    return _sent_and_misses(
        calls.filter(operation__in=WRITE_OPERATIONS).aggregate(**_write_totals())
    )


def violation_share(sent: int, misses: int) -> float:
    return misses / sent if sent else 0.0


def apply_latency() -> tuple[list[tuple[str, int]], float]:
    """Cumulative histogram buckets and the sum in seconds, over every applied proposal."""
    latency = ExpressionWrapper(
        F("applied_at") - Coalesce("decided_at", "change_set__created_at"),
        output_field=DurationField(),
    )
    buckets = {
        f"le_{index}": Count("pk", filter=Q(latency__lte=timedelta(seconds=bound)))
        for index, bound in enumerate(LATENCY_BUCKETS)
    }
    totals = (
        ChangeProposal.objects.filter(applied_at__isnull=False, change_set__is_test=False)
        .annotate(latency=latency)
        .aggregate(count=Count("pk"), total=Sum("latency"), **buckets)
    )
    rows = [(str(bound), totals[f"le_{i}"]) for i, bound in enumerate(LATENCY_BUCKETS)]
    rows.append(("+Inf", totals["count"]))
    total = totals["total"]
    return rows, total.total_seconds() if total is not None else 0.0


class StewardCollector:
    """Read at scrape time; totals are all-time (TEST runs and their proposals excluded)."""

    def collect(self):
        runs = CounterMetricFamily(
            "crm_steward_runs", "Workflow runs by status and CRM.", labels=["status", "provider"]
        )
        for row in (
            AgentRun.objects.filter(is_test=False)
            .values("status", "provider")
            .annotate(n=Count("pk"))
            .order_by("status", "provider")
        ):
            runs.add_metric([row["status"], row["provider"]], row["n"])
        yield runs

        proposals = CounterMetricFamily(
            "crm_steward_proposals", "Proposed field changes by status.", labels=["status"]
        )
        for row in (
            ChangeProposal.objects.filter(change_set__is_test=False)
            .values("status")
            .annotate(n=Count("pk"))
            .order_by("status")
        ):
            proposals.add_metric([row["status"]], row["n"])
        yield proposals

        refusals = CounterMetricFamily(
            "crm_steward_refusals",
            "Writes the guard refused (by refusal code) and model answers dropped "
            '(reason "model_output").',
            labels=["reason"],
        )
        for row in (
            AuditEvent.objects.filter(action="crm.write.denied")
            .values("context__code")
            .annotate(n=Count("pk"))
            .order_by("context__code")
        ):
            refusals.add_metric([str(row["context__code"] or "unknown")], row["n"])
        dropped = AuditEvent.objects.filter(action="model.answer.refused").count()
        refusals.add_metric(["model_output"], dropped)
        yield refusals

        buckets, total = apply_latency()
        yield HistogramMetricFamily(
            "crm_steward_apply_latency_seconds",
            "From approval (by a reviewer, or by the policy when automatic) to written.",
            buckets=buckets,
            sum_value=total,
        )

        sent, misses = write_counts(CrmCall.objects.all())
        yield CounterMetricFamily(
            "crm_steward_crm_writes", "Write requests sent to a CRM.", value=sent
        )
        yield CounterMetricFamily(
            "crm_steward_permission_violations",
            "Write requests sent that the CRM refused for permissions (guard misses).",
            value=misses,
        )
        yield GaugeMetricFamily(
            "crm_steward_permission_violations_ratio",
            "Share of write requests sent that the CRM refused for permissions; must be 0.",
            value=violation_share(sent, misses),
        )


def _scraper_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header.removeprefix("Bearer ").strip(), token)
    user = request.user
    return user.is_authenticated and user.is_active and user.is_superuser


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _scraper_allowed(request):
        response = HttpResponse("Send Authorization: Bearer <METRICS_TOKEN>.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StewardCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


# --- the admin index -------------------------------------------------------------------------
@dataclass
class WorkspaceFigures:
    workspace: Workspace
    may_control: bool
    runs: dict[str, int] = field(default_factory=dict)
    proposals: dict[str, int] = field(default_factory=dict)
    writes_sent: int = 0
    violations: int = 0
    paused_crms: list[str] = field(default_factory=list)
    running_crms: list[str] = field(default_factory=list)
    paused_workflows: int = 0
    # Owed work waiting for a CRM (or the model) to come back, the earliest next try, and
    # what was given up after failing past CRM_OUTAGE_LIMIT_SECONDS (in the window).
    waiting: int = 0
    next_try: datetime | None = None
    given_up: int = 0

    @property
    def runs_total(self) -> int:
        return sum(self.runs.values())

    @property
    def runs_by_outcome(self) -> list[tuple[str, int]]:
        labels = dict(RunStatus.choices)
        return [(labels.get(status, status), n) for status, n in sorted(self.runs.items())]

    @property
    def proposal_counts(self) -> list[tuple[str, int]]:
        return [(status.label, self.proposals.get(status, 0)) for status in INDEX_PROPOSAL_STATUSES]

    @property
    def violation_share(self) -> float:
        return violation_share(self.writes_sent, self.violations)

    @property
    def violation_percent(self) -> str:
        return f"{self.violation_share:.1%}"

    @property
    def can_pause_or_resume(self) -> bool:
        return self.may_control and bool(self.paused_crms or self.running_crms)

    @property
    def paused(self) -> bool:
        return bool(self.paused_crms) and not self.running_crms


def workspace_figures(user) -> list[WorkspaceFigures]:
    """The last 7 days of every workspace ``user`` may see, in a fixed number of queries."""
    workspaces = list(workspaces_for_user(user).order_by("name"))
    controlled = set(workspaces_for_user(user, CONFIGURE_ROLES).values_list("pk", flat=True))
    figures = {w.pk: WorkspaceFigures(w, w.pk in controlled) for w in workspaces}
    ids = list(figures)
    since = timezone.now() - INDEX_WINDOW
    for row in (
        AgentRun.objects.filter(workspace_id__in=ids, is_test=False, created_at__gte=since)
        .values("workspace_id", "status")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        figures[row["workspace_id"]].runs[row["status"]] = row["n"]
    for row in (
        ChangeProposal.objects.filter(
            workspace_id__in=ids, change_set__is_test=False, created_at__gte=since
        )
        .values("workspace_id", "status")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        figures[row["workspace_id"]].proposals[row["status"]] = row["n"]
    for row in (
        CrmCall.objects.filter(workspace_id__in=ids, at__gte=since, operation__in=WRITE_OPERATIONS)
        .values("workspace_id")
        .annotate(**_write_totals())
        .order_by()
    ):
        sent, misses = _sent_and_misses(row)
        figures[row["workspace_id"]].writes_sent, figures[row["workspace_id"]].violations = (
            sent,
            misses,
        )
    for workspace_id, provider, paused in Policy.objects.filter(workspace_id__in=ids).values_list(
        "workspace_id", "provider", "paused"
    ):
        crms = figures[workspace_id].paused_crms if paused else figures[workspace_id].running_crms
        crms.append(provider)
    for model, status in (
        (AgentRun, RunStatus.QUEUED),
        (ChangeProposal, ProposalStatus.APPROVED),
    ):
        for row in (
            model.objects.filter(workspace_id__in=ids, status=status, waiting_since__isnull=False)
            .values("workspace_id")
            .annotate(n=Count("pk"), next_try=Min("due_at"))
            .order_by()
        ):
            shown = figures[row["workspace_id"]]
            shown.waiting += row["n"]
            tries = [t for t in (shown.next_try, row["next_try"]) if t is not None]
            shown.next_try = min(tries) if tries else None
    for row in (
        AuditEvent.objects.filter(workspace_id__in=ids, at__gte=since, action__in=GAVE_UP_ACTIONS)
        .values("workspace_id")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        figures[row["workspace_id"]].given_up = row["n"]
    for row in (
        Workflow.objects.filter(workspace_id__in=ids, paused=True)
        .values("workspace_id")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        figures[row["workspace_id"]].paused_workflows = row["n"]
    return list(figures.values())


def admin_index(request: HttpRequest) -> TemplateResponse:
    """The stock admin index, with the metrics section (templates/admin/index.html)."""
    return admin.site.index(
        request,
        extra_context={
            "steward_metrics": workspace_figures(request.user),
            "steward_window_days": INDEX_WINDOW.days,
            "steward_outage_limit": owed.outage_limit(),
        },
    )
