"""The admin base classes that keep every tenant's data inside its workspace.

Every ModelAdmin in the project derives from ``WorkspaceScopedAdmin`` (tenant data) or
``SuperuserOnlyAdmin`` (platform data such as user accounts). tests/test_tenant_isolation.py
fails for any registered admin that does neither.

What a non-superuser may do is decided by their role in the object's workspace, not by
Django's global model permissions, because one person can be an admin in one workspace
and a rep in another.
"""

from collections.abc import Iterable

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from simple_history.admin import SimpleHistoryAdmin

from governance.models import ALL_ROLES, CONFIGURE_ROLES, Role, Workspace
from governance.selectors import workspaces_for_user


def _workspace_ids(request: HttpRequest, roles: Iterable[Role]) -> set[int]:
    """Ids of the workspaces where the user holds one of ``roles``, cached per request."""
    cache: dict[frozenset, set[int]] = request.__dict__.setdefault("_workspace_ids", {})
    key = frozenset(roles)
    if key not in cache:
        cache[key] = set(workspaces_for_user(request.user, key).values_list("pk", flat=True))
    return cache[key]


def workspace_path_of(model: type[models.Model]) -> str | None:
    """The ORM path from ``model`` to its Workspace, or None for models outside tenancy."""
    if model is Workspace:
        return "pk"
    if model is get_user_model():
        return "memberships__workspace"
    try:
        field = model._meta.get_field("workspace")
    except FieldDoesNotExist:
        return getattr(model, "workspace_path", None)
    return "workspace" if field.related_model is Workspace else None


class WorkspaceScopedAdmin(SimpleHistoryAdmin):
    """A ModelAdmin whose every list, form, choice and action stays in the user's workspaces.

    ``workspace_path`` is the ORM lookup from the model to its Workspace (``"workspace"``
    for a TenantModel, ``"pk"`` for Workspace itself, ``"change_set__workspace"`` for a
    row that belongs to a workspace through its parent).
    """

    workspace_path: str = "workspace"
    view_roles: frozenset[Role] = ALL_ROLES
    add_roles: frozenset[Role] = CONFIGURE_ROLES
    change_roles: frozenset[Role] = CONFIGURE_ROLES
    # Governed rows are not deleted from the admin; a subclass that allows it says so.
    delete_roles: frozenset[Role] = frozenset()

    # --- what the user may see -------------------------------------------------------------
    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        allowed = _workspace_ids(request, self.view_roles)
        scoped = queryset.filter(**{f"{self.workspace_path}__in": allowed})
        # Only a path through a to-many relation can repeat rows; DISTINCT on a direct
        # workspace column would make every count and page scan the whole table.
        return scoped.distinct() if "__" in self.workspace_path else scoped

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> models.Model:
        # Django redirects to the index for a missing object; an outsider must instead
        # get the same 404 as for an id that does not exist at all.
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} with that id.")
        return obj

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict | None = None
    ) -> HttpResponse:
        self.get_object(request, unquote(object_id))
        return super().history_view(request, object_id, extra_context)

    def history_form_view(
        self,
        request: HttpRequest,
        object_id: str,
        version_id: str,
        extra_context: dict | None = None,
    ) -> HttpResponse:
        self.get_object(request, unquote(object_id))
        return super().history_form_view(request, object_id, version_id, extra_context)

    # --- what the user may do ---------------------------------------------------------------
    def _workspace_id_of(self, obj: models.Model) -> int | None:
        value: object = obj
        for part in self.workspace_path.split("__"):
            value = getattr(value, "pk" if part == "pk" else part, None)
            if value is None:
                return None
        return value if isinstance(value, int) else getattr(value, "pk", None)

    def _allowed(
        self, request: HttpRequest, roles: frozenset[Role], obj: models.Model | None
    ) -> bool:
        user = request.user
        if not (user.is_active and user.is_staff):
            return False
        if user.is_superuser:
            return True
        if not roles:
            return False
        allowed = _workspace_ids(request, roles)
        if obj is None:
            return bool(allowed)
        return self._workspace_id_of(obj) in allowed

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, self.view_roles, None)

    def has_view_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self._allowed(request, self.view_roles | self.change_roles, obj)

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self._allowed(request, self.add_roles, None)

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self._allowed(request, self.change_roles, obj)

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        if not self.delete_roles and not request.user.is_superuser:
            return False
        return self._allowed(request, self.delete_roles, obj)

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        if not self.delete_roles:
            actions.pop("delete_selected", None)
        return actions

    # --- what the user may choose -----------------------------------------------------------
    def _scope_choices(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if request.user.is_superuser:
            return queryset
        path = workspace_path_of(queryset.model)
        if path is None:
            return queryset
        allowed = _workspace_ids(request, self.add_roles | self.change_roles)
        return queryset.filter(**{f"{path}__in": allowed}).distinct()

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if formfield is not None and hasattr(formfield, "queryset"):
            formfield.queryset = self._scope_choices(request, formfield.queryset)
        return formfield

    def formfield_for_manytomany(self, db_field, request: HttpRequest, **kwargs):
        formfield = super().formfield_for_manytomany(db_field, request, **kwargs)
        if formfield is not None and hasattr(formfield, "queryset"):
            formfield.queryset = self._scope_choices(request, formfield.queryset)
        return formfield

    def get_list_filter(self, request: HttpRequest) -> list:
        # A plain related-field filter lists every row of the related table, other
        # workspaces' names included; only offer values present in the scoped list.
        scoped = []
        for entry in super().get_list_filter(request):
            if isinstance(entry, str) and self._is_relation(entry):
                entry = (entry, admin.RelatedOnlyFieldListFilter)
            scoped.append(entry)
        return scoped

    def _is_relation(self, name: str) -> bool:
        try:
            return self.opts.get_field(name).is_relation
        except FieldDoesNotExist:
            return False

    def save_model(self, request: HttpRequest, obj: models.Model, form, change: bool) -> None:
        # Form choices are already scoped; this is the last line should a form let a
        # foreign workspace through (a custom form, a hidden field).
        roles = self.change_roles if change else self.add_roles
        if not self._allowed(request, roles, obj):
            raise PermissionDenied("You cannot save rows in that workspace.")
        super().save_model(request, obj, form, change)


class SuperuserOnlyAdmin(admin.ModelAdmin):
    """Platform data (user accounts, groups): only superusers see or touch it."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return request.user.is_active and request.user.is_superuser
