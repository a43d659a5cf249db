"""OAuth authorization codes: issued by the consent screen, exchanged once at a token endpoint.

Both sandboxes follow RFC 6749 section 4.1: a code lives 10 minutes, is bound to the
client_id and redirect_uri it was issued for, and works once. A second exchange is refused
and, as the RFC recommends, also revokes the tokens the first exchange issued, since a
replayed code suggests it leaked.

The sandbox keeps no link from a token to its code, so the tokens of the first exchange are
derived from the code (an HMAC under SECRET_KEY, so nobody can compute them without it): a
replay finds them again by value. HubSpot moves the refresh token to a new row on every
refresh, so a replay revokes the first access token and the current refresh token; access
tokens minted by refreshes in between run out on their own within 30 minutes.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from django.db import transaction
from django.db.models import Q
from django.utils.crypto import salted_hmac

from integrations.sandbox import store
from integrations.sandbox.models import (
    Provider,
    SandboxAuthorizationCode,
    SandboxToken,
    SandboxUser,
)

CODE_LIFETIME = timedelta(minutes=10)


class CodeProblem(StrEnum):
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"
    CLIENT_MISMATCH = "client_mismatch"
    REDIRECT_MISMATCH = "redirect_mismatch"


class CodeRejected(Exception):
    """The code cannot be exchanged; each token endpoint words this in its own CRM's terms."""

    def __init__(self, problem: CodeProblem, code: SandboxAuthorizationCode | None) -> None:
        super().__init__(problem.value)
        self.problem = problem
        self.code = code


@dataclass(frozen=True)
class IssuedTokens:
    """The token values an exchange of one code hands out (see the module docstring)."""

    access_token: str
    refresh_token: str


def _digest(purpose: str, value: str) -> str:
    salt = f"integrations.sandbox.oauth.{purpose}"
    return salted_hmac(salt, value, algorithm="sha256").hexdigest()


def issue_code(
    user: SandboxUser,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: list[str],
    nonce: str,
) -> SandboxAuthorizationCode | None:
    """A new code for ``user``, or None when the consent form with ``nonce`` was already used.

    The code is derived from the form's nonce, so posting the same signed form twice finds
    the first code instead of minting a second one.
    """
    digest = _digest("code", nonce)
    if user.account.provider == Provider.HUBSPOT:
        value = str(uuid.UUID(hex=digest[:32]))  # HubSpot's codes are UUIDs
    else:
        value = "aPrx" + digest  # Salesforce's codes start this way
    code, created = SandboxAuthorizationCode.objects.get_or_create(
        code=value,
        defaults={
            "account": user.account,
            "user": user,
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scopes": " ".join(scopes),
            "expires_at": store.now() + CODE_LIFETIME,
        },
    )
    return code if created else None


def issued_tokens(code: SandboxAuthorizationCode) -> IssuedTokens:
    access, refresh = _digest("access", code.code), _digest("refresh", code.code)
    if code.account.provider == Provider.HUBSPOT:
        return IssuedTokens("CO" + access, "na1-" + str(uuid.UUID(hex=refresh[:32])))
    return IssuedTokens(f"{code.account.external_id}!{access}", "5Aep" + refresh)


def exchange_code(
    provider: str,
    value: str,
    *,
    client_id: str,
    redirect_uri: str,
    mint: Callable[[SandboxAuthorizationCode, IssuedTokens], SandboxToken],
) -> SandboxToken:
    """Spend the code and return the token ``mint`` creates for it, or raise CodeRejected.

    Marking the code used and minting happen in one transaction, so a failed mint leaves the
    code usable. A client or redirect mismatch does not spend the code.
    """
    with transaction.atomic():
        code = (
            SandboxAuthorizationCode.objects.select_for_update()
            .select_related("account", "user")
            .filter(code=value, account__provider=provider)
            .first()
            if value
            else None
        )
        problem = _problem(code, client_id=client_id, redirect_uri=redirect_uri)
        if problem is None:
            assert code is not None
            code.used_at = store.now()
            code.save(update_fields=["used_at"])
            return mint(code, issued_tokens(code))
    # Outside the transaction above: the revocation must stick although the exchange fails.
    if problem is CodeProblem.USED:
        assert code is not None
        revoke_issued_tokens(code)
    raise CodeRejected(problem, code)


def _problem(
    code: SandboxAuthorizationCode | None, *, client_id: str, redirect_uri: str
) -> CodeProblem | None:
    if code is None or not code.user.is_active:
        return CodeProblem.UNKNOWN
    if code.used_at is not None:
        return CodeProblem.USED
    if code.expires_at <= store.now():
        return CodeProblem.EXPIRED
    if client_id != code.client_id:
        return CodeProblem.CLIENT_MISMATCH
    if redirect_uri != code.redirect_uri:
        return CodeProblem.REDIRECT_MISMATCH
    return None


def revoke_issued_tokens(code: SandboxAuthorizationCode) -> int:
    issued = issued_tokens(code)
    return (
        SandboxToken.objects.filter(account=code.account)
        .filter(Q(access_token=issued.access_token) | Q(refresh_token=issued.refresh_token))
        .update(revoked=True)
    )
