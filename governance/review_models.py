"""The review queue: one ChangeSet per record a run wants to change, one ChangeProposal
per field. Every proposal carries its decision contract explicitly: what was proposed and
why (evidence), what the CRM held when it was read, what a human decided, and what the
apply step did."""

from django.conf import settings
from django.db import models

from governance.models import CrmProvider, ObjectTypeChoice, ReviewMode, TenantModel

CHAT_WORKFLOW_LABEL = "Chat"


def chat_label(session_id: int) -> str:
    """How audit events and change sets name a chat session."""
    return f"chat {session_id}"


class SetStatus(models.TextChoices):
    NEEDS_CHOICE = "needs_choice", "Needs a choice of record"
    # A "which record?" question a human answered: the runs go on in their own sets.
    CHOSEN = "chosen", "Record chosen"
    PENDING_REVIEW = "pending_review", "Waiting for review"
    APPROVED = "approved", "Approved, being applied"
    APPLIED = "applied", "Applied"
    PARTIAL = "partial", "Partly applied"
    CONFLICT = "conflict", "Conflict with a newer CRM value"
    REJECTED = "rejected", "Rejected"
    DRY_RUN = "dry_run", "Dry run (nothing written)"
    FAILED = "failed", "Failed"
    SUPERSEDED = "superseded", "Superseded by a newer call"
    NOTHING = "nothing", "Nothing to write"
    ROLLED_BACK = "rolled_back", "Rolled back"


OPEN_SET_STATUSES = frozenset(
    {SetStatus.NEEDS_CHOICE, SetStatus.PENDING_REVIEW, SetStatus.APPROVED}
)


class SetOperation(models.TextChoices):
    UPDATE = "update", "Update a record"
    CREATE = "create", "Create a record"


class ChangeSet(TenantModel):
    run = models.ForeignKey(
        "crm_agents.AgentRun", null=True, on_delete=models.SET_NULL, related_name="change_sets"
    )
    provider = models.CharField(max_length=16, choices=CrmProvider.choices)
    object_type = models.CharField(max_length=16, choices=ObjectTypeChoice.choices)
    operation = models.CharField(
        max_length=8, choices=SetOperation.choices, default=SetOperation.UPDATE
    )
    record_id = models.CharField(max_length=64, blank=True)
    record_name = models.CharField(max_length=500, blank=True)
    # Denormalised so the queue lists and filters without joins, and survives deletes.
    call_title = models.CharField(max_length=500, blank=True)
    call_started_at = models.DateTimeField(null=True, blank=True)
    workflow_label = models.CharField(max_length=300, blank=True)
    owner_email = models.CharField(max_length=254, blank=True)
    is_test = models.BooleanField(default=False, verbose_name="TEST")
    # A change a rep asked for in chat: applied through the rep's own connection (or the
    # one chat is made to use), with the rep as the actor.
    chat_session = models.ForeignKey(
        "crm_agents.ChatSession",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="change_sets",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="requested_change_sets",
    )
    # Other values the write is conditional on, as read with the record ({"dealstage": …}).
    condition_values = models.JSONField(default=dict, blank=True)

    status = models.CharField(max_length=16, choices=SetStatus.choices)
    read_at = models.DateTimeField(null=True, blank=True, help_text="When the CRM was read.")
    # The record's change time as the CRM reported it at that read (HubSpot
    # hs_lastmodifieddate, Salesforce LastModifiedDate).
    record_modified_at = models.DateTimeField(null=True, blank=True)
    # For a create: the records the new one is associated with ({"company": [ids], …}).
    create_associations = models.JSONField(default=dict, blank=True)
    field_count = models.PositiveIntegerField(default=0)
    lowest_confidence = models.FloatField(null=True, blank=True)

    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="decided_change_sets",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reject_reason = models.TextField(blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["workspace", "-created_at"]),
            models.Index(fields=["workspace", "status", "-created_at"]),
            models.Index(fields=["workspace", "provider", "record_id"]),
            # The queue's workflow and owner filters list their values through these.
            models.Index(fields=["workspace", "workflow_label"]),
            models.Index(fields=["workspace", "owner_email"]),
        ]

    def __str__(self) -> str:
        label = f"{self.object_type} {self.record_name or self.record_id or '(new)'}"
        return f"TEST · {label}" if self.is_test else label

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_SET_STATUSES

    @property
    def from_chat(self) -> bool:
        return self.requested_by_id is not None

    def audit_labels(self) -> dict[str, str]:
        """The labels of every audit event about this set (record_event's keywords)."""
        if self.chat_session_id:
            run = chat_label(self.chat_session_id)
        else:
            run = f"run {self.run_id}" if self.run_id else ""
        return {
            "workflow_label": self.workflow_label,
            "call_label": self.call_title[:200],
            "run_label": run,
        }


