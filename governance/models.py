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
