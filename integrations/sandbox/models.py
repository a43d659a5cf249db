"""State of the local CRM emulators: accounts, their users, properties, records and a log.

One ``SandboxAccount`` is one HubSpot portal or one Salesforce org. Values are stored the
way each CRM holds them: HubSpot as strings, Salesforce as typed JSON. Property changes are
kept per field, so both HubSpot's property history and Salesforce's LastModifiedDate can be
answered. Nothing here belongs to a workspace: the sandbox stands in for a foreign system.
"""

from django.db import models


class Provider(models.TextChoices):
    HUBSPOT = "hubspot", "HubSpot"
    SALESFORCE = "salesforce", "Salesforce"
    OPENAI = "openai", "OpenAI-compatible model"


class ModelMode(models.TextChoices):
    RULES = "rules", "Rule-based extractor"
    SCRIPTED = "scripted", "Scripted answers"


class SandboxAccount(models.Model):
    provider = models.CharField(max_length=16, choices=Provider.choices)
    # HubSpot portal id (digits) or Salesforce org id (00D…).
    external_id = models.CharField(max_length=18)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    # Ids are handed out from this counter, so they are unique and stable per account.
    id_counter = models.BigIntegerField(default=0)

    # Rate limits (0 switches a limit off). HubSpot: a rolling 10-second burst, a daily
    # quota and search calls per second, answered with 429. Salesforce: a rolling 24-hour
    # quota and requests in flight at once, both answered with 403 REQUEST_LIMIT_EXCEEDED.
    burst_limit = models.PositiveIntegerField(default=190)
    daily_limit = models.PositiveIntegerField(default=1_000_000)
    search_per_second = models.PositiveIntegerField(default=5)
    # Salesforce's concurrent long-running request limit (25 on production orgs and
    # sandboxes). The sandbox counts every request in flight, however long it runs.
    concurrent_limit = models.PositiveIntegerField(default=25)

    # Fault injection: fractions of requests (0..1) and delays.
    error_rate = models.FloatField(default=0.0)
    timeout_rate = models.FloatField(default=0.0)
    drop_rate = models.FloatField(default=0.0)
    latency_ms = models.PositiveIntegerField(default=0)
    timeout_seconds = models.FloatField(default=30.0)
    # Seconds before a created or updated record shows up in HubSpot search.
    search_lag_seconds = models.FloatField(default=0.0)
    # Model accounts only: how the Chat Completions endpoint answers.
    model_mode = models.CharField(max_length=8, choices=ModelMode.choices, default=ModelMode.RULES)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "external_id"], name="one_sandbox_per_crm_id"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} {self.external_id} ({self.name})"


class Access(models.TextChoices):
    OWNED = "owned", "Own records only"
    TEAM = "team", "Team's records"
    ALL = "all", "All records"


class SandboxUser(models.Model):
    account = models.ForeignKey(SandboxAccount, on_delete=models.CASCADE, related_name="users")
    email = models.EmailField()
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    # HubSpot: numeric userId and owner id. Salesforce: the 005… User id for both.
    crm_user_id = models.CharField(max_length=18)
    owner_id = models.CharField(max_length=18)
    team = models.CharField(max_length=100, blank=True)
    # Records the user may edit (and see). Sharing may let them see more, read-only:
    # ``read_access`` wider than ``access`` (blank: no more than ``access``), as an org-wide
    # "Public Read Only" default or a read-only sharing rule does in Salesforce.
    access = models.CharField(max_length=8, choices=Access.choices, default=Access.ALL)
    read_access = models.CharField(max_length=8, choices=Access.choices, blank=True)
    # {"<native object>": {"<native field>": "hidden" | "read_only"}}
    field_security = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "email"], name="one_sandbox_user_per_email")
        ]

    def __str__(self) -> str:
        return self.email

    def field_access(self, object_name: str, field: str) -> str:
        """``"hidden"``, ``"read_only"`` or ``"edit"`` for this user."""
        return self.field_security.get(object_name, {}).get(field, "edit")


class SandboxToken(models.Model):
    """A bearer token: OAuth access token, HubSpot private-app token or Salesforce session."""

    account = models.ForeignKey(SandboxAccount, on_delete=models.CASCADE, related_name="tokens")
    user = models.ForeignKey(SandboxUser, on_delete=models.CASCADE, related_name="tokens")
    access_token = models.CharField(max_length=300, unique=True)
    refresh_token = models.CharField(max_length=300, unique=True, null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)  # None: never (private apps)
    revoked = models.BooleanField(default=False)
    scopes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"token of {self.user} ({'revoked' if self.revoked else 'active'})"


class SandboxProperty(models.Model):
    """Property (HubSpot) or field (Salesforce) metadata, in the CRM's own vocabulary."""

    account = models.ForeignKey(SandboxAccount, on_delete=models.CASCADE, related_name="properties")
    object_name = models.CharField(max_length=64)
    name = models.CharField(max_length=128)
    label = models.CharField(max_length=200)
    # HubSpot: string, number, date, datetime, enumeration, bool, phone_number.
    # Salesforce: id, string, textarea, currency, double, date, datetime, picklist,
    # boolean, phone, email, url, reference.
    type = models.CharField(max_length=32)
    field_type = models.CharField(max_length=32, blank=True)  # HubSpot's fieldType
    options = models.JSONField(default=list, blank=True)  # [{"value", "label", ...}]
    read_only = models.BooleanField(default=False)  # calculated or system-maintained
    custom = models.BooleanField(default=False)
    group_name = models.CharField(max_length=100, blank=True)
    description = models.TextField(blank=True)
    display_order = models.IntegerField(default=-1)
    # Salesforce describe details (length, precision, scale, referenceTo, nillable, …).
    extra = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["object_name", "display_order", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "object_name", "name"], name="one_sandbox_property_per_name"
            )
        ]

    def __str__(self) -> str:
        return f"{self.object_name}.{self.name}"


