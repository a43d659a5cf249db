"""Connect pages: connect a CRM by OAuth (or a pasted token), see and end connections.

The OAuth ``state`` is a random value kept in the session with what it was issued for
(workspace, CRM, scope, user), usable once and for ten minutes: a callback that does not
match it is refused, which is the flow's CSRF protection.
"""

import secrets
import time

from django import forms
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from governance.models import ADMIN_ROLES, ALL_ROLES, CrmProvider, Role, Workspace
from governance.selectors import access_workspace_by_id, role_in_workspace, workspaces_for_user
from integrations import oauth, services
from integrations.crm.errors import CrmError
from integrations.models import AuthKind, ConnectionScope
from integrations.selectors import (
    access_connection_by_id,
    connection_manageable_by,
    connections_visible_to,
)
from integrations.signals import send_connection_event, without_secrets

STATE_LIFETIME_SECONDS = 600
SESSION_KEY = "crm_oauth_states"


@staff_member_required
@require_GET
def connection_list(request: HttpRequest) -> HttpResponse:
    workspaces = []
    for workspace in workspaces_for_user(request.user):
        is_admin = role_in_workspace(request.user, workspace) == Role.ADMIN
        connections = connections_visible_to(request.user).filter(workspace=workspace)
        rows = []
        for provider in CrmProvider:
            mine = connections.filter(
                provider=provider, scope=ConnectionScope.USER, user=request.user
            ).first()
            shared = connections.filter(provider=provider, scope=ConnectionScope.WORKSPACE).first()
            rows.append({"provider": provider, "mine": mine, "workspace": shared})
        workspaces.append({"workspace": workspace, "is_admin": is_admin, "rows": rows})
    return render(
        request,
        "integrations/connections.html",
        {
            "title": "CRM connections",
            "workspaces": workspaces,
            "site_header": "CRM Steward",
            "has_permission": True,
        },
    )


@staff_member_required
@require_POST
def connect_start(request: HttpRequest) -> HttpResponse:
    workspace, provider, scope = _connect_target(request)
    state = secrets.token_urlsafe(32)
    states = request.session.get(SESSION_KEY, {})
    now = time.time()
    states = {
        key: value for key, value in states.items() if value["at"] > now - STATE_LIFETIME_SECONDS
    }
    states[state] = {
        "workspace": workspace.pk,
        "provider": provider,
        "scope": scope,
        "user": request.user.pk,
        "at": now,
    }
    request.session[SESSION_KEY] = states
    return HttpResponseRedirect(
        oauth.authorize_url(provider, redirect_uri=_redirect_uri(request, provider), state=state)
    )


@staff_member_required
@require_GET
def connect_callback(request: HttpRequest, provider: str) -> HttpResponse:
    states = request.session.get(SESSION_KEY, {})
    issued = states.pop(request.GET.get("state", ""), None)
    request.session[SESSION_KEY] = states
    if (
        issued is None
        or issued["provider"] != provider
        or issued["user"] != request.user.pk
        or issued["at"] < time.time() - STATE_LIFETIME_SECONDS
    ):
        messages.error(
            request,
            "That connection attempt is unknown or has expired (it may have "
            "been started in another browser). Start it again.",
        )
        return redirect("connections:list")
    name = CrmProvider(provider).label
    if request.GET.get("error"):
        detail = request.GET.get("error_description") or request.GET["error"]
        messages.warning(request, f"{name} was not connected: {detail}.")
        return redirect("connections:list")
    workspace = access_workspace_by_id(request.user, issued["workspace"])
    try:
        credentials, identity = oauth.exchange_code(
            provider,
            code=request.GET.get("code", ""),
            redirect_uri=_redirect_uri(request, provider),
        )
        connection = services.do_connect(
            workspace,
            provider,
            issued["scope"],
            credentials=credentials,
            identity=identity,
            auth_kind=AuthKind.OAUTH,
            acting_user=request.user,
            user=request.user if issued["scope"] == ConnectionScope.USER else None,
        )
    except (oauth.OAuthFailed, CrmError) as exc:
        _connect_failed(request, workspace, provider, issued["scope"], exc)
        messages.error(request, f"{name} was not connected: {getattr(exc, 'message', exc)}")
        return redirect("connections:list")
    messages.success(request, f"Connected {connection}.")
    return redirect("connections:list")


