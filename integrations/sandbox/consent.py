"""The consent screen each CRM sandbox serves at its OAuth authorize URL.

``GET`` validates the app's parameters and shows a small form: the portal/org and user to
sign in as, the requested scopes, Allow and Deny. ``POST`` (the form, sent to the same URL)
either issues an authorization code and redirects to ``redirect_uri?code=…&state=…``, or
redirects with the CRM's "access denied" parameters.

The sandbox server has no sessions or CSRF middleware, so the form carries its own proof:
the validated parameters and a fresh nonce, signed with ``django.core.signing`` under a salt
per CRM and valid for FORM_LIFETIME. A POST is answered only from that signed copy, so a
forged or edited POST cannot choose where the browser goes, and a replayed form cannot mint
a second code (the code is derived from the nonce, see auth_codes.issue_code).

Bad parameters or a bad form get a 400 page naming the problem, never a redirect: without an
app registry the sandbox cannot tell a client's real redirect_uri from an attacker's.
"""

import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

from django.core import signing
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.template.loader import render_to_string

from integrations.sandbox import auth_codes
from integrations.sandbox.gateway import Call, Reply
from integrations.sandbox.models import SandboxAccount, SandboxUser

FORM_LIFETIME = timedelta(minutes=15)
MAX_CLIENT_ID = 200  # SandboxAuthorizationCode.client_id
MAX_REDIRECT_URI = 500  # SandboxAuthorizationCode.redirect_uri
# The page is a credential prompt: never framed (clickjacking), cached or leaked as referrer.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


class ConsentError(Exception):
    """A request the consent screen refuses with a 400 page; ``code`` goes to the log."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class AuthorizeParams:
    client_id: str
    redirect_uri: str
    scopes: list[str]
    optional_scopes: list[str] = field(default_factory=list)
    state: str = ""

    @property
    def granted_scopes(self) -> list[str]:
        # Every sandbox account holds every scope, so optional scopes are granted as well,
        # as HubSpot grants the optional scopes a portal has access to.
        return list(dict.fromkeys([*self.scopes, *self.optional_scopes]))


@dataclass(frozen=True)
class ConsentScreen:
    """What differs between the CRMs' consent screens."""

    provider: str
    brand: str  # "HubSpot", shown as "Sandbox HubSpot"
    account_noun: str  # "portal" / "org"
    parse: Callable[[QueryDict], AuthorizeParams]
    # Query parameters of the redirect after Deny (``state`` is added when given).
    denied: dict[str, str]


@dataclass(frozen=True)
class AccountChoice:
    account: SandboxAccount
    users: list[tuple[int, str]]  # (SandboxUser pk, label)


def required(query: QueryDict, name: str) -> str:
    value = query.get(name, "").strip()
    if not value:
        raise ConsentError(f"missing_{name}", f"The {name} parameter is missing.")
    return value


def check_client_id(query: QueryDict) -> str:
    client_id = required(query, "client_id")
    if len(client_id) > MAX_CLIENT_ID:
        raise ConsentError(
            "invalid_client_id", f"client_id is longer than {MAX_CLIENT_ID} characters."
        )
    return client_id


def check_redirect_uri(query: QueryDict) -> str:
    """An absolute http(s) URL without a fragment (RFC 6749 section 3.1.2)."""
    uri = required(query, "redirect_uri")
    problem = ""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
        problem = "must be an absolute http:// or https:// URL"
    elif "#" in uri:
        problem = "must not contain a fragment (#…)"
    elif any(char.isspace() or ord(char) < 32 for char in uri):
        problem = "must not contain spaces or control characters"
    elif len(uri) > MAX_REDIRECT_URI:
        problem = f"must be at most {MAX_REDIRECT_URI} characters long"
    if problem:
        raise ConsentError("invalid_redirect_uri", f"redirect_uri {problem}; got {uri!r}.")
    return uri


def split_scopes(value: str) -> list[str]:
    return list(dict.fromkeys(value.split()))


def handle(request: HttpRequest, call: Call, screen: ConsentScreen) -> Reply:
    try:
        if request.method == "POST":
            return _decide(request, call, screen)
        params = screen.parse(request.GET)
        return _page(screen, "sandbox/consent.html", _form_context(request, screen, params))
    except ConsentError as error:
        context = {"code": error.code, "message": error.message}
        reply = _page(screen, "sandbox/consent_error.html", context, status=400)
        reply.error_code = error.code
        return reply


