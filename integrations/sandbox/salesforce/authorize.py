"""``GET|POST /services/oauth2/authorize``: Salesforce's web-server flow consent screen.

Real Salesforce serves it on login.salesforce.com (or My Domain) and takes
``response_type=code``, ``client_id``, ``redirect_uri``, optional ``scope`` (space-separated;
the connected app's scopes when left out) and ``state``. The sandbox serves it on its own
host and, having no connected apps, grants the requested scopes or DEFAULT_SCOPE. Only the
web-server flow exists here: another ``response_type`` is refused on the error page.
``prompt``, ``login_hint`` and PKCE's ``code_challenge`` are accepted and ignored.

Deny redirects with ``error=access_denied&error_description=end-user denied authorization``
and ``state``, as Salesforce does.
"""

from django.http import HttpRequest, QueryDict

from integrations.sandbox import consent
from integrations.sandbox.gateway import Call, Reply, endpoint
from integrations.sandbox.models import RequestKind
from integrations.sandbox.salesforce.http import SALESFORCE
from integrations.sandbox.salesforce.oauth import DEFAULT_SCOPE


def _parse(query: QueryDict) -> consent.AuthorizeParams:
    response_type = query.get("response_type", "")
    if response_type != "code":
        raise consent.ConsentError(
            "unsupported_response_type",
            f"response_type must be code (the web server flow); got {response_type!r}.",
        )
    client_id = consent.check_client_id(query)
    redirect_uri = consent.check_redirect_uri(query)
    scopes = consent.split_scopes(query.get("scope", "")) or DEFAULT_SCOPE.split()
    return consent.AuthorizeParams(client_id, redirect_uri, scopes, state=query.get("state", ""))


SCREEN = consent.ConsentScreen(
    provider=SALESFORCE,
    brand="Salesforce",
    account_noun="org",
    parse=_parse,
    denied={"error": "access_denied", "error_description": "end-user denied authorization"},
)


@endpoint(SALESFORCE, RequestKind.AUTH, authenticate=False)
def authorize(request: HttpRequest, call: Call) -> Reply:
    return consent.handle(request, call, SCREEN)
