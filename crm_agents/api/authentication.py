"""How API requests prove who they are: ``Authorization: Api-Key <key>`` (a workspace's
machine key) or ``Authorization: Token <token>`` (a person's own token). Sessions (the
browsable API, after logging in to the admin) and HTTP Basic work too.

A key or token that is unknown, wrong or revoked gets 401, never a fallback to anonymous.
"""

from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from governance.api_keys import api_key_for, api_token_for


class _SecretHeaderAuthentication(BaseAuthentication):
    keyword = ""
    label = ""

    def _secret(self, request: HttpRequest) -> str | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                f"Malformed Authorization header: send `{self.keyword} <{self.label}>`."
            )
        try:
            return parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(f"Invalid {self.label}.") from None

    def authenticate_header(self, request: HttpRequest) -> str:
        return self.keyword


class ApiKeyAuthentication(_SecretHeaderAuthentication):
    """A workspace API key; ``request.auth`` is the ApiKey, ``request.user`` its actor."""

    keyword = "Api-Key"
    label = "API key"

    def authenticate(self, request: HttpRequest):
        secret = self._secret(request)
        if secret is None:
            return None
        api_key = api_key_for(secret)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return api_key.actor, api_key


class ApiTokenAuthentication(_SecretHeaderAuthentication):
    """A person's token; ``request.user`` is that person, with their roles."""

    keyword = "Token"
    label = "token"

    def authenticate(self, request: HttpRequest):
        secret = self._secret(request)
        if secret is None:
            return None
        token = api_token_for(secret)
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        return token.user, token
