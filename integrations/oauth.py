"""The CRM side of OAuth: authorize URLs, code exchange, refresh, revoke and identity.

Both CRMs use the authorization-code grant. Endpoints come from settings, which point at the
sandbox by default and at the real CRMs in production (README, "Configuration").

HubSpot's token information and refresh-token revocation put the token in the URL path
(``/oauth/v1/access-tokens/<token>``), so no error message here names a URL beyond its
site, and urllib3's request log (DEBUG) shows those paths without the token.
"""

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode, urlsplit

import requests
from django.conf import settings
from django.utils import timezone

from governance.models import CrmProvider
from integrations.models import Credentials

# A credential in a URL path: HubSpot's token information and revocation endpoints.
_TOKEN_IN_PATH = re.compile(r"(/oauth/v\d+/(?:access|refresh)-tokens/)[^\s?#\"']+")
# Any visible ASCII: what every CRM's tokens are made of (they travel in headers and URLs).
_TOKEN = re.compile(r"[!-~]+")


class _TokenPathsHidden(logging.Filter):
    """urllib3 logs the path of every request it sends at DEBUG, and of a retried one at
    WARNING; a path that holds a token is logged without it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_PATH.sub(r"\1…", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _TOKEN_IN_PATH.sub(r"\1…", record.msg)
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_TokenPathsHidden())


class OAuthFailed(Exception):
    """The CRM refused the exchange; ``message`` is its own words."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.message = message
        # Permanent: the grant is gone (invalid or revoked); otherwise worth retrying.
        self.permanent = permanent


@dataclass(frozen=True)
class Identity:
    """Who a token acts as, and where its CRM lives."""

    account_id: str
    user_id: str
    email: str
    api_base_url: str


def authorize_url(provider: str, *, redirect_uri: str, state: str) -> str:
    if provider == CrmProvider.HUBSPOT:
        query = {
            "client_id": settings.HUBSPOT_CLIENT_ID,
            "redirect_uri": redirect_uri,
            "scope": settings.HUBSPOT_SCOPES,
            "state": state,
        }
        return f"{settings.HUBSPOT_AUTHORIZE_URL}?{urlencode(query)}"
    query = {
        "response_type": "code",
        "client_id": settings.SALESFORCE_CLIENT_ID,
        "redirect_uri": redirect_uri,
        "scope": "api refresh_token",
        "state": state,
    }
    return f"{settings.SALESFORCE_LOGIN_URL}/services/oauth2/authorize?{urlencode(query)}"


def exchange_code(provider: str, *, code: str, redirect_uri: str) -> tuple[Credentials, Identity]:
    grant = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    body = _token_request(provider, grant)
    credentials = _credentials(body)
    return credentials, identify(provider, credentials.access_token, token_body=body)


def refresh(provider: str, refresh_token: str) -> tuple[Credentials, str | None]:
    """New credentials, and (Salesforce) the instance URL the token now belongs to."""
    body = _token_request(provider, {"grant_type": "refresh_token", "refresh_token": refresh_token})
    credentials = _credentials(body)
    if credentials.refresh_token is None:  # neither CRM rotates refresh tokens by default
        credentials = Credentials(credentials.access_token, refresh_token, credentials.expires_at)
    return credentials, body.get("instance_url")


def revoke(provider: str, credentials: Credentials, api_base_url: str) -> None:
    """Best effort: tell the CRM the grant is no longer wanted."""
    token = credentials.refresh_token or credentials.access_token
    try:
        if provider == CrmProvider.HUBSPOT:
            if credentials.refresh_token:
                requests.delete(
                    f"{api_base_url}/oauth/v1/refresh-tokens/{quote(token, safe='')}",
                    timeout=settings.CRM_TIMEOUT,
                )
        else:
            requests.post(
                f"{settings.SALESFORCE_LOGIN_URL}/services/oauth2/revoke",
                data={"token": token},
                timeout=settings.CRM_TIMEOUT,
            )
    except requests.RequestException:
        pass  # the local connection is gone either way; the CRM expires the grant itself


