"""The sandbox in the admin, for the platform's superusers: tune an account's limits and
faults, look at its users, records and every request it answered.

Registered only with SANDBOX_ENABLED: a production site shows no emulator pages."""

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest

from governance.admin_scoping import SuperuserOnlyAdmin
from integrations.sandbox.models import SandboxAccount, SandboxRecord, SandboxRequest, SandboxUser


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class SandboxAccountAdmin(SuperuserOnlyAdmin):
    list_display = ["name", "provider", "external_id", "model_mode", "created_at"]
    list_filter = ["provider"]
    search_fields = ["name", "external_id"]
    readonly_fields = ["provider", "external_id", "id_counter", "created_at"]
    fieldsets = [
        (None, {"fields": ["name", "provider", "external_id", "model_mode", "created_at"]}),
        (
            "Rate limits (0 switches one off)",
            {"fields": ["burst_limit", "daily_limit", "search_per_second", "concurrent_limit"]},
        ),
        (
            "Fault injection",
            {
                "fields": [
                    "error_rate",
                    "timeout_rate",
                    "drop_rate",
                    "latency_ms",
                    "timeout_seconds",
                    "search_lag_seconds",
                ]
            },
        ),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # accounts come from sandbox_seed, scenarios and tests


class SandboxUserAdmin(ReadOnlyMixin, SuperuserOnlyAdmin):
    list_display = ["email", "account", "access", "read_access", "team", "crm_user_id", "is_active"]
    list_filter = ["account", "access"]
    search_fields = ["email"]


class SandboxRecordAdmin(ReadOnlyMixin, SuperuserOnlyAdmin):
    list_display = ["crm_id", "object_name", "account", "owner", "updated_at", "deleted_at"]
    list_filter = ["account", "object_name"]
    search_fields = ["crm_id"]
    list_select_related = ["account", "owner"]


class SandboxRequestAdmin(ReadOnlyMixin, SuperuserOnlyAdmin):
    list_display = ["started_at", "account", "method", "path", "status", "kind", "duration_ms"]
    list_filter = ["account", "kind", "status", "method"]
    search_fields = ["path", "correlation_id"]
    list_select_related = ["account"]
    date_hierarchy = "started_at"


if settings.SANDBOX_ENABLED:
    admin.site.register(SandboxAccount, SandboxAccountAdmin)
    admin.site.register(SandboxUser, SandboxUserAdmin)
    admin.site.register(SandboxRecord, SandboxRecordAdmin)
    admin.site.register(SandboxRequest, SandboxRequestAdmin)
