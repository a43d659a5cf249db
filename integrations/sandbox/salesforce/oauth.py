"""Salesforce's OAuth endpoints: ``POST /services/oauth2/token`` and ``/services/oauth2/revoke``.

``grant_type=authorization_code`` spends a code from the consent screen
(salesforce/authorize.py, auth_codes.py): it must be unused, unexpired, and come with the
``client_id`` and ``redirect_uri`` it was issued for. The answer carries a refresh token only
when the granted scopes include ``refresh_token`` or ``offline_access``, as on Salesforce.
The sandbox has no connected apps, so ``client_secret`` is never checked; it only keys the
answer's ``signature``.

A valid, unrevoked refresh token gets a fresh access token for the same user. Salesforce
does not say in the response when it expires (no ``expires_in``); its sessions last two
hours by default, so an expiring token is renewed for two hours. The refresh token itself
stays the same, as Salesforce's does. Refreshing replaces the stored access token, so the
previous one stops working at once (Salesforce would let it run until it times out).

``revoke`` takes ``token=`` (form body, or the query string as Salesforce also allows): a
refresh token is revoked with its access token; an access token alone just stops working,
and its refresh token can still mint a new one.

Errors are OAuth's, not the REST API's: ``{"error", "error_description"}`` with 400.
"""

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta

from django.db.models import Q
from django.http import HttpRequest, HttpResponse

from integrations.sandbox import auth_codes, store
from integrations.sandbox.auth_codes import CodeProblem, CodeRejected, IssuedTokens
from integrations.sandbox.gateway import Call, Reply, SandboxError, endpoint
from integrations.sandbox.models import RequestKind, SandboxAuthorizationCode, SandboxToken
from integrations.sandbox.salesforce.http import SALESFORCE, host_of

SESSION_LIFETIME = timedelta(hours=2)
DEFAULT_SCOPE = "api refresh_token"
REFRESH_SCOPES = {"refresh_token", "offline_access"}
CODE_ERRORS = {
    CodeProblem.UNKNOWN: ("invalid_grant", "invalid authorization code"),
    CodeProblem.USED: ("invalid_grant", "invalid authorization code"),
    CodeProblem.EXPIRED: ("invalid_grant", "expired authorization code"),
    CodeProblem.CLIENT_MISMATCH: ("invalid_client_id", "client identifier invalid"),
    CodeProblem.REDIRECT_MISMATCH: (
        "redirect_uri_mismatch",
        "redirect_uri must match configuration",
    ),
}


def _oauth_error(error: str, description: str) -> SandboxError:
    return SandboxError(
        400, description, error, body={"error": error, "error_description": description}
    )


@endpoint(SALESFORCE, RequestKind.AUTH, authenticate=False)
def token(request: HttpRequest, call: Call) -> Reply:
    grant_type = call.form().get("grant_type", "")
    if grant_type == "authorization_code":
        return _exchange_code(request, call)
    if grant_type != "refresh_token":
        raise _oauth_error("unsupported_grant_type", "grant type not supported")
    refresh = call.form().get("refresh_token", "")
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
    return Reply(_token_answer(request, found, with_refresh_token=False))


def _exchange_code(request: HttpRequest, call: Call) -> Reply:
    try:
        found = auth_codes.exchange_code(
            SALESFORCE,
            call.form().get("code", ""),
            client_id=call.form().get("client_id", ""),
            redirect_uri=call.form().get("redirect_uri", ""),
            mint=_mint,
        )
    except CodeRejected as rejected:
        if rejected.code is not None:
            call.account, call.user = rejected.code.account, rejected.code.user
        raise _oauth_error(*CODE_ERRORS[rejected.problem]) from None
    call.token, call.account, call.user = found, found.account, found.user
    return Reply(_token_answer(request, found, with_refresh_token=True))


def _mint(code: SandboxAuthorizationCode, issued: IssuedTokens) -> SandboxToken:
    refreshable = bool(REFRESH_SCOPES & set(code.scopes.split()))
    return SandboxToken.objects.create(
        account=code.account,
        user=code.user,
        access_token=issued.access_token,
        refresh_token=issued.refresh_token if refreshable else None,
        expires_at=store.now() + SESSION_LIFETIME,
        scopes=code.scopes,
    )


def _token_answer(request: HttpRequest, found: SandboxToken, *, with_refresh_token: bool) -> dict:
    """Salesforce's token body; a refresh answer repeats no refresh token."""
    instance_url = host_of(request)
    identity = f"{instance_url}/id/{found.account.external_id}/{found.user.crm_user_id}"
    issued_at = str(int(store.now().timestamp() * 1000))
    secret = request.POST.get("client_secret", "").encode()
    signature = hmac.new(secret, (identity + issued_at).encode(), hashlib.sha256).digest()
    answer = {"access_token": found.access_token}
    if with_refresh_token and found.refresh_token:
        answer["refresh_token"] = found.refresh_token
    answer |= {
        "signature": base64.b64encode(signature).decode(),
        "scope": found.scopes or DEFAULT_SCOPE,
        "instance_url": instance_url,
        "id": identity,
        "token_type": "Bearer",
        "issued_at": issued_at,
    }
    return answer


@endpoint(SALESFORCE, RequestKind.AUTH, authenticate=False)
def revoke(request: HttpRequest, call: Call) -> Reply:
    value = call.form().get("token") or request.GET.get("token", "")
    found = (
        SandboxToken.objects.select_related("account", "user")
        .filter(Q(access_token=value) | Q(refresh_token=value), account__provider=SALESFORCE)
        .first()
        if value
        else None
    )
    if found is None:
        raise _oauth_error("unsupported_token_type", "this token type is not supported")
    call.token, call.account, call.user = found, found.account, found.user
    if found.refresh_token is None or found.refresh_token == value:
        found.revoked = True
    else:
        # The row also holds a refresh token that stays valid: end only this access token.
        found.expires_at = store.now()
    found.save(update_fields=["revoked", "expires_at"])
    return Reply(response=HttpResponse(status=200))
