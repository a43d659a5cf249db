"""Tenancy (workspaces, the people in them, the base of every tenant row) and the policy
that says what the agent may read and write in each workspace's CRM."""

import re
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
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


class ObjectScope(models.TextChoices):
    NONE = "none", "No access"
    READ = "read", "Read"
    READ_WRITE = "read_write", "Read and write"


class ReviewMode(models.TextChoices):
    AUTO = "auto", "Apply automatically"
    REVIEW = "review", "Send to review"


class ChatReview(models.TextChoices):
    """How changes a rep asks for in chat are handled (workflows follow the review mode)."""

    REVIEW = "review", "Send every chat change to review"
    POLICY = "policy", "Like workflows: the review mode and its overrides decide"
    AUTO = "auto", "Apply what the rep asked for at once"


class ObjectTypeChoice(models.TextChoices):
    """The canonical object types (integrations.crm.types.ObjectType), spelled out here
    because integrations imports this module."""

    COMPANY = "company", "Company"
    CONTACT = "contact", "Contact"
    DEAL = "deal", "Deal"


class CrmProperty(TenantModel):
    """One property of a CRM object as the workspace connection's describe returned it.

    Rows are never deleted when the CRM stops returning a property: a policy may still
    name it, and RevOps must see that it is gone rather than have it vanish silently.
    """

    connection = models.ForeignKey(
        "integrations.Connection", on_delete=models.CASCADE, related_name="crm_properties"
    )
    provider = models.CharField(max_length=16, choices=CrmProvider.choices)
    object_type = models.CharField(max_length=16, choices=ObjectTypeChoice.choices)
    name = models.CharField(max_length=128, help_text="The CRM's own name (amount, Amount).")
    label = models.CharField(max_length=255)
    type = models.CharField(max_length=16, help_text="Normalised type (string, number, …).")
    options = models.JSONField(default=list, blank=True)  # [{"value": …, "label": …}]
    read_only = models.BooleanField(default=False)
    custom = models.BooleanField(default=False)
    description = models.TextField(blank=True, help_text="The CRM's own help text for it.")
    max_length = models.PositiveIntegerField(
        null=True, blank=True, help_text="The most characters a text value may hold, if stated."
    )
    missing = models.BooleanField(
        default=False, help_text="The CRM no longer returned this property at the last refresh."
    )
    last_seen_at = models.DateTimeField()

    class Meta:
        verbose_name = "CRM property"
        verbose_name_plural = "CRM properties"
        ordering = ["object_type", "label", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "object_type", "name"], name="one_crm_property_per_name"
            )
        ]

    def __str__(self) -> str:
        text = f"{self.label} ({self.name}, {self.type})"
        return f"{text} — no longer in the CRM" if self.missing else text

    def choice_label(self) -> str:
        """How a whitelist offers the property: the object first, so same-named fields of
        different objects (a company's and a deal's ``name``) cannot be confused."""
        return f"{self.object_type} · {self}"


# Fields whose changes matter most to a forecast: they go to review unless RevOps
# explicitly sets them to auto, whatever the policy's default mode.
REVIEWED_BY_DEFAULT = ("stage", "amount", "close_date")
_CANONICAL_NAME = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")


def default_review_overrides() -> dict[str, str]:
    return dict.fromkeys(REVIEWED_BY_DEFAULT, ReviewMode.REVIEW.value)


def validate_review_overrides(value: object) -> None:
    """Reject anything but {canonical field name: "auto" | "review"}, naming the culprit."""
    if not isinstance(value, dict):
        raise ValidationError(
            'Review overrides must be a JSON object such as {"amount": "review"}.'
        )
    modes = ", ".join(f'"{mode}"' for mode in ReviewMode.values)
    for field, mode in value.items():
        if not _CANONICAL_NAME.fullmatch(field):
            raise ValidationError(
                f"Review override {field!r} is not a canonical field name: use lower "
                "snake case such as close_date or pain_points."
            )
        if mode not in ReviewMode.values:
            raise ValidationError(
                f"Review override for {field!r} is {mode!r}; it must be one of {modes}."
            )


READ_WHITELIST_HELP = (
    "Per object: when you choose no property of an object, the agent may read all of its "
    "properties (within the object's scope); once you choose any, it may read only those."
)
WRITE_WHITELIST_HELP = (
    "The agent may write only the properties chosen here, only on objects whose scope is "
    "read and write, and only properties it may also read. Nothing chosen: nothing writable."
)


