"""Calls, the workflows that turn them into CRM updates, and the record of every run.

A workflow says which object and which fields, when (trigger conditions) and what to extract
(one instruction per field); everything else, from finding the record to writing without
clobbering, is the pipeline's built-in logic (crm_agents/pipeline.py).
"""

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from governance.models import CrmProvider, ObjectTypeChoice, ReviewMode, TenantModel


class CallSource(models.TextChoices):
    API = "api", "API"
    SCENARIO = "scenario", "Scenario file"
    DEMO = "demo", "Demo"
    TEST = "test", "Workflow test (TEST)"


class Call(TenantModel):
    """One meeting: who was there and what was said.

    ``attendees`` is a list of ``{"name", "email", "internal"}``; ``transcript`` a list of
    ``{"speaker", "start", "text"}`` turns with ``start`` in seconds from the beginning.
    Both are validated at the boundary (crm_agents/calls.py) before they get here.
    """

    external_id = models.CharField(max_length=255)
    title = models.CharField(max_length=500, blank=True)
    started_at = models.DateTimeField()
    duration_s = models.PositiveIntegerField(default=0, verbose_name="duration (s)")
    owner_email = models.EmailField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_calls",
    )
    attendees = models.JSONField(default=list)
    transcript = models.JSONField(default=list)
    source = models.CharField(max_length=16, choices=CallSource.choices, default=CallSource.API)
    received_at = models.DateTimeField(auto_now_add=True)
    # When the call's runs were created (in the transaction that accepted it). Null means
    # the work is still owed: the reconciler creates them (DESIGN.md invariant 9).
    runs_created_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "external_id"], name="one_call_per_external_id"
            )
        ]
        indexes = [models.Index(fields=["workspace", "-started_at"])]

    def __str__(self) -> str:
        return self.title or self.external_id

    @property
    def is_test(self) -> bool:
        return self.source == CallSource.TEST

    def external_emails(self) -> list[str]:
        return sorted(
            {
                attendee["email"].strip().lower()
                for attendee in self.attendees
                if not attendee.get("internal") and attendee.get("email")
            }
        )


class NoMatch(models.TextChoices):
    SKIP = "skip", "Skip the call"
    CREATE = "create", "Create a record (if the policy allows creating)"


class Workflow(TenantModel):
    """Which fields of which object to keep up to date, and for which calls."""

    name = models.CharField(max_length=200)
    key = models.SlugField(
        max_length=64, help_text="A short stable name, used in scenario files and the API."
    )
    provider = models.CharField(max_length=16, choices=CrmProvider.choices)
    object_type = models.CharField(
        max_length=16, choices=ObjectTypeChoice.choices, default=ObjectTypeChoice.DEAL
    )
    template = models.CharField(
        max_length=64, blank=True, help_text="The built-in template it started from, if any."
    )

    trigger_external_attendees = models.BooleanField(
        default=True,
        verbose_name="external attendees present",
        help_text="Run only for calls with at least one attendee from outside the company.",
    )
    trigger_title_contains = models.CharField(
        max_length=200, blank=True, verbose_name="title contains", help_text="Case-insensitive."
    )
    trigger_min_duration_s = models.PositiveIntegerField(
        default=0, verbose_name="minimum duration (s)"
    )
    trigger_owner_team = models.CharField(
        max_length=100,
        blank=True,
        verbose_name="owner in team",
        help_text="Run only for calls whose owner is in this CRM team.",
    )
    no_match = models.CharField(max_length=8, choices=NoMatch.choices, default=NoMatch.SKIP)

    enabled = models.BooleanField(default=True)
    paused = models.BooleanField(
        default=False, help_text="Runs still happen but nothing is proposed or written."
    )
    dry_run = models.BooleanField(
        default=False, help_text="Record what this workflow would write, and write nothing."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "provider", "key"], name="one_workflow_per_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_provider_display()} {self.object_type})"


class WriteMode(models.TextChoices):
    OVERWRITE = "overwrite", "Overwrite"
    APPEND = "append", "Append"
    APPEND_IF_DIFFERENT = "append_if_different", "Append if different"
    FILL_EMPTY = "fill_empty", "Fill only if empty"


