"""``POST /services/oauth2/token``: Salesforce's OAuth token endpoint (refresh grant).

A valid, unrevoked refresh token gets a fresh access token for the same user. Salesforce
does not say in the response when it expires (no ``expires_in``); its sessions last two
hours by default, so an expiring token is renewed for two hours. The refresh token itself
stays the same, as Salesforce's does. Refreshing replaces the stored access token, so the
previous one stops working at once (Salesforce would let it run until it times out).

Errors are OAuth's, not the REST API's: ``{"error", "error_description"}`` with 400.
"""

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta

from django.http import HttpRequest

from integrations.sandbox import store
from integrations.sandbox.gateway import Call, Reply, SandboxError, endpoint
from integrations.sandbox.models import RequestKind, SandboxToken
from integrations.sandbox.salesforce.http import SALESFORCE, host_of

SESSION_LIFETIME = timedelta(hours=2)
DEFAULT_SCOPE = "api refresh_token"


def _oauth_error(error: str, description: str) -> SandboxError:
    return SandboxError(
        400, description, error, body={"error": error, "error_description": description}
    )


@endpoint(SALESFORCE, RequestKind.AUTH, authenticate=False)
def token(request: HttpRequest, call: Call) -> Reply:
    grant_type = request.POST.get("grant_type", "")
    if grant_type == "authorization_code":
        raise _oauth_error("invalid_grant", "invalid authorization code")
    if grant_type != "refresh_token":
        raise _oauth_error("unsupported_grant_type", "grant type not supported")
    refresh = request.POST.get("refresh_token", "")
    found = (
        SandboxToken.objects.select_related("account", "user")
        .filter(refresh_token=refresh, account__provider=SALESFORCE)
        .first()
        if refresh
        else None
    )
    if found is None or found.revoked or not found.user.is_active:
        raise _oauth_error("invalid_grant", "expired access/refresh token")
    call.token, call.account, call.user = found, found.account, found.user
    found.access_token = f"{found.account.external_id}!{secrets.token_urlsafe(48)}"
    if found.expires_at is not None:
        found.expires_at = store.now() + SESSION_LIFETIME
    found.save(update_fields=["access_token", "expires_at"])

    instance_url = host_of(request)
    identity = f"{instance_url}/id/{found.account.external_id}/{found.user.crm_user_id}"
    issued_at = str(int(store.now().timestamp() * 1000))
    secret = request.POST.get("client_secret", "").encode()
    signature = hmac.new(secret, (identity + issued_at).encode(), hashlib.sha256).digest()
    return Reply(
        {
            "access_token": found.access_token,
            "signature": base64.b64encode(signature).decode(),
            "scope": found.scopes or DEFAULT_SCOPE,
            "instance_url": instance_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
        }
    )
