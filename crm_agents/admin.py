"""RevOps' admin for calls, workflows and runs. Runs are records of what happened and are
read-only; workflows are configured here (pick fields, write one instruction each)."""

import difflib

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from crm_agents.configuration import (
    RULE_FIELDS,
    WORKFLOW_FIELDS,
    do_create_field_rule,
    do_create_workflow,
    do_delete_field_rule,
    do_delete_workflow,
    do_update_field_rule,
    do_update_workflow,
)
from crm_agents.controls import (
    do_pause_workflow,
    do_pause_workspace,
    do_resume_workflow,
    do_resume_workspace,
)
from crm_agents.models import AgentRun, Call, CallMatch, CallSource, FieldRule, Workflow
from crm_agents.services import triggers
from crm_agents.test_runs import PastedCallForm, do_test_workflow, do_test_workflow_on_transcript
from crm_agents.workflow_templates import TEMPLATES, do_create_workflow_from_template
from governance.admin_scoping import WorkspaceScopedAdmin, _workspace_ids
from governance.models import CONFIGURE_ROLES, CrmProperty, CrmProvider, Workspace
from governance.selectors import access_workspace_by_id
from integrations.crm.profiles import PROFILES


class FieldRuleFormSet(BaseInlineFormSet):
    """A rule must name a property the CRM has: a typo is caught here, with suggestions,
    rather than at the first call."""

    def clean(self) -> None:
        super().clean()
        workflow = self.instance
        if not workflow.workspace_id or not workflow.provider:
            return
        known = set(
            CrmProperty.objects.filter(
                workspace_id=workflow.workspace_id,
                provider=workflow.provider,
                object_type=workflow.object_type,
                missing=False,
            ).values_list("name", flat=True)
        )
        if not known:
            return  # not connected yet: nothing to check against
        profile = PROFILES[workflow.provider]
        for form in self.forms:
            if not getattr(form, "cleaned_data", None) or form.cleaned_data.get("DELETE"):
                continue
            for name in [form.cleaned_data.get("field"), *_dependencies(form)]:
                if not name:
                    continue
                native = profile.native_field(workflow.object_type, name)
                if native not in known:
                    close = difflib.get_close_matches(native, sorted(known), n=3)
                    hint = f" Did you mean {', '.join(close)}?" if close else ""
                    form.add_error(
                        "field" if name == form.cleaned_data.get("field") else "read_dependencies",
                        f"The CRM has no {workflow.object_type} property {native!r}.{hint}",
                    )


def _dependencies(form) -> list[str]:
    value = form.cleaned_data.get("read_dependencies") or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        form.add_error(
            "read_dependencies", ValidationError('A list of field names, e.g. ["stage"].')
        )
        return []
    return value


