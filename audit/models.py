"""The audit trail: one append-only, hash-chained row per CRM call, refusal and decision.

Each workspace has its own chain. An event's ``hash`` is an HMAC-SHA256, under a key from
``settings.AUDIT_KEYS``, over a canonical JSON of its content and the previous event's hash,
so editing any stored event, or deleting one from the middle, breaks the chain where
``audit.services.verify_chain`` (and ``manage.py audit_verify``) finds it, and someone with
the database but not the key cannot recompute the chain to hide it. The workspace's
``AuditHead`` remembers the newest event's sequence and hash, so deleting the newest events
shows too. Rows are written only by ``audit.services.record_event``; the ORM refuses to
change or delete them.
"""

import hashlib
import hmac
import json
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC
from functools import cache

from django.conf import settings
from django.db import models
from django.utils import timezone

from governance.models import CrmProvider, TenantModel
from integrations.models import ConnectionScope

GENESIS_HASH = "0" * 64  # the previous_hash of a workspace's first event
# Each secret in AUDIT_KEYS is stretched into the MAC key HMAC-SHA256(secret, this label), so
# the same secret (SECRET_KEY, by default) yields a key of its own here, unrelated to the
# Fernet keys integrations.crypto derives from it.
_KEY_LABEL = b"crm-steward audit chain"


class AppendOnlyError(Exception):
    """Raised by any attempt to change or delete an audit event through the ORM."""


class UnknownAuditKey(LookupError):
    """An event names a key id that no secret in AUDIT_KEYS has (the key was removed)."""


@dataclass(frozen=True)
class AuditKey:
    """One MAC key of the chain, known by a short id that is safe to store and print."""

    id: str
    secret: bytes = dataclass_field(repr=False)  # never printed, never stored

    @classmethod
    def from_secret(cls, secret: str) -> "AuditKey":
        key = hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()
        return cls(id=hmac.new(key, b"key-id", hashlib.sha256).hexdigest()[:8], secret=key)


@cache
def _key_ring(secrets: tuple[str, ...]) -> tuple[AuditKey, ...]:
    return tuple(AuditKey.from_secret(secret) for secret in secrets)


def audit_keys() -> tuple[AuditKey, ...]:
    """The configured keys, newest first: the first signs new events, all of them verify."""
    keys = _key_ring(tuple(settings.AUDIT_KEYS))
    if not keys:
        raise UnknownAuditKey("AUDIT_KEYS is empty: the audit chain needs a key to sign with.")
    return keys


def audit_key(key_id: str) -> AuditKey:
    for key in audit_keys():
        if key.id == key_id:
            return key
    raise UnknownAuditKey(f"No key in AUDIT_KEYS has the id {key_id!r}.")


class ActorKind(models.TextChoices):
    USER = "user", "User"
    AGENT = "agent", "Agent"
    SYSTEM = "system", "System"


class Outcome(models.TextChoices):
    OK = "ok", "OK"
    DENIED = "denied", "Denied"
    FAILED = "failed", "Failed"
    DRY_RUN = "dry_run", "Dry run"
    PAUSED = "paused", "Paused"
    # A write was sent and its answer lost: it may or may not have happened. A later event
    # says what reading the CRM showed.
    UNKNOWN = "unknown", "Unknown (answer lost)"


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Audit events are append-only: they cannot be updated.")

    def delete(self):
        raise AppendOnlyError("Audit events are append-only: they cannot be deleted.")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError("Audit events are append-only: they cannot be updated.")

    def bulk_create(self, objs, *args, **kwargs):
        raise AppendOnlyError(
            "Audit events are appended one at a time by audit.services.record_event."
        )


