"""RevOps' admin for calls, workflows and runs. Runs are records of what happened and are
read-only; workflows are configured here (pick fields, write one instruction each)."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from crm_agents.models import AgentRun, Call, FieldRule, Workflow
from governance.admin_scoping import WorkspaceScopedAdmin
from governance.models import CONFIGURE_ROLES


class FieldRuleInline(admin.TabularInline):
    model = FieldRule
    extra = 1
    fields = [
        "order",
        "field",
        "instruction",
        "write_mode",
        "read_dependencies",
        "review_override",
        "paused",
    ]


@admin.register(Workflow)
class WorkflowAdmin(WorkspaceScopedAdmin):
    list_display = [
        "name",
        "workspace",
        "provider",
        "object_type",
        "enabled",
        "paused",
        "dry_run",
        "no_match",
    ]
    list_filter = ["provider", "object_type", "enabled", "paused", "dry_run", "workspace"]
    search_fields = ["name", "key"]
    list_select_related = ["workspace"]
    inlines = [FieldRuleInline]
    fieldsets = [
        (None, {"fields": ["workspace", "name", "key", "provider", "object_type", "template"]}),
        (
            "When it runs",
            {
                "fields": [
                    "trigger_external_attendees",
                    "trigger_title_contains",
                    "trigger_min_duration_s",
                    "trigger_owner_team",
                    "no_match",
                ]
            },
        ),
        ("Switches", {"fields": ["enabled", "paused", "dry_run"]}),
    ]
    readonly_fields = ["template"]

    def save_formset(self, request, form, formset, change):
        # A rule belongs to its workflow's workspace; the form does not offer another.
        for rule in formset.save(commit=False):
            rule.workspace = form.instance.workspace
            rule.save()
        for rule in formset.deleted_objects:
            rule.delete()


@admin.register(Call)
class CallAdmin(WorkspaceScopedAdmin):
    add_roles = frozenset()
    change_roles = frozenset()
    list_display = [
        "title",
        "workspace",
        "started_at",
        "duration_s",
        "owner_email",
        "source",
        "external_id",
    ]
    list_filter = ["source", "workspace"]
    search_fields = ["title", "external_id", "owner_email"]
    list_select_related = ["workspace"]
    readonly_fields = [f.name for f in Call._meta.fields]
    date_hierarchy = "started_at"


@admin.register(AgentRun)
class AgentRunAdmin(WorkspaceScopedAdmin):
    add_roles = frozenset()
    change_roles = frozenset()
    list_display = [
        "__str__",
        "status",
        "record_name",
        "match_confidence",
        "crm_requests",
        "created_at",
    ]
    list_filter = ["status", "is_test", "provider", "workspace"]
    search_fields = ["call__title", "record_name", "workflow_label"]
    list_select_related = ["call", "workspace"]
    readonly_fields = [f.name for f in AgentRun._meta.fields]
    actions = ["rerun"]

    @admin.action(description="Run again (failed runs only)", permissions=["view"])
    def rerun(self, request: HttpRequest, queryset: QuerySet) -> None:
        from crm_agents import tasks
        from crm_agents.models import RunStatus

        allowed = [run for run in queryset if self._allowed(request, CONFIGURE_ROLES, run)]
        count = 0
        for run in allowed:
            if AgentRun.objects.filter(pk=run.pk, status=RunStatus.FAILED).update(
                status=RunStatus.QUEUED, error=""
            ):
                tasks.run_workflow.delay(run.pk)
                count += 1
        self.message_user(request, f"{count} failed run(s) queued again.", messages.SUCCESS)
