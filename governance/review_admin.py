"""The review queue in the admin: change sets listed for triage, and a change page where
RevOps accepts, rejects or edits each proposed field. Every decision is a POST to
``review_view``, which calls a service of governance/review.py (or crm_agents.services for
a choice of record) and redirects back with a message."""

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.timesince import timesince

from crm_agents.models import AgentRun
from governance import review
from governance.admin_filters import IndexedValuesListFilter
from governance.admin_scoping import WorkspaceScopedAdmin
from governance.crm_links import attach_record_urls, connections_by_account, record_url
from governance.models import CONFIGURE_ROLES
from governance.review_models import ChangeProposal, ChangeSet, ProposalStatus, SetStatus
from governance.rollback import RollbackError, do_rollback, preview_rollback


@dataclass(frozen=True)
class ProposalRow:
    proposal: ChangeProposal
    time_in_call: str
    decidable: bool  # pending, and the viewer may decide
    resolvable: bool  # a conflict, and the viewer may decide


@dataclass(frozen=True)
class Landing:
    """A decision's message, and the page to go to instead of the set decided on."""

    message: str
    url: str


@dataclass(frozen=True)
class CandidateRow:
    id: str
    name: str
    score: float | None
    reasons: list[str]
    url: str | None


def time_in_call(seconds: float | None) -> str:
    if seconds is None:
        return ""
    whole = max(int(seconds), 0)
    return f"{whole // 60:02d}:{whole % 60:02d}"


def _optional_url(name: str, *args: object, query: dict | None = None) -> str | None:
    # Some report pages are built separately; the review page works without them.
    try:
        url = reverse(name, args=args)
    except NoReverseMatch:
        return None
    return f"{url}?{urlencode(query)}" if query else url


