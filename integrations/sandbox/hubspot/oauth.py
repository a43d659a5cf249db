"""HubSpot OAuth v1: ``POST /oauth/v1/token`` and ``GET /oauth/v1/access-tokens/{token}``.

A refresh issues a new access token that lives 30 minutes; the refresh token stays the same
(HubSpot never rotates it) and moves to the new token row, while the old access token keeps
working until it expires, as on HubSpot. The sandbox registers no OAuth apps, so
``client_id`` and ``client_secret`` are not checked. Errors use the token endpoint's own
shape: ``{"status": "BAD_REFRESH_TOKEN", "message": ..., "correlationId": ...}``.
"""

import secrets
from datetime import timedelta

from django.db import transaction
from django.http import HttpRequest

from integrations.sandbox import store
from integrations.sandbox.gateway import Call, Reply, SandboxError, endpoint
from integrations.sandbox.hubspot.common import PROVIDER
from integrations.sandbox.hubspot.objects import by_method
from integrations.sandbox.models import RequestKind, SandboxToken

ACCESS_TOKEN_LIFETIME = timedelta(seconds=1800)
DEFAULT_SCOPES = (
    "oauth crm.objects.contacts.read crm.objects.contacts.write crm.objects.companies.read "
    "crm.objects.companies.write crm.objects.deals.read crm.objects.deals.write "
    "crm.objects.owners.read crm.schemas.contacts.read crm.schemas.companies.read "
    "crm.schemas.deals.read"
)
# HubSpot's public apps have numeric ids; the sandbox has one stand-in app.
SANDBOX_APP_ID = 1_234_567


def _token_error(call: Call, status: str, message: str, http_status: int = 400) -> SandboxError:
    return SandboxError(
        http_status,
        message,
        status,
        body={"status": status, "message": message, "correlationId": call.correlation_id},
    )


@endpoint(PROVIDER, RequestKind.AUTH, authenticate=False)
def create_token(request: HttpRequest, call: Call) -> Reply:
    grant_type = request.POST.get("grant_type", "")
    if grant_type == "refresh_token":
        return _refresh(call, request.POST.get("refresh_token", ""))
    if grant_type == "authorization_code":
        # No authorization codes are issued yet, so every code is unknown.
        raise _token_error(call, "BAD_AUTH_CODE", "missing or unknown auth code")
    raise _token_error(call, "BAD_GRANT_TYPE", "missing or unknown grant type")


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
    return Reply(
        {
            "token_type": "bearer",
            "refresh_token": refresh_token,
            "access_token": new.access_token,
            "expires_in": int(ACCESS_TOKEN_LIFETIME.total_seconds()),
        }
    )


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
    hub_id = int(found.account.external_id) if found.account.external_id.isdigit() else 0
    user_id = int(found.user.crm_user_id) if found.user.crm_user_id.isdigit() else 0
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
