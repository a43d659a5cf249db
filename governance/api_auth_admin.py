"""REST API credentials in the admin. A key's secret is shown once, in the message after it
is created; the stored hash is never displayed. Keys and tokens are revoked, not deleted, so
the audit trail keeps naming the actor that used them; every change goes through
governance/api_keys.py, which audits it."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest

from governance.admin_scoping import SuperuserOnlyAdmin, WorkspaceScopedAdmin
from governance.api_auth import ApiKey, ApiToken
from governance.api_keys import (
    do_create_api_key,
    do_rename_api_key,
    do_revoke_api_key,
    do_revoke_api_token,
)
from governance.models import CONFIGURE_ROLES

SHOWN = ["workspace", "name", "prefix", "actor", "created_by", "created_at", "last_used_at"]


@admin.register(ApiKey)
class ApiKeyAdmin(WorkspaceScopedAdmin):
    view_roles = CONFIGURE_ROLES
    list_display = [
        "name",
        "prefix",
        "workspace",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["workspace", ("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["workspace", "created_by"]
    search_fields = ["name", "prefix"]
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        return ["workspace", "name"] if obj is None else [*SHOWN, "revoked_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        # Only the name changes after creation; a key never moves to another workspace.
        return [] if obj is None else [f for f in [*SHOWN, "revoked_at"] if f != "name"]

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False  # revoked instead: the audit trail keeps naming the key's actor

    def save_model(self, request: HttpRequest, obj: ApiKey, form, change: bool) -> None:
        if not self._allowed(request, self.change_roles if change else self.add_roles, obj):
            raise PermissionDenied("You cannot save keys in that workspace.")
        if change:
            do_rename_api_key(obj, obj.name, acting_user=request.user)
            return
        issued = do_create_api_key(obj.workspace, obj.name, acting_user=request.user)
        created = issued.credential
        obj.pk, obj.prefix, obj.actor, obj.created_at = (
            created.pk,
            created.prefix,
            created.actor,
            created.created_at,
        )
        self.message_user(
            request,
            f"The API key for “{obj.name}” is {issued.secret} — copy it now: it is stored "
            "only as a hash and cannot be shown again. Send it as “Authorization: Api-Key "
            "<key>”.",
            messages.WARNING,
        )

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        revoked = [
            key
            for key in queryset.select_related("workspace")
            if self.has_change_permission(request, key)
            and do_revoke_api_key(key, acting_user=request.user)
        ]
        self.message_user(request, f"{len(revoked)} key(s) revoked.", messages.SUCCESS)


@admin.register(ApiToken)
class ApiTokenAdmin(SuperuserOnlyAdmin):
    """People's own tokens (they create them through the API); superusers can revoke them."""

    list_display = ["name", "prefix", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["name", "prefix", "user__username"]
    fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    actions = ["revoke"]

    # Nothing here is edited: a token is made by its owner and only ever revoked.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    @admin.action(description="Revoke the selected tokens", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = sum(do_revoke_api_token(token, acting_user=request.user) for token in queryset)
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)