@staff_member_required
@require_POST
def disconnect(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = access_connection_by_id(request.user, connection_id)
    if not connection_manageable_by(connection, request.user):
        raise PermissionDenied("Only a workspace admin can end the workspace's connection.")
    services.do_disconnect(connection, acting_user=request.user)
    messages.success(request, f"Disconnected {connection}.")
    return redirect("connections:list")


class TokenForm(forms.Form):
    workspace = forms.ModelChoiceField(queryset=Workspace.objects.none())
    provider = forms.ChoiceField(choices=CrmProvider.choices)
    access_token = forms.CharField(
        widget=forms.PasswordInput,
        label="Private-app token / session id",
        max_length=2000,
        strip=True,
    )
    instance_url = forms.URLField(
        required=False,
        assume_scheme="https",
        label="Salesforce instance URL",
        help_text="Salesforce only, e.g. https://yourcompany.my.salesforce.com",
    )

    def __init__(self, *args, user: AbstractBaseUser, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["workspace"].queryset = workspaces_for_user(user, ADMIN_ROLES)

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("provider") == CrmProvider.SALESFORCE and not cleaned.get("instance_url"):
            self.add_error("instance_url", "A Salesforce session needs its instance URL.")
        return cleaned


@staff_member_required
def connect_with_token(request: HttpRequest) -> HttpResponse:
    """For admins: a HubSpot private-app token or a Salesforce session id, instead of OAuth."""
    form = TokenForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            connection = services.connect_with_token(
                data["workspace"],
                data["provider"],
                ConnectionScope.WORKSPACE,
                access_token=data["access_token"],
                instance_url=data["instance_url"] or None,
                acting_user=request.user,
            )
        except (oauth.OAuthFailed, CrmError) as exc:
            _connect_failed(
                request,
                data["workspace"],
                data["provider"],
                ConnectionScope.WORKSPACE,
                exc,
                data["access_token"],
            )
            form.add_error("access_token", f"The CRM refused it: {getattr(exc, 'message', exc)}")
        else:
            messages.success(request, f"Connected {connection}.")
            return redirect("connections:list")
    return render(
        request,
        "integrations/token_form.html",
        {
            "title": "Connect with a token",
            "form": form,
            "site_header": "CRM Steward",
            "has_permission": True,
        },
    )


def _connect_failed(
    request: HttpRequest,
    workspace: Workspace,
    provider: str,
    scope: str,
    exc: Exception,
    *secrets: str,
) -> None:
    """A refused connect attempt is audited; the CRM's words lose any token they hold."""
    said = without_secrets(str(getattr(exc, "message", exc)), *secrets)
    send_connection_event(
        workspace,
        provider,
        action="connection.connect_failed",
        scope=scope,
        outcome="failed",
        acting_user=request.user,
        reason=f"{CrmProvider(provider).label} was not connected: {said}",
    )


def _connect_target(request: HttpRequest) -> tuple[Workspace, str, str]:
    provider = request.POST.get("provider", "")
    scope = request.POST.get("scope", "")
    if provider not in CrmProvider.values or scope not in ConnectionScope.values:
        raise PermissionDenied("Unknown CRM or connection kind.")
    # The workspace connection serves everyone's workflows: only its admins may set it.
    roles = ADMIN_ROLES if scope == ConnectionScope.WORKSPACE else ALL_ROLES
    try:
        workspace_id = int(request.POST.get("workspace", ""))
    except ValueError:
        raise PermissionDenied("Unknown workspace.") from None
    workspace = access_workspace_by_id(request.user, workspace_id, roles)
    return workspace, provider, scope


def _redirect_uri(request: HttpRequest, provider: str) -> str:
    return request.build_absolute_uri(reverse("connections:callback", args=[provider]))