def identify(
    provider: str,
    access_token: str,
    *,
    token_body: dict | None = None,
    api_base_url: str | None = None,
) -> Identity:
    """Ask the CRM who ``access_token`` acts as."""
    if not _TOKEN.fullmatch(access_token):
        # A pasted value with spaces or other characters would break the request's headers
        # (or, for HubSpot, its URL) before any CRM could refuse it; it names nobody.
        raise OAuthFailed(
            "that is not a token: tokens are letters, digits and punctuation, with no spaces",
            permanent=True,
        )
    if provider == CrmProvider.HUBSPOT:
        base = api_base_url or settings.HUBSPOT_API_URL
        if access_token.startswith("pat-"):
            # A private-app token acts as the app, not a person, in one portal.
            details = _get_json(f"{base}/account-info/v3/details", access_token)
            return Identity(
                account_id=str(details.get("portalId", "")),
                user_id="private-app",
                email="",
                api_base_url=base,
            )
        info = _get_json(
            f"{base}/oauth/v1/access-tokens/{quote(access_token, safe='')}",
            None,
            secret=access_token,
        )
        return Identity(
            account_id=str(info.get("hub_id", "")),
            user_id=str(info.get("user_id", "")),
            email=str(info.get("user", "")),
            api_base_url=base,
        )
    body = token_body or {}
    instance = (body.get("instance_url") or api_base_url or "").rstrip("/")
    if not instance:
        raise OAuthFailed("a Salesforce session needs its instance URL", permanent=True)
    identity_url = body.get("id") or f"{instance}/services/oauth2/userinfo"
    info = _get_json(identity_url, access_token)
    return Identity(
        account_id=str(info.get("organization_id", "")),
        user_id=str(info.get("user_id", "")),
        email=str(info.get("email", "")),
        api_base_url=instance,
    )


def _token_url(provider: str) -> str:
    if provider == CrmProvider.HUBSPOT:
        return f"{settings.HUBSPOT_API_URL}/oauth/v1/token"
    return f"{settings.SALESFORCE_LOGIN_URL}/services/oauth2/token"


def _client(provider: str) -> dict[str, str]:
    if provider == CrmProvider.HUBSPOT:
        return {
            "client_id": settings.HUBSPOT_CLIENT_ID,
            "client_secret": settings.HUBSPOT_CLIENT_SECRET,
        }
    return {
        "client_id": settings.SALESFORCE_CLIENT_ID,
        "client_secret": settings.SALESFORCE_CLIENT_SECRET,
    }


def _token_request(provider: str, grant: dict[str, str]) -> dict:
    try:
        response = requests.post(
            _token_url(provider), data={**grant, **_client(provider)}, timeout=settings.CRM_TIMEOUT
        )
    except requests.RequestException as exc:
        raise OAuthFailed(
            f"could not reach the token endpoint: {exc.__class__.__name__}", permanent=False
        ) from None
    body = _json(response)
    if response.status_code >= 500:
        raise OAuthFailed(
            f"the token endpoint failed (HTTP {response.status_code})", permanent=False
        )
    if response.status_code >= 400 or "access_token" not in body:
        message = (
            body.get("error_description")
            or body.get("message")
            or body.get("error")
            or f"HTTP {response.status_code}"
        )
        # In case the CRM's words quote what it was sent (a code, a token, the secret).
        sent = (grant.get("code"), grant.get("refresh_token"), _client(provider)["client_secret"])
        raise OAuthFailed(_without(str(message), *sent), permanent=True)
    return body


def _credentials(body: dict) -> Credentials:
    expires_at: datetime | None = None
    if body.get("expires_in"):
        expires_at = timezone.now() + timedelta(seconds=int(body["expires_in"]))
    return Credentials(
        access_token=body["access_token"],
        refresh_token=body.get("refresh_token"),
        expires_at=expires_at.isoformat() if expires_at else None,
    )


def _get_json(url: str, bearer: str | None, *, secret: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    try:
        response = requests.get(url, headers=headers, timeout=settings.CRM_TIMEOUT)
    except requests.RequestException as exc:
        # The site only: HubSpot's token information URL holds the token itself.
        raise OAuthFailed(
            f"could not reach {_site(url)}: {exc.__class__.__name__}", permanent=False
        ) from None
    body = _json(response)
    if response.status_code >= 400:
        detail = body.get("message") if isinstance(body, dict) else None
        detail = _without(str(detail), bearer, secret) if detail else None
        raise OAuthFailed(
            detail or f"identity lookup failed (HTTP {response.status_code})",
            permanent=response.status_code in {400, 401, 403, 404},
        )
    return body


def _without(text: str, *secrets: str | None) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "…")
    return text


def _site(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


def _json(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return {"message": body[0].get("message"), "error": body[0].get("errorCode")}
    return body if isinstance(body, dict) else {}
