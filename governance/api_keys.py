"""Issuing, revoking and checking REST API credentials (models in governance/api_auth.py).

A secret is returned in clear exactly once, by the function that issues it; callers show it
to the person who asked and keep it nowhere.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from audit.services import record_event
from governance.api_auth import (
    PREFIX_LENGTH,
    ApiKey,
    ApiToken,
    HashedSecret,
    hash_secret,
    new_secret,
)
from governance.models import Workspace

# Recording every use would turn each read request into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Issued:
    credential: ApiKey | ApiToken
    secret: str  # the only copy in clear: show it once, store it nowhere


def _fresh_secret(model: type[HashedSecret]) -> str:
    while True:
        secret = new_secret()
        if not model.objects.filter(prefix=secret[:PREFIX_LENGTH]).exists():
            return secret


@transaction.atomic
def do_create_api_key(
    workspace: Workspace, name: str, *, acting_user: AbstractBaseUser | None
) -> Issued:
    name = name.strip()
    if not name:
        raise ValueError("an API key needs a name saying what uses it")
    secret = _fresh_secret(ApiKey)
    prefix = secret[:PREFIX_LENGTH]
    actor = get_user_model()(
        username=f"api-key-{prefix}@{workspace.slug}", is_staff=False, is_active=True
    )
    actor.set_unusable_password()
    actor.save()
    api_key = ApiKey.objects.create(
        workspace=workspace,
        name=name,
        prefix=prefix,
        key_hash=hash_secret(secret),
        actor=actor,
        created_by=acting_user,
    )
    _audit(api_key, "api_key.created", acting_user, after={"name": name})
    return Issued(api_key, secret)


@transaction.atomic
def do_revoke_api_key(api_key: ApiKey, *, acting_user: AbstractBaseUser | None) -> bool:
    """Revoke the key; False when it already was."""
    api_key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if api_key.is_revoked:
        return False
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])
    get_user_model().objects.filter(pk=api_key.actor_id).update(is_active=False)
    _audit(
        api_key, "api_key.revoked", acting_user, before={"revoked": False}, after={"revoked": True}
    )
    return True


@transaction.atomic
def do_rename_api_key(api_key: ApiKey, name: str, *, acting_user: AbstractBaseUser | None) -> bool:
    """Rename the key (what uses it); False when the name is unchanged."""
    name = name.strip()
    if not name:
        raise ValueError("an API key needs a name saying what uses it")
    locked = ApiKey.objects.select_for_update().select_related("workspace").get(pk=api_key.pk)
    if locked.name == name:
        return False
    before = {"name": locked.name}
    locked.name = name
    locked.save(update_fields=["name"])
    _audit(locked, "api_key.renamed", acting_user, before=before, after={"name": name})
    api_key.name = name
    return True


def _audit(
    api_key: ApiKey,
    action: str,
    acting_user: AbstractBaseUser | None,
    *,
    before: dict | None = None,
    after: dict | None = None,
) -> None:
    record_event(
        api_key.workspace,
        action=action,
        outcome="ok",
        actor_kind="user" if acting_user else "system",
        actor_user=acting_user,
        before=before,
        after=after,
        reason=f"API key {api_key}",
        context={"api_key_id": api_key.pk, "prefix": api_key.prefix},
    )


@transaction.atomic
def do_create_api_token(
    user: AbstractBaseUser, name: str, *, acting_user: AbstractBaseUser | None = None
) -> Issued:
    """A token for ``user``; ``acting_user`` defaults to the user (people make their own)."""
    name = name.strip()
    if not name:
        raise ValueError("a token needs a name saying what uses it")
    secret = _fresh_secret(ApiToken)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=secret[:PREFIX_LENGTH], key_hash=hash_secret(secret)
    )
    _audit_token(token, "api_token.created", acting_user or user)
    return Issued(token, secret)


@transaction.atomic
def do_revoke_api_token(token: ApiToken, *, acting_user: AbstractBaseUser | None) -> bool:
    """Revoke the token; False when it already was."""
    token = ApiToken.objects.select_for_update().select_related("user").get(pk=token.pk)
    if token.is_revoked:
        return False
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    _audit_token(token, "api_token.revoked", acting_user)
    return True


def _audit_token(token: ApiToken, action: str, acting_user: AbstractBaseUser | None) -> None:
    """A token has its owner's roles in each of their workspaces: each one's trail says so.

    A person in no workspace can do nothing with a token, and there is no trail to write to.
    """
    owner = token.user.get_username()
    for workspace in Workspace.objects.filter(memberships__user=token.user).order_by("pk"):
        record_event(
            workspace,
            action=action,
            outcome="ok",
            actor_kind="user" if acting_user else "system",
            actor_user=acting_user,
            reason=f"API token {token} of {owner}",
            context={"api_token_id": token.pk, "prefix": token.prefix, "owner": owner},
        )


def api_key_for(secret: str) -> ApiKey | None:
    """The live API key whose secret this is, or None (unknown, wrong or revoked)."""
    return _live(ApiKey.objects.select_related("workspace", "actor"), secret)


def api_token_for(secret: str) -> ApiToken | None:
    """The live token whose secret this is, or None (unknown, wrong or revoked)."""
    return _live(ApiToken.objects.select_related("user"), secret)


def _live(queryset, secret: str):
    candidate = queryset.filter(prefix=secret[:PREFIX_LENGTH]).first()
    if candidate is None or candidate.is_revoked or not candidate.matches(secret):
        return None
    now = timezone.now()
    if candidate.last_used_at is None or now - candidate.last_used_at > LAST_USED_RESOLUTION:
        type(candidate).objects.filter(pk=candidate.pk).update(last_used_at=now)
    return candidate
