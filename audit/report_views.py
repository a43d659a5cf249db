"""The report pages, served inside the admin site (see AuditEventAdmin.get_urls).

Each view checks access first (outsiders get the same 404 as for a missing id), then asks
audit.reports for the content.
"""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse

from audit import reports
from audit.models import AuditEvent
from crm_agents.models import Call
from governance.models import CrmProvider, Workspace
from governance.selectors import access_workspace_by_id, workspaces_for_user

TEMPLATES = "admin/audit/reports"


def _render(request: HttpRequest, template: str, title: str, **context: object) -> TemplateResponse:
    """The page inside the admin's chrome: header, sidebar (``opts`` marks where), title."""
    context = {
        **admin.site.each_context(request),
        "opts": AuditEvent._meta,
        "title": title,
        **context,
    }
    return TemplateResponse(request, f"{TEMPLATES}/{template}", context)


def _get_call_for_user(request: HttpRequest, call_id: int) -> Call:
    calls = Call.objects.filter(workspace__in=workspaces_for_user(request.user))
    return get_object_or_404(calls.select_related("workspace", "owner"), pk=call_id)


def _workspaces_for_request(request: HttpRequest) -> QuerySet[Workspace]:
    """The user's workspaces, or the one ``?workspace=<id>`` names (404 if not theirs)."""
    workspace_id = request.GET.get("workspace", "")
    if not workspace_id:
        return workspaces_for_user(request.user)
    if not workspace_id.isdigit():
        raise Http404("No such workspace.")
    workspace = access_workspace_by_id(request.user, int(workspace_id))
    return Workspace.objects.filter(pk=workspace.pk)


def call_summary(request: HttpRequest, call_id: int) -> TemplateResponse:
    call = _get_call_for_user(request, call_id)
    title = f"TEST · Post-call summary: {call}" if call.is_test else f"Post-call summary: {call}"
    summary = reports.call_summary(call)
    return _render(request, "call_summary.html", title, call=call, summary=summary, opts=Call._meta)


def workflow_tracking(request: HttpRequest) -> TemplateResponse:
    choices = list(workspaces_for_user(request.user).order_by("name"))
    if not choices:
        raise Http404("You have no workspace.")
    workspaces = _workspaces_for_request(request)
    provider = request.GET.get("provider", "")
    if provider not in CrmProvider.values:
        provider = ""
    return _render(
        request,
        "workflow_tracking.html",
        "Workflow tracking",
        rows=reports.workflow_tracking(workspaces, provider=provider),
        workspaces=choices,
        providers=CrmProvider.choices,
        selected_workspace=request.GET.get("workspace", ""),
        selected_provider=provider,
    )


def field_history(request: HttpRequest) -> TemplateResponse:
    provider, object_type, record_id, native_field = (
        request.GET.get(name, "").strip()
        for name in ("provider", "object_type", "record_id", "field")
    )
    if not (provider and record_id and native_field):
        raise Http404("Say which record and field: provider, record_id and field.")
    history = reports.field_history(
        _workspaces_for_request(request),
        provider=provider,
        object_type=object_type,
        record_id=record_id,
        native_field=native_field,
    )
    if not history.entries:  # nothing of it in the user's workspaces: same as not existing
        raise Http404("No changes to that field in your workspaces.")
    return _render(
        request,
        "field_history.html",
        f"History of {native_field} on {history.record_name or record_id}",
        history=history,
        provider=provider,
        object_type=object_type,
        record_id=record_id,
        native_field=native_field,
    )
