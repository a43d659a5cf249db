"""The review queue in the admin: change sets with their proposals, and the decisions."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from governance import review
from governance.admin_scoping import WorkspaceScopedAdmin
from governance.models import CONFIGURE_ROLES
from governance.review_models import ChangeProposal, ChangeSet


class ChangeProposalInline(admin.TabularInline):
    model = ChangeProposal
    extra = 0
    can_delete = False
    fields = [
        "field",
        "current_value",
        "proposed_value",
        "edited_value",
        "evidence",
        "evidence_start",
        "confidence",
        "write_mode",
        "status",
        "status_reason",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ChangeSet)
class ChangeSetAdmin(WorkspaceScopedAdmin):
    add_roles = frozenset()
    change_roles = frozenset()
    list_display = [
        "__str__",
        "provider",
        "call_title",
        "workflow_label",
        "field_count",
        "lowest_confidence",
        "status",
        "is_test",
        "created_at",
    ]
    list_filter = ["status", "provider", "is_test", "workflow_label", "workspace"]
    search_fields = ["record_name", "call_title"]
    list_select_related = ["workspace"]
    readonly_fields = [f.name for f in ChangeSet._meta.fields]
    inlines = [ChangeProposalInline]
    actions = ["approve"]

    @admin.action(description="Approve the selected change sets", permissions=["view"])
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