class Policy(TenantModel):
    """What the agent may do in one workspace's CRM. Every default is the safe choice:
    objects readable, nothing writable, no actions, everything reviewed."""

    provider = models.CharField(max_length=16, choices=CrmProvider.choices)

    company_scope = models.CharField(
        max_length=16, choices=ObjectScope.choices, default=ObjectScope.READ
    )
    contact_scope = models.CharField(
        max_length=16, choices=ObjectScope.choices, default=ObjectScope.READ
    )
    deal_scope = models.CharField(
        max_length=16, choices=ObjectScope.choices, default=ObjectScope.READ
    )
    read_properties = models.ManyToManyField(
        CrmProperty,
        blank=True,
        related_name="readable_in",
        verbose_name="read whitelist",
        help_text=READ_WHITELIST_HELP,
    )
    write_properties = models.ManyToManyField(
        CrmProperty,
        blank=True,
        related_name="writable_in",
        verbose_name="write whitelist",
        help_text=WRITE_WHITELIST_HELP,
    )

    allow_create = models.BooleanField(default=False, verbose_name="create records")
    allow_stage_change = models.BooleanField(default=False, verbose_name="change a deal's stage")
    allow_update_closed = models.BooleanField(default=False, verbose_name="update closed deals")
    allow_clear_values = models.BooleanField(default=False, verbose_name="clear a value")
    allow_create_associations = models.BooleanField(
        default=False, verbose_name="create associations"
    )

    review_default = models.CharField(
        max_length=8,
        choices=ReviewMode.choices,
        default=ReviewMode.REVIEW,
        verbose_name="review mode",
        help_text="What happens to a proposed change of a field without an override.",
    )
    review_overrides = models.JSONField(
        default=default_review_overrides,
        blank=True,
        validators=[validate_review_overrides],
        help_text=(
            'Per canonical field, "auto" or "review", e.g. {"amount": "review", '
            '"next_step": "auto"}. Stage, amount and close date are reviewed unless set '
            'to "auto" here.'
        ),
    )
    dry_run = models.BooleanField(
        default=False, help_text="Record what the agent would write, and write nothing."
    )
    paused = models.BooleanField(default=False, help_text="Send nothing at all to the CRM.")

    force_workspace_connection_for_chat = models.BooleanField(
        default=False,
        help_text="Chat uses the workspace connection instead of each rep's own.",
    )
    chat_review = models.CharField(
        max_length=8,
        choices=ChatReview.choices,
        default=ChatReview.REVIEW,
        verbose_name="chat changes",
        help_text="What happens to a change a rep asks for in chat. Every mode keeps the "
        "whitelists, the action toggles and the rep's own record access.",
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

    # The whitelists are history too: who added a property to the write whitelist is
    # exactly the question an audit asks.
    history = HistoricalRecords(m2m_fields=["read_properties", "write_properties"])

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

    # --- the rules the guard applies (prefetch the whitelists to answer without queries) ---
    def object_scope(self, object_type: str) -> ObjectScope:
        if object_type not in ObjectTypeChoice.values:
            return ObjectScope.NONE  # an object CRM Steward does not know is never in scope
        return ObjectScope(getattr(self, f"{object_type}_scope"))

    def may_read(self, object_type: str, property_name: str) -> bool:
        if self.object_scope(object_type) == ObjectScope.NONE:
            return False
        # Emptiness is judged on every chosen row, missing ones included: a whitelist whose
        # properties all left the CRM must not silently widen into "everything readable".
        chosen = _of_object(self.read_properties.all(), object_type)
        return not chosen or property_name in {prop.name for prop in chosen}

    def may_write(self, object_type: str, property_name: str) -> bool:
        if self.object_scope(object_type) != ObjectScope.READ_WRITE:
            return False
        # The agent reads a value before it overwrites it (no clobbering), so a property
        # it may not read cannot be written either.
        if not self.may_read(object_type, property_name):
            return False
        return any(
            prop.name == property_name and not prop.missing and not prop.read_only
            for prop in _of_object(self.write_properties.all(), object_type)
        )

    def review_mode_for(self, field: str) -> ReviewMode:
        override = (self.review_overrides or {}).get(field)
        if override is not None:
            return ReviewMode(override)
        if field in REVIEWED_BY_DEFAULT:
            return ReviewMode.REVIEW
        return ReviewMode(self.review_default)

    def chat_review_mode_for(self, field: str) -> ReviewMode:
        if self.chat_review == ChatReview.AUTO:
            return ReviewMode.AUTO
        if self.chat_review == ChatReview.POLICY:
            return self.review_mode_for(field)
        return ReviewMode.REVIEW


def _of_object(properties: Iterable[CrmProperty], object_type: str) -> list[CrmProperty]:
    return [prop for prop in properties if prop.object_type == object_type]


# REST API credentials live in their own module; importing it here registers its models.
from governance.api_auth import ApiKey, ApiToken  # noqa: E402, F401

# The review queue lives in its own module; importing it here registers its models.
from governance.review_models import ChangeProposal, ChangeSet  # noqa: E402, F401