def _form_context(request: HttpRequest, screen: ConsentScreen, params: AuthorizeParams) -> dict:
    choices = _account_choices(screen.provider)
    if not choices:
        raise ConsentError(
            "no_sandbox_users",
            f"The sandbox has no {screen.brand} {screen.account_noun} with an active user yet. "
            "Create one first (for example with `manage.py sandbox_seed`).",
        )
    consent = signing.dumps(
        {**asdict(params), "nonce": secrets.token_urlsafe(24)},
        salt=_salt(screen),
        compress=True,
    )
    return {
        "params": params,
        "choices": choices,
        "consent": consent,
        # Posting back to the same URL keeps the parameters in the request log.
        "action": request.get_full_path(),
        "redirect_host": urlsplit(params.redirect_uri).netloc,
    }


def _account_choices(provider: str) -> list[AccountChoice]:
    active = SandboxUser.objects.filter(is_active=True).order_by("email")
    accounts = (
        SandboxAccount.objects.filter(provider=provider)
        .order_by("name", "external_id")
        .prefetch_related(Prefetch("users", queryset=active, to_attr="active_users"))
    )
    return [
        AccountChoice(account, [(user.pk, _user_label(user)) for user in account.active_users])
        for account in accounts
        if account.active_users
    ]


def _user_label(user: SandboxUser) -> str:
    name = f"{user.first_name} {user.last_name}".strip()
    return f"{name} <{user.email}>" if name else user.email


def _decide(request: HttpRequest, call: Call, screen: ConsentScreen) -> Reply:
    form = call.form()
    params, nonce = _signed_params(form.get("consent", ""), screen)
    decision = form.get("decision", "")
    if decision == "deny":
        return _redirect(params.redirect_uri, {**screen.denied, "state": params.state})
    if decision != "allow":
        raise ConsentError("invalid_decision", "Choose Allow or Deny.")
    user = _chosen_user(form.get("user", ""), screen)
    call.account, call.user = user.account, user
    code = auth_codes.issue_code(
        user,
        client_id=params.client_id,
        redirect_uri=params.redirect_uri,
        scopes=params.granted_scopes,
        nonce=nonce,
    )
    if code is None:
        raise ConsentError(
            "consent_reused",
            "This consent form was already submitted. Start the connection again from the app.",
        )
    return _redirect(params.redirect_uri, {"code": code.code, "state": params.state})


def _signed_params(consent: str, screen: ConsentScreen) -> tuple[AuthorizeParams, str]:
    try:
        payload = signing.loads(consent, salt=_salt(screen), max_age=FORM_LIFETIME.total_seconds())
    except signing.SignatureExpired:
        raise ConsentError(
            "consent_expired",
            "This consent form has expired. Start the connection again from the app.",
        ) from None
    except signing.BadSignature:
        raise ConsentError(
            "invalid_consent",
            f"This form was not issued by the Sandbox {screen.brand} consent screen.",
        ) from None
    nonce = payload.pop("nonce")
    return AuthorizeParams(**payload), nonce


def _chosen_user(value: str, screen: ConsentScreen) -> SandboxUser:
    user = (
        SandboxUser.objects.select_related("account")
        .filter(pk=int(value), account__provider=screen.provider, is_active=True)
        .first()
        if value.isdigit()
        else None
    )
    if user is None:
        raise ConsentError(
            "invalid_user",
            f"Choose an active user of a sandbox {screen.brand} {screen.account_noun}.",
        )
    return user


def _salt(screen: ConsentScreen) -> str:
    # Per CRM: a HubSpot form cannot be posted to the Salesforce screen.
    return f"integrations.sandbox.consent.{screen.provider}"


def _redirect(redirect_uri: str, params: dict[str, str]) -> Reply:
    # Append rather than rebuild, so the client's own query string stays byte for byte.
    query = urlencode({name: value for name, value in params.items() if value})
    if redirect_uri.endswith(("?", "&")):
        separator = ""
    else:
        separator = "&" if urlsplit(redirect_uri).query else "?"
    response = HttpResponseRedirect(redirect_uri + separator + query)
    response["Cache-Control"] = "no-store"
    return Reply(response=response)


def _page(screen: ConsentScreen, template: str, context: dict, status: int = 200) -> Reply:
    html = render_to_string(
        template,
        {
            **context,
            "provider": screen.provider,
            "brand": screen.brand,
            "account_noun": screen.account_noun,
        },
    )
    response = HttpResponse(html, status=status, content_type="text/html; charset=utf-8")
    for name, value in PAGE_HEADERS.items():
        response[name] = value
    return Reply(response=response)
