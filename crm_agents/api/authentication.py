"""How API requests prove who they are: ``Authorization: Api-Key <key>`` (a workspace's
machine key) or ``Authorization: Token <token>`` (a person's own token). The admin session
works too, for people browsing the API after signing in to the admin.

Passwords are not accepted: HTTP Basic gets 401 with a message saying what to send instead.
A key or token that is unknown, wrong, revoked or malformed gets 401, never a fallback to
anonymous, and counts as a failure; a client that fails too often gets 429 (throttling.py).
"""

import re

from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from crm_agents.api.throttling import AuthFailureThrottle
from governance.api_auth import PREFIX_LENGTH
from governance.api_keys import api_key_for, api_token_for

# What governance.api_auth.new_secret issues: URL-safe base64. Anything else cannot match,
# so it is refused before a database lookup.
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,128}")


def _scheme(request: HttpRequest) -> tuple[bytes, list[bytes]]:
    parts = get_authorization_header(request).split()
    return (parts[0].lower(), parts) if parts else (b"", parts)


class _SecretHeaderAuthentication(BaseAuthentication):
    keyword = ""
    label = ""

    def authenticate(self, request: HttpRequest):
        scheme, parts = _scheme(request)
        if scheme != self.keyword.lower().encode():
            return None
        secret = parts[1].decode("latin-1") if len(parts) == 2 else ""
        valid_shape = _SECRET.fullmatch(secret) is not None
        throttle = AuthFailureThrottle(request, secret[:PREFIX_LENGTH] if valid_shape else "")
        throttle.check()
        if len(parts) != 2:
            throttle.record()
            raise exceptions.AuthenticationFailed(
                f"Malformed Authorization header: send `{self.keyword} <{self.label}>`."
            )
        result = self.credential_for(secret) if valid_shape else None
        if result is None:
            throttle.record()
            raise exceptions.AuthenticationFailed(f"Invalid or revoked {self.label}.")
        return result

    def credential_for(self, secret: str):
        raise NotImplementedError

    def authenticate_header(self, request: HttpRequest) -> str:
        return self.keyword


class ApiKeyAuthentication(_SecretHeaderAuthentication):
    """A workspace API key; ``request.auth`` is the ApiKey, ``request.user`` its actor."""

    keyword = "Api-Key"
    label = "API key"

    def credential_for(self, secret: str):
        api_key = api_key_for(secret)
        return (api_key.actor, api_key) if api_key is not None else None


class ApiTokenAuthentication(_SecretHeaderAuthentication):
    """A person's token; ``request.user`` is that person, with their roles."""

    keyword = "Token"
    label = "token"

    def credential_for(self, secret: str):
        token = api_token_for(secret)
        if token is None or not token.user.is_active:
            return None
        return token.user, token


class PasswordRefusal(BaseAuthentication):
    """HTTP Basic carries a person's password: refused, and counted as a failed attempt."""

    def authenticate(self, request: HttpRequest):
        scheme, _ = _scheme(request)
        if scheme != b"basic":
            return None
        throttle = AuthFailureThrottle(request)
        throttle.check()
        throttle.record()
        raise exceptions.AuthenticationFailed(
            "Passwords are not accepted by the API: send `Authorization: Api-Key <key>` or "
            "`Authorization: Token <token>`."
        )
