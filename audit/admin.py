from datetime import datetime, timedelta

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet, Subquery
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    StreamingHttpResponse,
)
from django.urls import URLPattern, path
from django.utils import timezone

from audit import exports, report_views
from audit.models import AppendOnlyQuerySet, AuditEvent
from governance.admin_filters import IndexedValuesListFilter
from governance.admin_scoping import WorkspaceScopedAdmin
from governance.models import CONFIGURE_ROLES
from governance.selectors import workspaces_for_user

EXPORT_FORMATS = {
    "csv": ("text/csv; charset=utf-8", exports.csv_lines),
    "json": ("application/json", exports.json_chunks),
}


MAX_DRILL_PERIODS = 60  # past this many candidate periods, let Django scan instead
_INSTANT = timedelta(microseconds=1)  # the resolution of stored datetimes


class DrillDownQuerySet(AppendOnlyQuerySet):
    """Events whose ``datetimes("at", …)`` probes each candidate period instead of scanning.

    The date hierarchy asks which years, months or days hold events. Django answers by
    truncating the date of every matching row: seconds for a workspace with a million
    events. Here the first and last events bound the candidates, and one query asks for
    the first event of each, which the (workspace, at) index answers from a single entry.
    """

    def datetimes(self, field_name: str, kind: str, order: str = "ASC", tzinfo=None):
        if field_name != "at" or kind not in {"year", "month", "day"} or order != "ASC":
            return super().datetimes(field_name, kind, order, tzinfo)
        ordered = self.order_by("at", "pk").values_list("pk", "at")
        first, last = ordered.first(), ordered.last()
        if first is None:
            return []
        periods = _periods(first[1], last[1], kind, tzinfo or timezone.get_current_timezone())
        if len(periods) > MAX_DRILL_PERIODS:
            return super().datetimes(field_name, kind, order, tzinfo)
        # The first event of each period rather than EXISTS, which PostgreSQL answers with
        # a sequential scan when it expects many matches; BETWEEN rather than >= and <, so
        # that beside the drill-down's own range SQLite seeks straight to the period.
        probes = {
            f"p{index}": Subquery(
                self.filter(at__range=(start, end - _INSTANT)).order_by("at").values("at")[:1]
            )
            for index, (start, end) in enumerate(periods)
        }
        found = AuditEvent.objects.filter(pk=first[0]).annotate(**probes).values_list(*probes).get()
        return [start for (start, _), hit in zip(periods, found, strict=True) if hit is not None]


def _periods(first: datetime, last: datetime, kind: str, tz) -> list[tuple[datetime, datetime]]:
    """The [start, end) years, months or days in ``tz`` from ``first``'s to ``last``'s."""
    first, last = first.astimezone(tz), last.astimezone(tz)
    start = datetime(
        first.year,
        first.month if kind != "year" else 1,
        first.day if kind == "day" else 1,
        tzinfo=tz,
    )
    periods = []
    while start <= last and len(periods) <= MAX_DRILL_PERIODS:
        if kind == "year":
            end = start.replace(year=start.year + 1)
        elif kind == "month":
            end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
        else:
            following = start.date() + timedelta(days=1)
            end = datetime(following.year, following.month, following.day, tzinfo=tz)
        periods.append((start, end))
        start = end
    return periods


class ActionListFilter(IndexedValuesListFilter):
    """The actions in the user's workspaces, found through the (workspace, action) index
    rather than by reading every event as the stock filter's DISTINCT does."""


class WorkspaceListFilter(admin.RelatedFieldListFilter):
    """The workspaces the user may read, found without reading their events (the stock
    related-only filter collects the distinct workspaces of a million events)."""

    def field_choices(self, field, request: HttpRequest, model_admin) -> list[tuple[int, str]]:
        workspaces = workspaces_for_user(request.user, model_admin.view_roles).order_by("name")
        return [(workspace.pk, str(workspace)) for workspace in workspaces]


class AuditChangeList(ChangeList):
    """The stock changelist, over events whose date drill-down probes instead of scans."""

    def get_queryset(self, request: HttpRequest, exclude_parameters=None) -> QuerySet:
        queryset = super().get_queryset(request, exclude_parameters)
        return DrillDownQuerySet(queryset.model, queryset.query, queryset.db)


@admin.register(AuditEvent)
class AuditEventAdmin(WorkspaceScopedAdmin):
    """The audit trail, read-only for everyone (superusers included), with CSV and JSON
    exports of the filtered list linked from the changelist."""

    view_roles = CONFIGURE_ROLES
    add_roles = frozenset()
    change_roles = frozenset()
    delete_roles = frozenset()
    list_display = [
        "sequence",
        "at",
        "workspace",
        "actor_label",
        "action",
        "outcome",
        "crm",
        "object_type",
        "record_id",
        "field",
        "connection_label",
    ]
    list_display_links = ["sequence", "at"]
    list_filter = [
        ("action", ActionListFilter),
        "outcome",
        "crm",
        "actor_kind",
        "scope",
        ("workspace", WorkspaceListFilter),
    ]
    search_fields = ["record_id", "field", "reason", "actor_label"]
    list_select_related = ["workspace"]
    date_hierarchy = "at"
    show_full_result_count = False  # a second COUNT(*) over millions of rows buys nothing
    # Events never change, so they keep no simple-history; the stock page says so.
    object_history_template = "admin/object_history.html"

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def get_changelist(self, request: HttpRequest, **kwargs) -> type[ChangeList]:
        return AuditChangeList

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict | None = None
    ) -> HttpResponse:
        self.get_object(request, unquote(object_id))  # the workspace check: 404 for outsiders
        return admin.ModelAdmin.history_view(self, request, object_id, extra_context)

    def get_urls(self) -> list[URLPattern]:
        export = path(
            "export/<str:fmt>/",
            self.admin_site.admin_view(self.export_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_export",
        )
        return [export, *self._report_urls(), *super().get_urls()]

    def _report_urls(self) -> list[URLPattern]:
        """The report pages (audit/report_views.py), inside the admin for its look and login."""
        view = self.admin_site.admin_view
        return [
            path(
                "reports/call/<int:call_id>/",
                view(report_views.call_summary),
                name="audit_call_summary",
            ),
            path(
                "reports/workflows/",
                view(report_views.workflow_tracking),
                name="audit_workflow_tracking",
            ),
            path(
                "reports/field-history/",
                view(report_views.field_history),
                name="audit_field_history",
            ),
        ]

    def export_view(self, request: HttpRequest, fmt: str) -> StreamingHttpResponse:
        """The changelist's rows, with its filters, search and dates, as a download."""
        if fmt not in EXPORT_FORMATS or not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest("Those filters do not apply to audit events.")
        content_type, render = EXPORT_FORMATS[fmt]
        response = StreamingHttpResponse(
            render(changelist.get_queryset(request)), content_type=content_type
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="audit-events-{stamp}.{fmt}"'
        return response
