"""CRM connections: whose credentials the agent uses, and a record of every call made."""

import json
from dataclasses import asdict, dataclass
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from governance.models import CrmProvider, TenantModel
from integrations import crypto


class ConnectionScope(models.TextChoices):
    WORKSPACE = "workspace", "Workspace (workflows)"
    USER = "user", "User (chat)"


class ConnectionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"
    ERROR = "error", "Error"


class AuthKind(models.TextChoices):
    OAUTH = "oauth", "OAuth"
    PRIVATE_APP = "private_app", "HubSpot private-app token"
    SESSION = "session", "Salesforce session id"


@dataclass(frozen=True)
class Credentials:
    """What is encrypted at rest. Never logged, never rendered."""

    access_token: str
    refresh_token: str | None = None
    expires_at: str | None = None  # ISO 8601; None: does not expire (private-app token)

    def expiry(self) -> datetime | None:
        return datetime.fromisoformat(self.expires_at) if self.expires_at else None

    def __repr__(self) -> str:  # keep tokens out of tracebacks and debug output
        return (
            f"Credentials(expires_at={self.expires_at!r}, refresh={self.refresh_token is not None})"
        )


class Connection(TenantModel):
    provider = models.CharField(max_length=16, choices=CrmProvider.choices)
    scope = models.CharField(max_length=16, choices=ConnectionScope.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="crm_connections",
        help_text="The rep, for a user connection.",
    )
    auth_kind = models.CharField(max_length=16, choices=AuthKind.choices)
    crm_account_id = models.CharField("CRM account", max_length=32, help_text="Portal / org id")
    api_base_url = models.URLField("API base URL", max_length=300)
    # Who the connection acts as in the CRM.
    crm_user_id = models.CharField(max_length=32)
    crm_user_email = models.EmailField(blank=True)
    crm_owner_id = models.CharField(max_length=32, blank=True)  # HubSpot owner id
    crm_teams = models.JSONField(default=list, blank=True)
    status = models.CharField(
        max_length=8, choices=ConnectionStatus.choices, default=ConnectionStatus.ACTIVE
    )
    last_error = models.TextField(blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)  # access token, not secret
    # Held by whoever refreshes the token (without Redis): a row lease rather than a row
    # lock, so no database transaction stays open during the call to the CRM.
    refresh_lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    encrypted_credentials = models.TextField(editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "provider"],
                condition=models.Q(scope="workspace"),
                name="one_workspace_connection_per_crm",
            ),
            models.UniqueConstraint(
                fields=["workspace", "provider", "user"],
                condition=models.Q(scope="user"),
                name="one_user_connection_per_crm",
            ),
            models.CheckConstraint(
                condition=models.Q(scope="workspace", user__isnull=True)
                | models.Q(scope="user", user__isnull=False),
                name="user_connections_have_a_user",
            ),
        ]

    def __str__(self) -> str:
        who = self.user or "workspace"
        return f"{self.get_provider_display()} ({who}) as {self.crm_user_email or self.crm_user_id}"

    @property
    def credentials(self) -> Credentials:
        return Credentials(**json.loads(crypto.decrypt(self.encrypted_credentials)))

    def set_credentials(self, credentials: Credentials) -> None:
        self.encrypted_credentials = crypto.encrypt(json.dumps(asdict(credentials)))
        self.expires_at = credentials.expiry()

    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class CrmCall(TenantModel):
    """One call to a CRM, with the connection and scope that served it."""

    connection = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.SET_NULL, related_name="calls"
    )
    connection_label = models.CharField(max_length=300)  # survives the connection's deletion
    provider = models.CharField(max_length=16, choices=CrmProvider.choices)
    scope = models.CharField(max_length=16, choices=ConnectionScope.choices)
    purpose = models.CharField(max_length=16)
    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    operation = models.CharField(max_length=32)
    object_type = models.CharField(max_length=16, blank=True)
    record_ids = models.JSONField(default=list, blank=True)
    outcome = models.CharField(max_length=32)  # "ok", or the error class
    error = models.TextField(blank=True)
    duration_ms = models.FloatField(default=0)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.operation} {self.object_type} via {self.connection_label}: {self.outcome}"