class FieldRule(TenantModel):
    """One field a workflow keeps up to date: what to extract and how to write it."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="rules")
    field = models.CharField(
        max_length=128,
        help_text="Canonical (amount, close_date, next_step) or the CRM's own property name.",
    )
    instruction = models.TextField(help_text="What to extract, in one or two sentences.")
    write_mode = models.CharField(
        max_length=24, choices=WriteMode.choices, default=WriteMode.OVERWRITE
    )
    read_dependencies = models.JSONField(
        default=list,
        blank=True,
        help_text="Other fields of the record the model should see before answering, "
        'e.g. ["stage", "amount"].',
    )
    order = models.PositiveIntegerField(default=0)
    review_override = models.CharField(
        max_length=8,
        choices=ReviewMode.choices,
        blank=True,
        help_text="Review this field's changes (or not) whatever the policy says.",
    )
    paused = models.BooleanField(default=False)

    history = HistoricalRecords()

    class Meta:
        ordering = ["workflow", "order", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "field"], name="one_rule_per_field")
        ]

    def __str__(self) -> str:
        return f"{self.field} ({self.get_write_mode_display()})"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    APPLIED = "applied", "Applied"
    PENDING_REVIEW = "pending_review", "Waiting for review"
    NO_MATCH = "no_match", "No matching record"
    AMBIGUOUS = "ambiguous", "Needs a choice of record"
    NO_CHANGES = "no_changes", "Nothing to change"
    CONFLICT = "conflict", "Conflict with a newer CRM value"
    DRY_RUN = "dry_run", "Dry run (nothing written)"
    FAILED = "failed", "Failed"
    APPLYING = "applying", "Applying"
    ROLLED_BACK = "rolled_back", "Applied, then rolled back"
    # It proposed changes; a newer call's proposals for the same fields replaced them.
    SUPERSEDED = "superseded", "Superseded by a newer call"


FINISHED_RUN_STATUSES = frozenset(RunStatus) - {
    RunStatus.QUEUED,
    RunStatus.RUNNING,
    RunStatus.APPLYING,
}


class AgentRun(TenantModel):
    """One workflow run on one call: every input and decision, so "why did this field
    change?" always has an answer (DESIGN.md invariant 5)."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="runs")
    workflow = models.ForeignKey(
        Workflow, null=True, on_delete=models.SET_NULL, related_name="runs"
    )
    workflow_label = models.CharField(max_length=300)
    provider = models.CharField(max_length=16, choices=CrmProvider.choices)
    connection = models.ForeignKey(
        "integrations.Connection", null=True, blank=True, on_delete=models.SET_NULL
    )
    is_test = models.BooleanField(default=False, verbose_name="TEST")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    status_reason = models.TextField(blank=True)

    candidates = models.JSONField(default=list, blank=True)  # [{id, name, score, reasons}]
    match_confidence = models.FloatField(null=True, blank=True)
    match_reason = models.TextField(blank=True)
    record_id = models.CharField(max_length=64, blank=True)
    record_name = models.CharField(max_length=500, blank=True)
    current_values = models.JSONField(default=dict, blank=True)  # {property: {value, modified_at}}
    # The question "which record?" this run waits on: asked once per call, CRM and object
    # type (crm_agents/questions.py), by the first run that needed it; one answer continues
    # every run waiting on it.
    waits_on = models.ForeignKey(
        "governance.ChangeSet",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="waiting_runs",
    )

    prompt = models.TextField(blank=True)
    prompt_hash = models.CharField(max_length=64, blank=True, db_index=True)
    prompt_version = models.CharField(max_length=32, blank=True)
    model = models.CharField(max_length=100, blank=True)
    raw_answer = models.TextField(blank=True)
    answer_cached = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    decisions = models.JSONField(default=list, blank=True)  # what was dropped, and why

    timings = models.JSONField(default=dict, blank=True)  # step -> milliseconds
    crm_requests = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # Owed work (crm_agents/reconcile.py): a queued run is due at ``due_at``; a running one
    # is held by ``lease_owner`` (the task that claimed it) until ``lease_expires_at``.
    # ``waiting_since`` is when the CRM or the model first failed it in a row.
    due_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=255, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    waiting_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # A call submitted twice, or a task delivered twice, makes no second run.
            models.UniqueConstraint(
                fields=["call", "workflow"],
                condition=models.Q(is_test=False),
                name="one_run_per_call_and_workflow",
            )
        ]
        indexes = [
            models.Index(fields=["workspace", "status", "-created_at"]),
            # The reconciler's scans: owed runs by state and time, across workspaces.
            models.Index(fields=["status", "due_at"]),
        ]

    def __str__(self) -> str:
        label = f"{self.workflow_label} on {self.call}"
        return f"TEST · {label}" if self.is_test else label

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_RUN_STATUSES


class ModelAnswer(TenantModel):
    """A model's answer to one exact prompt (temperature 0), so a re-run reproduces the
    same proposals without asking again (DESIGN.md invariant 5)."""

    prompt_hash = models.CharField(max_length=64)
    model = models.CharField(max_length=100)
    answer = models.TextField()
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "model", "prompt_hash"], name="one_answer_per_prompt"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model} answer to {self.prompt_hash[:12]}"


class MatchChoice(TenantModel):
    """A human's answer to "which record?", remembered for later calls with the same
    company and the same external attendees."""

    provider = models.CharField(max_length=16, choices=CrmProvider.choices)
    object_type = models.CharField(max_length=16, choices=ObjectTypeChoice.choices)
    company_id = models.CharField(max_length=64, blank=True)
    attendees_key = models.CharField(max_length=64, help_text="Hash of the sorted emails.")
    record_id = models.CharField(max_length=64)
    record_name = models.CharField(max_length=500, blank=True)
    chosen_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    chosen_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "provider", "object_type", "company_id", "attendees_key"],
                name="one_remembered_choice",
            )
        ]

    def __str__(self) -> str:
        return f"{self.record_name or self.record_id} for {self.company_id or 'no company'}"


# Chat and the call's shared match live in their own modules; importing them here
# registers their models.
from crm_agents.call_match_models import CallMatch  # noqa: E402, F401
from crm_agents.chat_models import ChatMessage, ChatRole, ChatSession  # noqa: E402, F401