class SandboxRecord(models.Model):
    account = models.ForeignKey(SandboxAccount, on_delete=models.CASCADE, related_name="records")
    object_name = models.CharField(max_length=64)
    crm_id = models.CharField(max_length=18)
    owner = models.ForeignKey(
        SandboxUser, null=True, blank=True, on_delete=models.SET_NULL, related_name="records"
    )
    values = models.JSONField(default=dict)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "crm_id"], name="one_sandbox_record_per_id")
        ]
        indexes = [models.Index(fields=["account", "object_name", "deleted_at"])]

    def __str__(self) -> str:
        return f"{self.object_name} {self.crm_id}"


class SandboxPropertyChange(models.Model):
    """One value a property took, newest first when listed (HubSpot property history)."""

    record = models.ForeignKey(SandboxRecord, on_delete=models.CASCADE, related_name="changes")
    name = models.CharField(max_length=128)
    value = models.JSONField(null=True)
    changed_at = models.DateTimeField()
    # HubSpot sourceType: API, CRM_UI, IMPORT, CALCULATED, INTEGRATION.
    source_type = models.CharField(max_length=16, default="API")
    source_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-changed_at", "-pk"]
        indexes = [models.Index(fields=["record", "name", "-changed_at"])]

    def __str__(self) -> str:
        return f"{self.name}={self.value!r} at {self.changed_at:%Y-%m-%d %H:%M:%S}"


class SandboxAssociation(models.Model):
    """A HubSpot v4 association, stored once per direction with that direction's type id.

    Salesforce relates records through lookup fields and junction records instead.
    """

    account = models.ForeignKey(SandboxAccount, on_delete=models.CASCADE, related_name="+")
    from_record = models.ForeignKey(SandboxRecord, on_delete=models.CASCADE, related_name="links")
    to_record = models.ForeignKey(SandboxRecord, on_delete=models.CASCADE, related_name="+")
    type_id = models.IntegerField()
    category = models.CharField(max_length=24, default="HUBSPOT_DEFINED")
    label = models.CharField(max_length=100, blank=True)  # "" is HubSpot's null label

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["from_record", "to_record", "type_id"], name="one_sandbox_link_per_type"
            )
        ]

    def __str__(self) -> str:
        return f"{self.from_record} -> {self.to_record} ({self.type_id})"


class RequestKind(models.TextChoices):
    READ = "read", "Read"
    SEARCH = "search", "Search"
    WRITE = "write", "Write"
    META = "meta", "Metadata"
    AUTH = "auth", "Auth"
    MODEL = "model", "Model"


class SandboxRequest(models.Model):
    """Every call the sandbox answered: what tests and benchmarks count and check."""

    account = models.ForeignKey(
        SandboxAccount, null=True, blank=True, on_delete=models.CASCADE, related_name="requests"
    )
    user = models.ForeignKey(SandboxUser, null=True, blank=True, on_delete=models.SET_NULL)
    provider = models.CharField(max_length=16)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    query = models.TextField(blank=True)
    kind = models.CharField(max_length=8, choices=RequestKind.choices)
    status = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=64, blank=True)
    object_name = models.CharField(max_length=64, blank=True)
    record_ids = models.JSONField(default=list, blank=True)
    # {"<crm id>": {"<field>": <value written>}} for writes that took effect.
    written = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(db_index=True)
    duration_ms = models.FloatField(default=0)
    correlation_id = models.CharField(max_length=40)

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["account", "started_at"])]

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}"


class SandboxModelScript(models.Model):
    """An answer the model endpoint gives in scripted mode, consumed in ``position`` order.

    ``key`` comes from the request's ``X-Sandbox-Script-Key`` header (a scenario's
    "<call>/<workflow>"); ``step`` is the request's kind (``extract``, ``choose_record``,
    ``chat``). The last answer of a key and step is reused once the others are consumed,
    so a re-run gets the same final answer.
    """

    account = models.ForeignKey(SandboxAccount, on_delete=models.CASCADE, related_name="scripts")
    key = models.CharField(max_length=200)
    step = models.CharField(max_length=32)
    position = models.PositiveIntegerField(default=0)
    # {"content": "<text or JSON>"} or {"tool_calls": [{"name": ..., "arguments": ...}]}
    answer = models.JSONField()
    consumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["key", "step", "position", "pk"]

    def __str__(self) -> str:
        return f"{self.key} / {self.step} #{self.position}"


class SandboxAuthorizationCode(models.Model):
    """A one-time OAuth authorization code, issued when a sandbox user approves an app."""

    account = models.ForeignKey(SandboxAccount, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(SandboxUser, on_delete=models.CASCADE, related_name="+")
    code = models.CharField(max_length=200, unique=True)
    client_id = models.CharField(max_length=200)
    redirect_uri = models.URLField(max_length=500)
    scopes = models.TextField(blank=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"code for {self.user} ({'used' if self.used_at else 'unused'})"
