from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    StreamingHttpResponse,
)
from django.urls import URLPattern, path
from django.utils import timezone

from audit import exports
from audit.models import AuditEvent
from governance.admin_scoping import WorkspaceScopedAdmin
from governance.models import CONFIGURE_ROLES

EXPORT_FORMATS = {
    "csv": ("text/csv; charset=utf-8", exports.csv_lines),
    "json": ("application/json", exports.json_chunks),
}


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
    list_filter = ["action", "outcome", "crm", "actor_kind", "scope", "workspace"]
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
        return [export, *super().get_urls()]

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
