"""Tenancy: workspaces, the people in them, and the base class of every tenant row."""

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords


class Workspace(models.Model):
    """One customer of CRM Steward. Every tenant row points at exactly one."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    ADMIN = "admin", "Workspace admin"
    REVOPS = "revops", "RevOps"
    MEMBER = "member", "Member (rep)"


# What each role may do in the admin of its own workspace. Reps read; RevOps and
# admins configure; only admins manage who belongs to the workspace.
ALL_ROLES = frozenset(Role)
CONFIGURE_ROLES = frozenset({Role.ADMIN, Role.REVOPS})
ADMIN_ROLES = frozenset({Role.ADMIN})


class Membership(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["workspace__name", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="one_membership_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.get_role_display()})"


class TenantModel(models.Model):
    """Base of every row that belongs to a workspace (DESIGN.md invariant 6)."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.PROTECT, related_name="%(app_label)s_%(class)s_set"
    )

    class Meta:
        abstract = True


class CrmProvider(models.TextChoices):
    HUBSPOT = "hubspot", "HubSpot"
    SALESFORCE = "salesforce", "Salesforce"


class RecordAccess(models.TextChoices):
    """HubSpot's user permission levels for records, applied to reps' own connections."""

    OWNED = "owned", "Owned only"
    TEAM = "team", "Team only"
    ALL = "all", "Everything"


class Policy(TenantModel):
    """What the agent may do in one workspace's CRM. Safe defaults: see governance issue."""

    provider = models.CharField(max_length=16, choices=CrmProvider.choices)
    force_workspace_connection_for_chat = models.BooleanField(
        default=False,
        help_text="Chat uses the workspace connection instead of each rep's own.",
    )
    # HubSpot does not scope API calls by user, so CRM Steward applies these itself to
    # every read and write made through a rep's own HubSpot connection.
    hubspot_access_member = models.CharField(
        max_length=8,
        choices=RecordAccess.choices,
        default=RecordAccess.OWNED,
        verbose_name="HubSpot record access of members",
    )
    hubspot_access_revops = models.CharField(
        max_length=8,
        choices=RecordAccess.choices,
        default=RecordAccess.ALL,
        verbose_name="HubSpot record access of RevOps",
    )
    hubspot_access_admin = models.CharField(
        max_length=8,
        choices=RecordAccess.choices,
        default=RecordAccess.ALL,
        verbose_name="HubSpot record access of admins",
    )
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        verbose_name_plural = "policies"
        constraints = [
            models.UniqueConstraint(fields=["workspace", "provider"], name="one_policy_per_crm")
        ]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} policy of {self.workspace}"

    def hubspot_access_for(self, role: str) -> str:
        return {
            Role.ADMIN: self.hubspot_access_admin,
            Role.REVOPS: self.hubspot_access_revops,
        }.get(role, self.hubspot_access_member)