class FieldRuleInline(admin.TabularInline):
    """Rules follow their workflow's permissions (roles in its workspace), not Django's
    global model permissions."""

    model = FieldRule
    formset = FieldRuleFormSet
    extra = 1

    def _parent(self) -> WorkspaceScopedAdmin:
        return self.admin_site._registry[Workflow]

    def has_view_permission(self, request, obj=None) -> bool:
        return self._parent().has_view_permission(request, obj)

    def has_add_permission(self, request, obj=None) -> bool:
        parent = self._parent()
        if obj is None:
            return parent.has_add_permission(request)
        return parent.has_change_permission(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        parent = self._parent()
        return (
            parent.has_change_permission(request, obj)
            if obj
            else parent.has_add_permission(request)
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.has_change_permission(request, obj)

    fields = [
        "order",
        "field",
        "instruction",
        "write_mode",
        "read_dependencies",
        "review_override",
        "paused",
    ]


class FromTemplateForm(forms.Form):
    workspace = forms.ModelChoiceField(queryset=Workspace.objects.none())
    provider = forms.ChoiceField(choices=CrmProvider.choices, label="CRM")
    template = forms.ChoiceField(choices=[(key, t.name) for key, t in TEMPLATES.items()])

    def clean(self):
        data = super().clean()
        workspace, provider, key = (data.get(n) for n in ("workspace", "provider", "template"))
        if workspace and provider and key:
            exists = Workflow.objects.filter(workspace=workspace, provider=provider, key=key)
            if exists.exists():
                raise forms.ValidationError(
                    f"{workspace} already has the {TEMPLATES[key].name} workflow on "
                    f"{CrmProvider(provider).label}: edit that one instead."
                )
        return data


class PastCallForm(forms.Form):
    call = forms.ModelChoiceField(queryset=Call.objects.none(), empty_label=None)


RECENT_CALLS = 50


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
    actions = ["pause_workflows", "resume_workflows", "test_on_past_call"]

    def get_urls(self):
        def route(pattern: str, function, name: str):
            view = self.admin_site.admin_view(function)
            return path(pattern, view, name=f"crm_agents_workflow_{name}")

        extra = [
            route("from-template/", self.from_template_view, "from_template"),
            route("<int:workflow_id>/test/", self.test_past_call_view, "test"),
            route("<int:workflow_id>/test/paste/", self.test_paste_view, "test_paste"),
            route("test-runs/<int:run_id>/", self.test_result_view, "test_result"),
            route(
                "pause-workspace/<int:workspace_id>/",
                self.pause_workspace_view,
                "pause_workspace",
            ),
        ]
        return extra + super().get_urls()

    # --- pause and resume ------------------------------------------------------------------
    @admin.action(description="Pause the selected workflows", permissions=["change"])
    def pause_workflows(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._switch(request, queryset, do_pause_workflow, "paused")

    @admin.action(description="Resume the selected workflows", permissions=["change"])
    def resume_workflows(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._switch(request, queryset, do_resume_workflow, "resumed")

    def _switch(self, request: HttpRequest, queryset: QuerySet, service, verb: str) -> None:
        allowed = [wf for wf in queryset if self._allowed(request, self.change_roles, wf)]
        changed = sum(service(workflow, actor=request.user) for workflow in allowed)
        self.message_user(request, f"{changed} workflow(s) {verb}.", messages.SUCCESS)

    def pause_workspace_view(self, request: HttpRequest, workspace_id: int) -> HttpResponse:
        """Pause or resume everything in a workspace (the buttons on the admin index)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        workspace = access_workspace_by_id(request.user, workspace_id, self.change_roles)
        action = request.POST.get("action")
        if action == "pause":
            crms = do_pause_workspace(workspace, actor=request.user)
            text = f"Paused {workspace}: nothing is sent to {', '.join(crms) or 'its CRMs'}."
        elif action == "resume":
            crms = do_resume_workspace(workspace, actor=request.user)
            text = f"Resumed {workspace} ({', '.join(crms) or 'nothing was paused'})."
        else:
            self.message_user(request, "Choose pause or resume.", messages.ERROR)
            return redirect("admin:index")
        self.message_user(request, text, messages.SUCCESS)
        return redirect("admin:index")

    # --- workflow tests ----------------------------------------------------------------------
    @admin.action(description="Test on a past call… (nothing is written)", permissions=["change"])
    def test_on_past_call(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one workflow to test.", messages.WARNING)
            return None
        return redirect(reverse("admin:crm_agents_workflow_test", args=[queryset.get().pk]))

    def _workflow_to_test(self, request: HttpRequest, workflow_id: int) -> Workflow:
        workflow = self.get_object(request, str(workflow_id))  # 404 outside the user's workspaces
        if not self.has_change_permission(request, workflow):
            raise PermissionDenied
        return workflow

    def _test_context(self, request: HttpRequest, workflow: Workflow, **extra) -> dict:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "workflow": workflow,
            **extra,
        }

    def test_past_call_view(self, request: HttpRequest, workflow_id: int) -> HttpResponse:
        workflow = self._workflow_to_test(request, workflow_id)
        calls = Call.objects.filter(workspace=workflow.workspace).exclude(source=CallSource.TEST)
        form = PastCallForm(request.POST or None)
        form.fields["call"].queryset = calls
        if request.method == "POST" and form.is_valid():
            run = do_test_workflow(workflow, form.cleaned_data["call"], actor=request.user)
            return redirect(reverse("admin:crm_agents_workflow_test_result", args=[run.pk]))
        context = self._test_context(
            request,
            workflow,
            form=form,
            calls=calls[:RECENT_CALLS],
            title=f"TEST {workflow.name} on a past call",
        )
        return TemplateResponse(request, "admin/crm_agents/workflow/test_past_call.html", context)

    def test_paste_view(self, request: HttpRequest, workflow_id: int) -> HttpResponse:
        workflow = self._workflow_to_test(request, workflow_id)
        form = PastedCallForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            run = do_test_workflow_on_transcript(workflow, form.call_in, actor=request.user)
            return redirect(reverse("admin:crm_agents_workflow_test_result", args=[run.pk]))
        context = self._test_context(
            request, workflow, form=form, title=f"TEST {workflow.name} on a pasted transcript"
        )
        return TemplateResponse(request, "admin/crm_agents/workflow/test_paste.html", context)

    def test_result_view(self, request: HttpRequest, run_id: int) -> HttpResponse:
        runs = AgentRun.objects.select_related("call", "workflow", "workspace")
        if not request.user.is_superuser:
            runs = runs.filter(workspace_id__in=_workspace_ids(request, self.view_roles))
        run = get_object_or_404(runs, pk=run_id, is_test=True)
        change_sets = run.change_sets.prefetch_related("proposals").order_by("pk")
        workflow = run.workflow
        context = self._test_context(
            request,
            workflow,
            run=run,
            change_sets=change_sets,
            not_triggered=triggers(workflow, run.call) if workflow else None,
            left_out=[d for d in run.decisions or [] if isinstance(d, dict) and d.get("reason")],
            may_test=workflow is not None and self.has_change_permission(request, workflow),
            title=f"TEST result: {run.workflow_label} on {run.call}",
        )
        return TemplateResponse(request, "admin/crm_agents/workflow/test_result.html", context)

    def from_template_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = FromTemplateForm(request.POST or None)
        workspaces = Workspace.objects.all()
        if not request.user.is_superuser:
            workspaces = workspaces.filter(pk__in=_workspace_ids(request, self.add_roles))
        form.fields["workspace"].queryset = workspaces
        if request.method == "POST" and form.is_valid():
            workflow = do_create_workflow_from_template(
                form.cleaned_data["workspace"],
                form.cleaned_data["provider"],
                form.cleaned_data["template"],
                actor=request.user,
            )
            self.message_user(
                request,
                f"Created {workflow.name} with {workflow.rules.count()} field rules; "
                "adjust the instructions if you like.",
                messages.SUCCESS,
            )
            return redirect(reverse("admin:crm_agents_workflow_change", args=[workflow.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "form": form,
            "templates": list(TEMPLATES.values()),
            "title": "Add a workflow from a template",
        }
        return TemplateResponse(request, "admin/crm_agents/workflow/from_template.html", context)

    # --- saving: every change goes through crm_agents.configuration, which audits it ------
    def get_readonly_fields(self, request: HttpRequest, obj: Workflow | None = None) -> list:
        # A workflow stays in its workspace: its rules, runs and audit trail are there.
        return [*self.readonly_fields, "workspace"] if obj is not None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Workflow, form, change: bool) -> None:
        if not self._allowed(request, self.change_roles if change else self.add_roles, obj):
            raise PermissionDenied("You cannot save workflows in that workspace.")
        if change:
            changes = {name: getattr(obj, name) for name in form.changed_data}
            do_update_workflow(obj, _configurable(changes, WORKFLOW_FIELDS), actor=request.user)
            return
        values = {name: getattr(obj, name) for name in WORKFLOW_FIELDS}
        created = do_create_workflow(obj.workspace, values, actor=request.user)
        # The admin goes on with this instance (the rules' formset, the redirect).
        obj.pk, obj.created_at, obj.updated_at = created.pk, created.created_at, created.updated_at
        obj._state.adding, obj._state.db = False, created._state.db

    def delete_model(self, request: HttpRequest, obj: Workflow) -> None:
        do_delete_workflow(obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for workflow in queryset:
            do_delete_workflow(workflow, actor=request.user)

    def save_formset(self, request, form, formset, change) -> None:
        if formset.model is not FieldRule:
            super().save_formset(request, form, formset, change)
            return
        formset.save(commit=False)  # sorts the forms into new, changed and deleted rules
        # Deletions first, so a rule can be replaced by a new one for the same field.
        for rule in formset.deleted_objects:
            do_delete_field_rule(rule, actor=request.user)
        for rule, fields in formset.changed_objects:
            changes = {name: getattr(rule, name) for name in fields}
            do_update_field_rule(rule, _configurable(changes, RULE_FIELDS), actor=request.user)
        formset.new_objects = [
            do_create_field_rule(
                form.instance,
                {name: getattr(rule, name) for name in RULE_FIELDS},
                actor=request.user,
            )
            for rule in formset.new_objects
        ]


def _configurable(changes: dict, fields: tuple[str, ...]) -> dict:
    return {name: value for name, value in changes.items() if name in fields}


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

    @admin.action(description="Run again (failed or queued runs)", permissions=["view"])
    def rerun(self, request: HttpRequest, queryset: QuerySet) -> None:
        from crm_agents import services

        allowed = [run for run in queryset if self._allowed(request, CONFIGURE_ROLES, run)]
        count = sum(services.do_rerun(run, actor=request.user) for run in allowed)
        self.message_user(request, f"{count} run(s) queued again.", messages.SUCCESS)


@admin.register(CallMatch)
class CallMatchAdmin(WorkspaceScopedAdmin):
    """The match a call's runs share (crm_agents/call_matches.py): read-only, like runs."""

    add_roles = frozenset()
    change_roles = frozenset()
    list_display = [
        "__str__",
        "winner_name",
        "confidence",
        "ambiguous",
        "crm_requests",
        "matched_at",
    ]
    list_filter = ["provider", "object_type", "ambiguous", "workspace"]
    search_fields = ["call__title", "winner_name", "winner_id"]
    list_select_related = ["call", "workspace"]
    readonly_fields = [f.name for f in CallMatch._meta.fields]
