"""``GET /id/{orgId}/{userId}``: Salesforce's identity URL, the ``id`` of every token answer.

Real Salesforce serves it on login.salesforce.com; the sandbox on its root. It takes the
access token as a bearer header or an ``oauth_token`` parameter. A token may read its own
user's identity, and, holding ``api`` or ``full`` (or no scope restriction), any other user's
of the same org, which is Salesforce's rule for internal users. The body is the documented
subset a client needs; ``urls`` hold ``{version}`` unless ``?version=`` names one (or
``latest``). Failures answer plain text, as Salesforce does: 403 ``Bad_OAuth_Token`` for a
missing, expired or revoked token, 404 ``Bad_Id`` for a user the token may not see.
"""

from django.http import HttpRequest, HttpResponse

from integrations.sandbox import store
from integrations.sandbox.gateway import Call, Reply, endpoint
from integrations.sandbox.models import RequestKind, SandboxToken, SandboxUser
from integrations.sandbox.salesforce.http import LATEST_VERSION, SALESFORCE, host_of
from integrations.sandbox.salesforce.values import format_stamp

ORG_WIDE_SCOPES = {"api", "full"}


def _refuse(status: int, text: str) -> Reply:
    reply = Reply(response=HttpResponse(text, status=status, content_type="text/plain"))
    reply.error_code = text
    return reply


def _token(request: HttpRequest) -> SandboxToken | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() not in {"bearer", "oauth"}:
        value = request.GET.get("oauth_token", "")
    value = value.strip()
    found = (
        SandboxToken.objects.select_related("account", "user")
        .filter(access_token=value, account__provider=SALESFORCE, revoked=False)
        .first()
        if value
        else None
    )
    if found is None or not found.user.is_active:
        return None
    if found.expires_at is not None and found.expires_at <= store.now():
        return None
    return found


@endpoint(SALESFORCE, RequestKind.AUTH, authenticate=False)
def identity(request: HttpRequest, call: Call, org_id: str, user_id: str) -> Reply:
    token = _token(request)
    if token is None:
        return _refuse(403, "Bad_OAuth_Token")
    call.token, call.account, call.user = token, token.account, token.user
    # Salesforce ids compare by their case-sensitive first 15 characters.
    candidates = SandboxUser.objects.filter(
        account=token.account, crm_user_id__startswith=user_id[:15]
    )
    user = next((each for each in candidates if each.crm_user_id[:15] == user_id[:15]), None)
    org_wide = not token.scopes or bool(ORG_WIDE_SCOPES & set(token.scopes.split()))
    if (
        token.account.external_id[:15] != org_id[:15]
        or user is None
        or (user != token.user and not org_wide)
    ):
        return _refuse(404, "Bad_Id")
    return Reply(_identity(request, user, own=user == token.user))


def _identity(request: HttpRequest, user: SandboxUser, *, own: bool) -> dict:
    base = host_of(request)
    org_id = user.account.external_id
    requested = request.GET.get("version", "")
    version = f"{LATEST_VERSION}.0" if requested == "latest" else requested or "{version}"
    data = f"{base}/services/data/v{version}"
    return {
        "id": f"{base}/id/{org_id}/{user.crm_user_id}",
        "asserted_user": own,
        "user_id": user.crm_user_id,
        "organization_id": org_id,
        "username": user.email,
        "nick_name": user.email.partition("@")[0],
        "display_name": f"{user.first_name} {user.last_name}".strip() or user.email,
        "email": user.email,
        "email_verified": True,
        "first_name": user.first_name or None,
        "last_name": user.last_name,
        "timezone": "GMT",
        "active": user.is_active,
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": 0,
        "last_modified_date": format_stamp(user.created_at),
        "urls": {
            "enterprise": f"{base}/services/Soap/c/{version}/{org_id}",
            "metadata": f"{base}/services/Soap/m/{version}/{org_id}",
            "partner": f"{base}/services/Soap/u/{version}/{org_id}",
            "rest": f"{data}/",
            "sobjects": f"{data}/sobjects/",
            "search": f"{data}/search/",
            "query": f"{data}/query/",
            "recent": f"{data}/recent/",
            "profile": f"{base}/{user.crm_user_id}",
            "custom_domain": base,
        },
    }