class AuditEvent(TenantModel):
    sequence = models.PositiveBigIntegerField(help_text="1, 2, 3… within the workspace.")
    at = models.DateTimeField(default=timezone.now, db_index=True)

    actor_kind = models.CharField(max_length=8, choices=ActorKind.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor_label = models.CharField(max_length=200, blank=True)  # survives the user's deletion

    # A short dotted verb (crm.read, crm.write.denied, policy.changed): deliberately not an
    # enum, so a new kind of event needs no migration.
    action = models.CharField(max_length=64, db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, db_index=True)

    crm = models.CharField(max_length=16, choices=CrmProvider.choices, blank=True)
    object_type = models.CharField(max_length=32, blank=True)
    record_id = models.CharField(max_length=128, blank=True)
    field = models.CharField(max_length=128, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    connection = models.ForeignKey(
        "integrations.Connection",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    connection_label = models.CharField(max_length=300, blank=True)
    scope = models.CharField(max_length=16, choices=ConnectionScope.choices, blank=True)

    # Plain labels until the agent models exist (crm_agents); they then gain foreign keys.
    workflow_label = models.CharField(max_length=300, blank=True)
    call_label = models.CharField(max_length=300, blank=True)
    run_label = models.CharField(max_length=300, blank=True)

    reason = models.TextField(blank=True)
    context = models.JSONField(default=dict, blank=True)

    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    # Which AUDIT_KEYS key signed ``hash`` (AuditKey.id), so the chain still verifies after a
    # new key is put first. "" in the database only for rows written past record_event.
    key_id = models.CharField(max_length=8, db_default="", blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    # What the hash covers, with ``key_id``. Foreign key ids are left out on purpose:
    # SET_NULL clears them when a user or connection is deleted, and that must not read as
    # tampering; the denormalised labels beside them are covered instead.
    HASHED_FIELDS = (
        "workspace_id",
        "sequence",
        "at",
        "actor_kind",
        "actor_label",
        "action",
        "outcome",
        "crm",
        "object_type",
        "record_id",
        "field",
        "before",
        "after",
        "connection_label",
        "scope",
        "workflow_label",
        "call_label",
        "run_label",
        "reason",
        "context",
        "previous_hash",
    )

    class Meta:
        ordering = ["-at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "sequence"], name="one_audit_event_per_sequence"
            )
        ]
        indexes = [
            models.Index(
                fields=["workspace", "object_type", "record_id", "field"],
                name="audit_event_record_field",
            ),
            # The admin's list, newest first, and its date drill-down, within a workspace.
            models.Index(fields=["workspace", "-at", "-id"], name="audit_event_workspace_at"),
            # The list filtered by action, and the action filter's choices (one index hop
            # per action, audit/admin.py).
            models.Index(
                fields=["workspace", "action", "-at", "-id"], name="audit_event_workspace_action"
            ),
        ]

    def __str__(self) -> str:
        target = " ".join(part for part in (self.object_type, self.record_id, self.field) if part)
        return f"#{self.sequence} {self.action} {target}: {self.outcome}".replace("  ", " ")

    def compute_hash(self, key: AuditKey | None = None) -> str:
        """HMAC-SHA256 hex, under ``key`` (default: the one ``key_id`` names), of the
        canonical JSON of the hashed fields and the key id (sorted keys, no spaces).

        Raises UnknownAuditKey when AUDIT_KEYS no longer lists the key named.
        """
        key = key or audit_key(self.key_id)
        payload: dict[str, object] = {"v": 2, "key_id": self.key_id}
        for name in self.HASHED_FIELDS:
            payload[name] = getattr(self, name)
        payload["at"] = self.at.astimezone(UTC).isoformat(timespec="microseconds")
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hmac.new(key.secret, canonical.encode(), hashlib.sha256).hexdigest()

    def sign(self) -> None:
        """Set ``hash`` under the first key of AUDIT_KEYS, and ``key_id`` to name it."""
        key = audit_keys()[0]
        self.key_id = key.id
        self.hash = self.compute_hash(key)

    def _hash_or_none(self) -> str | None:
        try:
            return self.compute_hash()
        except UnknownAuditKey:
            return None

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AppendOnlyError(
                f"Audit event #{self.sequence} is append-only: it cannot be changed."
            )
        if self.sequence is None or not self.hash or self.hash != self._hash_or_none():
            raise AppendOnlyError(
                "Append audit events through audit.services.record_event, which chains them."
            )
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"Audit event #{self.sequence} is append-only: it cannot be deleted.")


class AuditHead(TenantModel):
    """The newest event of a workspace's chain, moved forward by every append.

    Someone who deletes the newest events leaves no gap behind them; the head still names
    the last one written, so ``verify_chain`` sees the chain end short of it. The head lives
    in the same database and needs no key to move back: cutting the newest events and
    pointing the head at the last one kept goes unnoticed inside the database. Exporting it
    now and then (``manage.py audit_verify --print-head``) is the outside anchor for that.
    """

    sequence = models.PositiveBigIntegerField()
    hash = models.CharField(max_length=64)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace"], name="one_audit_head_per_workspace")
        ]

    def __str__(self) -> str:
        return f"head #{self.sequence} {self.hash[:12]}"
