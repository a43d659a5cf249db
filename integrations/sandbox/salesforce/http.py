"""HTTP plumbing shared by the Salesforce views: method dispatch, the org of a call,
conditional request headers, and the version list.

Salesforce answers a method a resource does not support with 405 ``METHOD_NOT_ALLOWED``
(``"HTTP Method 'PUT' not allowed. Allowed are HEAD,GET,POST"``) after authenticating, so
dispatch goes through a gateway endpoint too.
"""

import base64
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from integrations.sandbox.gateway import Call, Reply, SandboxError, endpoint
from integrations.sandbox.models import Provider, RequestKind, SandboxRecord
from integrations.sandbox.salesforce.org import Org

SALESFORCE = Provider.SALESFORCE
FIRST_VERSION = 20
LATEST_VERSION = 64
_SEASONS = ("Winter", "Spring", "Summer")


def org_of(call: Call, version: str) -> Org:
    assert call.account is not None
    assert call.user is not None
    return Org(call.account, call.user, version)


def host_of(request: HttpRequest) -> str:
    """The base URL the client reached the sandbox at. Read raw rather than through
    ``get_host()``: the sandbox answers on whatever loopback host and port it serves, which
    the web app's ALLOWED_HOSTS need not list."""
    host = request.META.get("HTTP_HOST") or (
        f"{request.META.get('SERVER_NAME', 'localhost')}:{request.META.get('SERVER_PORT', '80')}"
    )
    return f"{request.scheme}://{host}"


def release_label(major: int) -> str:
    """``59`` -> ``"Winter '24"``: three releases a year since v20.0 (Winter '11)."""
    offset = major - FIRST_VERSION
    return f"{_SEASONS[offset % 3]} '{11 + offset // 3:02d}"


def versions() -> list[dict[str, str]]:
    return [
        {
            "label": release_label(major),
            "url": f"/services/data/v{major}.0",
            "version": f"{major}.0",
        }
        for major in range(FIRST_VERSION, LATEST_VERSION + 1)
    ]


@endpoint(SALESFORCE, RequestKind.META)
def _method_not_allowed(request: HttpRequest, call: Call, *, allowed: str, **_: str) -> Reply:
    raise SandboxError(
        405,
        f"HTTP Method '{request.method}' not allowed. Allowed are {allowed}",
        "METHOD_NOT_ALLOWED",
    )


def methods(**handlers: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """One URL, one gateway endpoint per HTTP method (each has its own request kind)."""
    allowed = ",".join(["HEAD", *handlers])

    @csrf_exempt
    def dispatch(request: HttpRequest, **kwargs: str) -> HttpResponse:
        method = "GET" if request.method == "HEAD" else request.method or ""
        handler = handlers.get(method)
        if handler is None:
            return _method_not_allowed(request, allowed=allowed, **kwargs)
        return handler(request, **kwargs)

    return dispatch


# --- Conditional requests (B3) -------------------------------------------------------------


def http_date(value: str, header: str) -> datetime:
    """An RFC 1123 date (``Mon, 30 Nov 2020 08:34:54 GMT``); Salesforce answers 400 when a
    conditional header on a write cannot be read."""
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        raise SandboxError(
            400, f"Invalid {header} header value: {value}", "INVALID_HEADER_TYPE"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def last_modified(record: SandboxRecord) -> datetime:
    """LastModifiedDate as Salesforce holds it for conditional requests: whole seconds.

    If-Unmodified-Since (and If-Modified-Since) therefore compare per second, as on a real
    org: a PATCH conditional on the current second succeeds even when another write landed
    earlier in that same second. Only the record's values (or the ETag, on Account) can
    tell such writes apart; the adapter reads them when its read fell in that second."""
    return record.updated_at.replace(microsecond=0)


def etag(record: SandboxRecord) -> str:
    """A strong validator: it changes on every write, two in one second included."""
    digest = hashlib.sha1(f"{record.crm_id}|{record.updated_at.isoformat()}".encode())
    return '"' + base64.b64encode(digest.digest()).decode() + '"'


def entity_tags(value: str, header: str) -> set[str]:
    """The tags of an If-Match / If-None-Match list, without the ``-gzip`` suffix Salesforce
    adds when it compressed the response the tag came from."""
    tags = set()
    for raw in value.split(","):
        tag = raw.strip().removeprefix("W/")
        if tag == "*":
            tags.add(tag)
            continue
        if len(tag) < 2 or not (tag.startswith('"') and tag.endswith('"')):
            raise SandboxError(
                400, f"Invalid {header} header value: {value}", "INVALID_HEADER_TYPE"
            )
        tags.add(tag.removesuffix('-gzip"').rstrip('"') + '"')
    return tags


def precondition_failed(message: str) -> SandboxError:
    return SandboxError(412, message, "PRECONDITION_FAILED")


def check_write_preconditions(request: HttpRequest, record: SandboxRecord) -> None:
    """If-Unmodified-Since on any object; If-Match / If-None-Match on Account rows only."""
    header = request.headers.get("If-Unmodified-Since")
    if header is not None and last_modified(record) > http_date(header, "If-Unmodified-Since"):
        raise precondition_failed(
            "The requested resource has been modified since the specified If-Unmodified-Since date."
        )
    if record.object_name != "Account":
        return
    current = etag(record)
    if_match = request.headers.get("If-Match")
    if if_match is not None:
        tags = entity_tags(if_match, "If-Match")
        if "*" not in tags and current not in tags:
            raise precondition_failed("The requested resource does not match any If-Match ETag.")
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        tags = entity_tags(if_none_match, "If-None-Match")
        if "*" in tags or current in tags:
            raise precondition_failed("The requested resource matches an If-None-Match ETag.")


def not_modified(request: HttpRequest, record: SandboxRecord) -> bool:
    """True when a GET's If-None-Match (Account) or If-Modified-Since says: unchanged."""
    if record.object_name == "Account" and "If-None-Match" in request.headers:
        try:
            tags = entity_tags(request.headers["If-None-Match"], "If-None-Match")
        except SandboxError:
            tags = set()
        if "*" in tags or etag(record) in tags:
            return True
    header = request.headers.get("If-Modified-Since")
    if header is None:
        return False
    try:
        since = http_date(header, "If-Modified-Since")
    except SandboxError:
        return False  # HTTP: an unreadable If-Modified-Since is ignored
    return last_modified(record) <= since