@admin.register(ChangeSet)
class ChangeSetAdmin(WorkspaceScopedAdmin):
    add_roles = frozenset()
    change_roles = frozenset()
    list_display = [
        "crm",
        "record",
        "call",
        "workflow",
        "field_count",
        "confidence",
        "status",
        "age",
    ]
    list_display_links = ["status"]
    list_filter = [
        "status",
        ("workflow_label", IndexedValuesListFilter),
        "provider",
        ("owner_email", IndexedValuesListFilter),
        "is_test",
        "workspace",
    ]
    search_fields = ["record_name", "call_title"]
    list_select_related = ["workspace"]
    # A full COUNT over every change set is the slowest query of a large queue.
    show_full_result_count = False
    change_form_template = "admin/governance/changeset/change_form.html"
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "workspace",
                    ("provider", "object_type", "operation"),
                    ("record_name", "record_id"),
                    ("call_title", "call_started_at"),
                    ("workflow_label", "owner_email"),
                    "requested_by",
                    ("status", "is_test"),
                    ("field_count", "lowest_confidence"),
                ]
            },
        ),
        (
            "Decision and apply",
            {
                "fields": [
                    ("decided_by", "decided_at"),
                    "reject_reason",
                    ("read_at", "record_modified_at"),
                    ("applied_at", "created_at"),
                ]
            },
        ),
    ]
    readonly_fields = [f.name for f in ChangeSet._meta.fields]
    actions = ["approve"]

    # --- the list ----------------------------------------------------------------------------
    @admin.display(description="CRM", ordering="provider")
    def crm(self, obj: ChangeSet) -> str:
        return obj.get_provider_display()

    @admin.display(description="record", ordering="record_name")
    def record(self, obj: ChangeSet) -> str:
        name = obj.record_name or obj.record_id or "(new record)"
        url = getattr(obj, "crm_url", None)
        label = (
            format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, name)
            if url
            else name
        )
        test = format_html('<strong class="test-label">{}</strong> ', "TEST") if obj.is_test else ""
        return format_html("{}{} ({})", test, label, obj.get_object_type_display())

    @admin.display(description="call", ordering="call_title")
    def call(self, obj: ChangeSet) -> str:
        return obj.call_title

    @admin.display(description="workflow", ordering="workflow_label")
    def workflow(self, obj: ChangeSet) -> str:
        return obj.workflow_label

    @admin.display(description="lowest confidence", ordering="lowest_confidence")
    def confidence(self, obj: ChangeSet) -> str:
        return "—" if obj.lowest_confidence is None else f"{obj.lowest_confidence:.0%}"

    @admin.display(description="age", ordering="-created_at")
    def age(self, obj: ChangeSet) -> str:
        return timesince(obj.created_at, depth=1)

    def get_changelist_instance(self, request: HttpRequest):
        changelist = super().get_changelist_instance(request)
        # One query for the CRM links of the whole page (iterating fills the page's cache).
        attach_record_urls(changelist.result_list)
        return changelist

    def has_decide_permission(self, request: HttpRequest, obj: ChangeSet | None = None) -> bool:
        return self._allowed(request, CONFIGURE_ROLES, obj)

    @admin.action(description="Approve the selected change sets", permissions=["decide"])
    def approve(self, request: HttpRequest, queryset: QuerySet) -> None:
        done = 0
        for change_set in queryset:
            if not self._allowed(request, CONFIGURE_ROLES, change_set):
                continue
            try:
                review.do_approve_change_set(change_set, actor=request.user)
            except review.ReviewError as exc:
                self.message_user(request, f"{change_set}: {exc}", messages.WARNING)
            else:
                done += 1
        self.message_user(request, f"{done} change set(s) approved.", messages.SUCCESS)

    # --- the change page ---------------------------------------------------------------------
    def render_change_form(
        self,
        request: HttpRequest,
        context: dict,
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: ChangeSet | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context.update(self._review_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _review_context(self, request: HttpRequest, change_set: ChangeSet) -> dict:
        may_decide = self._allowed(request, CONFIGURE_ROLES, change_set)
        can_decide = may_decide and not change_set.is_test
        needs_choice = change_set.status == SetStatus.NEEDS_CHOICE
        question = needs_choice or change_set.status == SetStatus.CHOSEN
        proposals = list(change_set.proposals.order_by("pk"))
        rows = [
            ProposalRow(
                proposal=p,
                time_in_call=time_in_call(p.evidence_start),
                decidable=can_decide and p.status == ProposalStatus.PENDING,
                resolvable=can_decide and p.status == ProposalStatus.CONFLICT,
            )
            for p in proposals
        ]
        connection = connections_by_account([change_set]).get(
            (change_set.workspace_id, change_set.provider)
        )

        def url_of(record_id: str) -> str | None:
            if connection is None:
                return None
            return record_url(
                change_set.provider,
                change_set.object_type,
                record_id,
                account_id=connection.crm_account_id,
                base_url=connection.api_base_url,
            )

        # Only what the page shows: a run also holds its prompt and the model's answer.
        runs = AgentRun.objects.filter(pk=change_set.run_id).only("call_id", "candidates")
        run = runs.first() if change_set.run_id else None
        candidates = []
        if question and run is not None:
            ranked = sorted(run.candidates or [], key=lambda c: -(c.get("score") or 0))
            candidates = [
                CandidateRow(
                    id=str(c["id"]),
                    name=c.get("name") or str(c["id"]),
                    score=c.get("score"),
                    reasons=list(c.get("reasons") or []),
                    url=url_of(str(c["id"])),
                )
                for c in ranked
            ]
        applied = [p.pk for p in proposals if p.status == ProposalStatus.APPLIED]
        # What a rollback would restore, shown before the button that does it.
        rollback_lines = (
            [line for line in preview_rollback(change_set, applied) if line.possible]
            if can_decide and applied
            else []
        )
        return {
            "proposal_rows": rows,
            "rollback_lines": rollback_lines,
            "can_decide": can_decide,
            "set_controls": can_decide and not needs_choice and any(row.decidable for row in rows),
            "can_choose": may_decide and needs_choice,
            "candidates": candidates,
            "waiting_runs": list(
                change_set.waiting_runs.exclude(pk=change_set.run_id).order_by("pk")
            )
            if needs_choice
            else [],
            "resulting_sets": self._resulting_sets(change_set) if question else [],
            "crm_url": url_of(change_set.record_id),
            "summary_url": run and _optional_url("admin:audit_call_summary", run.call_id),
            "audit_url": change_set.record_id
            and _optional_url(
                "admin:audit_auditevent_changelist", query={"record_id": change_set.record_id}
            ),
            "review_url": reverse("admin:governance_changeset_review", args=[change_set.pk]),
        }

    @staticmethod
    def _resulting_sets(change_set: ChangeSet) -> list[tuple[ChangeSet, str]]:
        from crm_agents.questions import resulting_change_sets

        return [
            (one, reverse("admin:governance_changeset_change", args=[one.pk]))
            for one in resulting_change_sets(change_set)
        ]

    # --- the decisions -----------------------------------------------------------------------
    def get_urls(self) -> list:
        review_path = path(
            "<path:object_id>/review/",
            self.admin_site.admin_view(self.review_view),
            name="governance_changeset_review",
        )
        return [review_path, *super().get_urls()]

    def review_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        change_set = self.get_object(request, unquote(object_id))  # outsiders: 404
        if not self._allowed(request, CONFIGURE_ROLES, change_set):
            raise PermissionDenied("Only RevOps and workspace admins decide on changes.")
        handler = self._decisions().get(request.POST.get("action", ""))
        if handler is None:
            raise Http404("No such decision.")
        url = reverse("admin:governance_changeset_change", args=[change_set.pk])
        try:
            done = handler(request, change_set)
        except review.ReviewError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            if isinstance(done, Landing):
                done, url = done.message, done.url
            self.message_user(request, done, messages.SUCCESS)
        return redirect(url)

    def _decisions(self) -> dict[str, Callable[[HttpRequest, ChangeSet], str | Landing]]:
        return {
            "approve": self._decide_field,
            "reject": self._decide_field,
            "edit": self._decide_field,
            "approve_all": self._approve_all,
            "reject_all": self._reject_all,
            "repropose": self._repropose,
            "dismiss": self._dismiss,
            "choose": self._choose,
            "rollback": self._rollback,
            "rollback_all": self._rollback,
        }

    @staticmethod
    def _proposal(request: HttpRequest, change_set: ChangeSet) -> ChangeProposal:
        proposal_id = request.POST.get("proposal", "")
        proposal = (
            change_set.proposals.filter(pk=proposal_id).first() if proposal_id.isdigit() else None
        )
        if proposal is None:
            raise Http404("No such proposal in this change set.")
        return proposal

    def _decide_field(self, request: HttpRequest, change_set: ChangeSet) -> str:
        action = request.POST["action"]
        proposal = review.do_decide_proposal(
            self._proposal(request, change_set),
            action,
            actor=request.user,
            reason=request.POST.get("reason", ""),
            value=request.POST.get("value"),
        )
        label = proposal.label or proposal.field
        if action == "reject":
            return f"{label}: rejected."
        if action == "edit":
            return f"{label}: edited to {proposal.edited_value!r} and approved."
        return f"{label}: approved."

    def _approve_all(self, request: HttpRequest, change_set: ChangeSet) -> str:
        review.do_approve_change_set(change_set, actor=request.user)
        return "Every pending change of this set is approved."

    def _reject_all(self, request: HttpRequest, change_set: ChangeSet) -> str:
        reason = request.POST.get("reason", "")
        review.do_reject_change_set(change_set, actor=request.user, reason=reason)
        return "Every pending change of this set is rejected."

    def _repropose(self, request: HttpRequest, change_set: ChangeSet) -> str:
        fresh = review.do_repropose_conflict(
            self._proposal(request, change_set), actor=request.user
        )
        return f"{fresh.label or fresh.field}: proposed again, waiting for review."

    def _dismiss(self, request: HttpRequest, change_set: ChangeSet) -> str:
        proposal = review.do_dismiss_conflict(
            self._proposal(request, change_set), actor=request.user
        )
        return f"{proposal.label or proposal.field}: dismissed; the CRM keeps its value."

    def _rollback(self, request: HttpRequest, change_set: ChangeSet) -> str:
        if request.POST["action"] == "rollback":
            ids = [self._proposal(request, change_set).pk]
        else:  # the set's applied fields (and any rollback left under way)
            rolling = [ProposalStatus.APPLIED, ProposalStatus.ROLLING_BACK]
            ids = list(change_set.proposals.filter(status__in=rolling).values_list("pk", flat=True))
            if not ids:
                raise review.ReviewError("Nothing applied in this change set to roll back.")
        try:
            lines = do_rollback(change_set, actor=request.user, proposal_ids=ids)
        except RollbackError as exc:
            raise review.ReviewError(str(exc)) from exc
        said = "; ".join(f"{line.field}: {line.reason}" for line in lines)
        if not any(line.possible for line in lines):
            raise review.ReviewError(f"Nothing was rolled back. {said}")
        return f"Rolled back. {said}"

    def _choose(self, request: HttpRequest, change_set: ChangeSet) -> Landing:
        """One answer for the call: the reviewer lands on the change set it produced (at
        once when runs are processed in-process), else on the call's summary, where the
        continued runs show how far they got and link to their sets when done."""
        from crm_agents.services import do_choose_record

        try:
            runs = do_choose_record(
                change_set, request.POST.get("record_id", ""), actor=request.user
            )
        except ValueError as exc:
            raise review.ReviewError(str(exc)) from exc
        change_set.refresh_from_db()
        name = change_set.record_name or change_set.record_id
        said = f"Record chosen: {name}, for {len(runs)} workflow(s) of this call."
        resulting = self._resulting_sets(change_set)
        if resulting:
            others = [
                format_html('<a href="{}">{}</a>', url, one.workflow_label)
                for one, url in resulting[1:]
            ]
            message = format_html("{} Here are the changes it produced.", said)
            if others:
                links = format_html_join(", ", "{}", ((link,) for link in others))
                message = format_html("{} More from {}.", message, links)
            return Landing(message, resulting[0][1])
        summary = runs and _optional_url("admin:audit_call_summary", runs[0].call_id)
        if summary:
            return Landing(f"{said} They are running on it: their changes appear here.", summary)
        return Landing(said, reverse("admin:governance_changeset_change", args=[change_set.pk]))
