"""HubSpot OAuth v1: ``POST /oauth/v1/token`` and ``GET /oauth/v1/access-tokens/{token}``.

``grant_type=authorization_code`` spends a code from the consent screen (hubspot/authorize.py,
auth_codes.py): it must be unused, unexpired, and come with the ``client_id`` and
``redirect_uri`` it was issued for. A refresh issues a new access token that lives 30
minutes; the refresh token stays the same (HubSpot never rotates it) and moves to the new
token row, while the old access token keeps working until it expires, as on HubSpot. Both
grants answer the same body: the SDK's required four fields plus ``hub_id``, ``user_id`` and
``scopes``, which HubSpot's newer token schema lists. The sandbox registers no OAuth apps,
so ``client_secret`` is never checked (and ``client_id`` only against the code). Errors use
the token endpoint's own shape: ``{"status": "BAD_REFRESH_TOKEN", "message": ...,
"correlationId": ...}``.
"""

import secrets
from datetime import timedelta

from django.db import transaction
from django.http import HttpRequest, QueryDict

from integrations.sandbox import auth_codes, store
from integrations.sandbox.auth_codes import CodeProblem, CodeRejected, IssuedTokens
from integrations.sandbox.gateway import Call, Reply, SandboxError, endpoint
from integrations.sandbox.hubspot.common import PROVIDER
from integrations.sandbox.hubspot.objects import by_method
from integrations.sandbox.models import (
    RequestKind,
    SandboxAuthorizationCode,
    SandboxToken,
)

ACCESS_TOKEN_LIFETIME = timedelta(seconds=1800)
DEFAULT_SCOPES = (
    "oauth crm.objects.contacts.read crm.objects.contacts.write crm.objects.companies.read "
    "crm.objects.companies.write crm.objects.deals.read crm.objects.deals.write "
    "crm.objects.owners.read crm.schemas.contacts.read crm.schemas.companies.read "
    "crm.schemas.deals.read"
)
# HubSpot's public apps have numeric ids; the sandbox has one stand-in app.
SANDBOX_APP_ID = 1_234_567
CODE_ERRORS = {
    CodeProblem.UNKNOWN: ("BAD_AUTH_CODE", "missing or unknown auth code"),
    CodeProblem.USED: ("BAD_AUTH_CODE", "auth code has already been used"),
    CodeProblem.EXPIRED: ("BAD_AUTH_CODE", "auth code is expired"),
    CodeProblem.CLIENT_MISMATCH: ("BAD_CLIENT_ID", "missing or unknown client id"),
    CodeProblem.REDIRECT_MISMATCH: (
        "BAD_REDIRECT_URI",
        "redirect_uri does not match the one the auth code was issued for",
    ),
}


def _token_error(call: Call, status: str, message: str, http_status: int = 400) -> SandboxError:
    return SandboxError(
        http_status,
        message,
        status,
        body={"status": status, "message": message, "correlationId": call.correlation_id},
    )


@endpoint(PROVIDER, RequestKind.AUTH, authenticate=False)
def create_token(request: HttpRequest, call: Call) -> Reply:
    form = call.form()
    grant_type = form.get("grant_type", "")
    if grant_type == "refresh_token":
        return _refresh(call, form.get("refresh_token", ""))
    if grant_type == "authorization_code":
        return _exchange_code(call, form)
    raise _token_error(call, "BAD_GRANT_TYPE", "missing or unknown grant type")


def _exchange_code(call: Call, form: QueryDict) -> Reply:
    try:
        token = auth_codes.exchange_code(
            PROVIDER,
            form.get("code", ""),
            client_id=form.get("client_id", ""),
            redirect_uri=form.get("redirect_uri", ""),
            mint=_mint,
        )
    except CodeRejected as rejected:
        if rejected.code is not None:
            call.account, call.user = rejected.code.account, rejected.code.user
        raise _token_error(call, *CODE_ERRORS[rejected.problem]) from None
    call.token, call.account, call.user = token, token.account, token.user
    return Reply(_token_answer(token))


