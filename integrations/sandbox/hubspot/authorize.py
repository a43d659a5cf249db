"""``GET|POST /oauth/authorize``: HubSpot's install (consent) screen.

Real HubSpot serves it on app.hubspot.com with ``client_id``, ``redirect_uri``, ``scope``
(required, space-separated) and optionally ``optional_scope`` and ``state``. The sandbox
serves it on its own host. HubSpot checks the scopes against the app's settings; the sandbox
has no app registry, so any scope is accepted and all of them, optional ones included, are
granted.

Deny redirects with ``error=access_denied`` (and ``state``), the RFC 6749 answer, so a
client handles both CRMs' refusals alike.
"""

from django.http import HttpRequest, QueryDict

from integrations.sandbox import consent
from integrations.sandbox.gateway import Call, Reply, endpoint
from integrations.sandbox.hubspot.common import PROVIDER
from integrations.sandbox.hubspot.objects import by_method
from integrations.sandbox.models import RequestKind


def _parse(query: QueryDict) -> consent.AuthorizeParams:
    client_id = consent.check_client_id(query)
    redirect_uri = consent.check_redirect_uri(query)
    scopes = consent.split_scopes(query.get("scope", ""))
    if not scopes:
        raise consent.ConsentError(
            "missing_scope", "The scope parameter is missing: list the scopes the app needs."
        )
    optional = [
        scope
        for scope in consent.split_scopes(query.get("optional_scope", ""))
        if scope not in scopes
    ]
    return consent.AuthorizeParams(
        client_id, redirect_uri, scopes, optional, query.get("state", "")
    )


SCREEN = consent.ConsentScreen(
    provider=PROVIDER,
    brand="HubSpot",
    account_noun="portal",
    parse=_parse,
    denied={"error": "access_denied"},
)


@endpoint(PROVIDER, RequestKind.AUTH, authenticate=False)
def _authorize(request: HttpRequest, call: Call) -> Reply:
    return consent.handle(request, call, SCREEN)


authorize = by_method(get=_authorize, head=_authorize, post=_authorize)