class ProposalStatus(models.TextChoices):
    PENDING = "pending", "Waiting for review"
    APPROVED = "approved", "Approved"
    APPLYING = "applying", "Being applied"
    APPLIED = "applied", "Applied"
    REJECTED = "rejected", "Rejected"
    CONFLICT = "conflict", "Conflict with a newer CRM value"
    DENIED = "denied", "Refused by policy"
    DROPPED = "dropped", "Dropped"
    SUPERSEDED = "superseded", "Superseded by a newer call"
    DRY_RUN = "dry_run", "Dry run (not written)"
    FAILED = "failed", "Failed"
    ROLLING_BACK = "rolling_back", "Being rolled back"
    ROLLED_BACK = "rolled_back", "Rolled back"


# A proposal still waiting for a human or for the apply step.
OPEN_PROPOSAL_STATUSES = frozenset(
    {ProposalStatus.PENDING, ProposalStatus.APPROVED, ProposalStatus.APPLYING}
)


class ChangeProposal(TenantModel):
    change_set = models.ForeignKey(ChangeSet, on_delete=models.CASCADE, related_name="proposals")
    field = models.CharField(max_length=128, help_text="Canonical name, as in the prompt.")
    native_field = models.CharField(max_length=128, help_text="The CRM's own property name.")
    label = models.CharField(max_length=255, blank=True)
    write_mode = models.CharField(max_length=24, blank=True)
    review_mode = models.CharField(max_length=8, choices=ReviewMode.choices, blank=True)

    raw_value = models.JSONField(null=True, blank=True, help_text="What the model answered.")
    # CRM values are None when empty (integrations/crm/types.py), and "no edit" must differ
    # from "edited to empty": these text fields are nullable on purpose.
    proposed_value = models.TextField(null=True, blank=True)  # noqa: DJ001
    edited_value = models.TextField(null=True, blank=True)  # noqa: DJ001
    current_value = models.TextField(null=True, blank=True)  # noqa: DJ001
    current_modified_at = models.DateTimeField(null=True, blank=True)
    evidence = models.TextField(blank=True)
    evidence_start = models.FloatField(null=True, blank=True, help_text="Seconds into the call.")
    confidence = models.FloatField(null=True, blank=True)

    status = models.CharField(max_length=16, choices=ProposalStatus.choices)
    status_reason = models.TextField(blank=True)
    superseded_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="supersedes"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="decided_proposals",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # Owed work (crm_agents/reconcile.py): an approved proposal is due for the apply step at
    # ``due_at``; an applying one is held by the task ``claim_owner`` for WORK_LEASE_SECONDS
    # from ``claimed_at``. ``waiting_since``: when the CRM first failed it in a row.
    # ``in_doubt_since``: a write was sent and its answer lost, so the CRM is read before
    # anything is sent again.
    due_at = models.DateTimeField(null=True, blank=True)
    claim_owner = models.CharField(max_length=255, blank=True)
    waiting_since = models.DateTimeField(null=True, blank=True)
    in_doubt_since = models.DateTimeField(null=True, blank=True)
    applied_value = models.TextField(null=True, blank=True)  # noqa: DJ001
    applied_at = models.DateTimeField(null=True, blank=True)
    rolled_back_at = models.DateTimeField(null=True, blank=True)
    rolled_back_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="rolled_back_proposals",
    )
    crm_value_after = models.TextField(  # noqa: DJ001
        null=True, blank=True, help_text="The CRM's value when a conflict was found."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["change_set", "pk"]
        indexes = [
            models.Index(fields=["workspace", "status"]),
            models.Index(fields=["status", "due_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.field}: {self.current_value!r} → {self.value_to_write!r}"

    @property
    def value_to_write(self) -> str | None:
        return self.edited_value if self.edited_value is not None else self.proposed_value
