from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from governance.admin_scoping import WorkspaceScopedAdmin
from governance.models import ALL_ROLES, CONFIGURE_ROLES
from integrations import services
from integrations.connections import ConnectionProblem
from integrations.crm.errors import CrmError
from integrations.models import Connection, CrmCall
from integrations.selectors import connection_manageable_by, connections_visible_to


@admin.register(Connection)
class ConnectionAdmin(WorkspaceScopedAdmin):
    """Connections are made on the connect pages; here they are listed, tested and ended.

    Credentials are never part of any admin page (the field is not editable and never listed).
    """

    view_roles = ALL_ROLES
    add_roles = frozenset()
    change_roles = frozenset()
    list_display = [
        "__str__",
        "workspace",
        "provider",
        "scope",
        "user",
        "crm_account_id",
        "status",
        "expires_at",
        "last_used_at",
    ]
    list_filter = ["provider", "scope", "status", "workspace"]
    search_fields = ["crm_user_email", "crm_account_id", "user__username"]
    list_select_related = ["workspace", "user"]
    readonly_fields = [
        "workspace",
        "provider",
        "scope",
        "user",
        "auth_kind",
        "crm_account_id",
        "api_base_url",
        "crm_user_id",
        "crm_user_email",
        "crm_owner_id",
        "crm_teams",
        "status",
        "last_error",
        "expires_at",
        "last_used_at",
        "created_by",
        "created_at",
        "updated_at",
    ]
    exclude = ["encrypted_credentials"]
    actions = ["test_connections", "disconnect_connections"]

    # Not even for superusers: a connection changes only through integrations.services,
    # which audits it (connect pages, and the disconnect action below).
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Connection | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Connection | None = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        visible = connections_visible_to(request.user).values("pk")
        return super().get_queryset(request).filter(pk__in=visible)

    @admin.action(description="Test the selected connections")
    def test_connections(self, request: HttpRequest, queryset: QuerySet) -> None:
        for connection in queryset:
            try:
                found = services.do_test_connection(connection, acting_user=request.user)
            except ConnectionProblem as exc:
                self.message_user(request, f"{connection}: {exc.message}", messages.ERROR)
            except CrmError as exc:  # str() keeps the CRM's status and error code
                self.message_user(request, f"{connection}: {exc}", messages.ERROR)
            else:
                self.message_user(request, found, messages.SUCCESS)

    @admin.action(description="Disconnect the selected connections")
    def disconnect_connections(self, request: HttpRequest, queryset: QuerySet) -> None:
        for connection in queryset:
            if not connection_manageable_by(connection, request.user):
                self.message_user(
                    request,
                    f"{connection}: only a workspace admin can end the workspace's connection.",
                    messages.ERROR,
                )
                continue
            services.do_disconnect(connection, acting_user=request.user)
            self.message_user(request, f"Disconnected {connection}.", messages.SUCCESS)


@admin.register(CrmCall)
class CrmCallAdmin(WorkspaceScopedAdmin):
    view_roles = CONFIGURE_ROLES
    add_roles = frozenset()
    change_roles = frozenset()
    list_display = [
        "at",
        "operation",
        "object_type",
        "connection_label",
        "scope",
        "purpose",
        "acting_user",
        "outcome",
        "duration_ms",
    ]
    list_filter = ["provider", "scope", "purpose", "outcome", "operation", "workspace"]
    search_fields = ["connection_label", "record_ids", "error"]
    list_select_related = ["acting_user"]
    date_hierarchy = "at"
    readonly_fields = [field.name for field in CrmCall._meta.fields]
