"""Who may see and do what through the API: every queryset starts from the caller's
workspaces, so an outsider gets the same 404 as for an id that does not exist.

A person has their roles (governance.selectors); an API key acts with the RevOps role in
its own workspace and nowhere else.
"""

from collections.abc import Iterable

from django.db.models import QuerySet
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request

from governance.api_auth import ApiKey
from governance.models import ALL_ROLES, CONFIGURE_ROLES, Role, Workspace
from governance.selectors import workspaces_for_user

WORKSPACE_PARAM = "workspace"


def api_key_of(request: Request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


def workspaces_for_request(
    request: Request, roles: Iterable[Role] = ALL_ROLES
) -> QuerySet[Workspace]:
    roles = frozenset(roles)
    api_key = api_key_of(request)
    if api_key is not None:
        if Role.REVOPS not in roles:
            return Workspace.objects.none()
        return Workspace.objects.filter(pk=api_key.workspace_id)
    return workspaces_for_user(request.user, roles)


def may_configure(request: Request, workspace_id: int) -> bool:
    """RevOps, admins and API keys decide and test; reps read and submit calls."""
    return workspaces_for_request(request, CONFIGURE_ROLES).filter(pk=workspace_id).exists()


def require_configure(request: Request, workspace_id: int, doing: str) -> None:
    if not may_configure(request, workspace_id):
        raise PermissionDenied(f"{doing} needs the RevOps or admin role in this workspace.")


def target_workspace(request: Request, workspace_id: int | None) -> Workspace:
    """The workspace a new row goes to: the one named, else the only one the caller has.

    A workspace the caller cannot see gets the same 404 as one that does not exist.
    """
    visible = workspaces_for_request(request)
    if workspace_id is not None:
        workspace = visible.filter(pk=workspace_id).first()
        if workspace is None:
            raise NotFound("No such workspace.")
        return workspace
    only = list(visible[:2])
    if len(only) == 1:
        return only[0]
    raise ValidationError(
        {WORKSPACE_PARAM: ["You belong to several workspaces (or none): give the workspace id."]}
    )