def _mint(code: SandboxAuthorizationCode, issued: IssuedTokens) -> SandboxToken:
    return SandboxToken.objects.create(
        account=code.account,
        user=code.user,
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_at=store.now() + ACCESS_TOKEN_LIFETIME,
        scopes=code.scopes,
    )


def _token_answer(token: SandboxToken) -> dict:
    hub_id, user_id = _ids(token)
    return {
        "token_type": "bearer",
        "refresh_token": token.refresh_token,
        "access_token": token.access_token,
        "expires_in": int(ACCESS_TOKEN_LIFETIME.total_seconds()),
        "hub_id": hub_id,
        "user_id": user_id,
        "scopes": (token.scopes or DEFAULT_SCOPES).split(),
    }


def _ids(token: SandboxToken) -> tuple[int, int]:
    """HubSpot's numeric hub and user ids (0 for a hand-made non-numeric one)."""
    external_id, crm_user_id = token.account.external_id, token.user.crm_user_id
    return (
        int(external_id) if external_id.isdigit() else 0,
        int(crm_user_id) if crm_user_id.isdigit() else 0,
    )


def _refresh(call: Call, refresh_token: str) -> Reply:
    with transaction.atomic():
        old = (
            SandboxToken.objects.select_for_update()
            .select_related("account", "user")
            .filter(refresh_token=refresh_token, account__provider=PROVIDER, revoked=False)
            .first()
            if refresh_token
            else None
        )
        if old is None or not old.user.is_active:
            raise _token_error(call, "BAD_REFRESH_TOKEN", "missing or unknown refresh token")
        call.account, call.user = old.account, old.user
        old.refresh_token = None
        if old.expires_at is None:
            old.expires_at = store.now() + ACCESS_TOKEN_LIFETIME
        old.save(update_fields=["refresh_token", "expires_at"])
        new = SandboxToken.objects.create(
            account=old.account,
            user=old.user,
            access_token="CO" + secrets.token_urlsafe(96),
            refresh_token=refresh_token,
            expires_at=store.now() + ACCESS_TOKEN_LIFETIME,
            scopes=old.scopes,
        )
    return Reply(_token_answer(new))


@endpoint(PROVIDER, RequestKind.AUTH, authenticate=False)
def access_token_info(request: HttpRequest, call: Call, token: str) -> Reply:
    found = (
        SandboxToken.objects.select_related("account", "user")
        .filter(access_token=token, account__provider=PROVIDER, revoked=False)
        .first()
    )
    now = store.now()
    oauth = found is not None and (found.refresh_token is not None or found.expires_at is not None)
    if not oauth or (found.expires_at is not None and found.expires_at <= now):
        raise _token_error(call, "error", "Token not found", 404)
    call.account, call.user = found.account, found.user
    left = found.expires_at - now if found.expires_at else ACCESS_TOKEN_LIFETIME
    hub_id, user_id = _ids(found)
    return Reply(
        {
            "token": found.access_token,
            "user": found.user.email,
            "hub_domain": f"{found.account.name.lower().replace(' ', '-')}.hubspot.example",
            "scopes": (found.scopes or DEFAULT_SCOPES).split(),
            "hub_id": hub_id,
            "app_id": SANDBOX_APP_ID,
            "expires_in": int(left.total_seconds()),
            "user_id": user_id,
            "token_type": "access",
        }
    )


@endpoint(PROVIDER, RequestKind.AUTH, authenticate=False)
def revoke_refresh_token(request: HttpRequest, call: Call, token: str) -> Reply:
    found = SandboxToken.objects.filter(
        refresh_token=token, account__provider=PROVIDER, revoked=False
    ).first()
    if found is None:
        raise _token_error(call, "BAD_REFRESH_TOKEN", "missing or unknown refresh token")
    call.account, call.user = found.account, found.user
    found.revoked = True
    found.save(update_fields=["revoked"])
    return Reply(None, 204)


refresh_tokens = by_method(delete=revoke_refresh_token)
