"""Credentials for the REST API: per-workspace API keys and per-user tokens.

Only a SHA-256 of each secret is stored (DESIGN.md invariant 8); the secret itself exists in
clear once, when it is issued (governance/api_keys.py), and is never shown again. The first
characters are kept as ``prefix`` so people can tell keys apart and the authenticator can
find the row without scanning.
"""

import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import models

from governance.models import TenantModel

PREFIX_LENGTH = 8


def new_secret() -> str:
    return secrets.token_urlsafe(32)  # 256 random bits, 43 characters


def hash_secret(secret: str) -> str:
    # A fast hash is enough: the secrets are 256-bit random, not guessable passwords, and
    # a slow password hash on every API request would cost far more than it protects.
    return hashlib.sha256(secret.encode()).hexdigest()


class HashedSecret(models.Model):
    name = models.CharField(max_length=100, help_text="What uses it, e.g. “Gong webhook”.")
    prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        abstract = True

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.key_hash, hash_secret(secret))


class ApiKey(TenantModel, HashedSecret):
    """A workspace's machine credential: it acts with the RevOps role in its workspace only.

    ``actor`` is a service account (no password, no membership, no admin access) so that
    decisions and audit events taken with the key name it, like any other actor.
    """

    actor = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="api_key",
        editable=False,
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    class Meta:
        verbose_name = "API key"
        ordering = ["workspace", "name", "pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class ApiToken(HashedSecret):
    """A person's own token: it has exactly that person's roles, in every workspace."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )

    class Meta:
        verbose_name = "API token"
        ordering = ["user", "name", "pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
