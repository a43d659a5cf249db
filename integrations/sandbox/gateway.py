"""What every sandbox endpoint does around its own work, the way each real CRM does it.

``@endpoint(provider, kind)`` authenticates the bearer token, injects the account's
configured faults, enforces its rate limits, answers errors in the CRM's own body shape,
adds the CRM's headers and logs the request (SandboxRequest) with what it read and wrote.
A view receives the request and a ``Call`` and returns a ``Reply`` or raises ``SandboxError``.
"""

import contextlib
import functools
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from django.http import HttpRequest, HttpResponse, QueryDict
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt

from integrations.sandbox import in_flight, store
from integrations.sandbox.models import (
    Provider,
    RequestKind,
    SandboxAccount,
    SandboxRequest,
    SandboxToken,
    SandboxUser,
)

logger = logging.getLogger(__name__)

HUBSPOT_CONTENT_TYPE = "application/json;charset=utf-8"
SALESFORCE_CONTENT_TYPE = "application/json;charset=UTF-8"
HUBSPOT_BURST_WINDOW = timedelta(seconds=10)
CONCURRENT_LIMIT_MESSAGE = "ConcurrentPerOrgLongTxn Limit exceeded."
DROP_CONNECTION = "sandbox.drop_connection"


class SandboxError(Exception):
    """An error answered in the CRM's own shape.

    ``code`` is HubSpot's ``category`` or Salesforce's ``errorCode``. ``body`` replaces the
    default body entirely when a CRM answers something unusual for that case.
    """

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        *,
        fields: list[str] | None = None,
        extra: dict | None = None,
        body: object = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.fields = fields
        self.extra = extra or {}
        self.body = body
        self.headers = headers or {}

    def render(self, provider: str, correlation_id: str) -> object:
        if self.body is not None:
            return self.body
        if provider == Provider.OPENAI:
            error = {
                "message": self.message,
                "type": "invalid_request_error",
                "param": None,
                "code": self.code,
            }
            error.update(self.extra)
            return {"error": error}
        if provider == Provider.SALESFORCE:
            error: dict = {"message": self.message, "errorCode": self.code or "UNKNOWN_EXCEPTION"}
            if self.fields is not None:
                error["fields"] = self.fields
            return [error]
        body: dict = {"status": "error", "message": self.message, "correlationId": correlation_id}
        if self.code:
            body["category"] = self.code
        body.update(self.extra)
        return body


@dataclass
class Reply:
    data: object = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error_code: str = ""
    # A finished response answered as is (an HTML page, a redirect, an empty body), for the
    # few endpoints whose real counterpart does not answer JSON.
    response: HttpResponse | None = None


@dataclass
class Call:
    """One sandbox request as the view sees it; views note what they read and wrote."""

    request: HttpRequest
    provider: str
    kind: str
    correlation_id: str
    account: SandboxAccount | None = None
    user: SandboxUser | None = None
    token: SandboxToken | None = None
    object_name: str = ""
    record_ids: list[str] = field(default_factory=list)
    written: dict[str, dict] = field(default_factory=dict)

    def json_body(self) -> object:
        """The request body as JSON, or the CRM's own "malformed body" error."""
        try:
            return json.loads(self.request.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            if self.provider == Provider.SALESFORCE:
                raise SandboxError(
                    400, f"Unexpected character: {exc}", "JSON_PARSER_ERROR"
                ) from None
            raise SandboxError(
                400, f"Invalid input JSON on line 1: {exc}", "VALIDATION_ERROR"
            ) from None

    def form(self) -> QueryDict:
        """The request's form fields; none when the body cannot be read as a form (a
        multipart body without its boundary), so the endpoint answers its own "missing
        parameter" error, as the CRMs' token endpoints do, instead of crashing."""
        try:
            return self.request.POST
        except MultiPartParserError:
            return QueryDict()

    def require_scope(self, scope: str) -> None:
        """Refuse a HubSpot call whose token was granted scopes, but not this one.

        Tokens issued without any scopes (the default) may do everything.
        """
        granted = set(self.token.scopes.split()) if self.token and self.token.scopes else None
        if granted is None or scope in granted:
            return
        raise SandboxError(
            403,
            "This app hasn't been granted all required scopes to make this call. Read more "
            "about required scopes here: https://developers.hubspot.com/scopes.",
            "MISSING_SCOPES",
            extra={
                "errors": [
                    {
                        "message": "One or more of the following scopes are required.",
                        "context": {"requiredGranularScopes": [scope]},
                    }
                ],
                "links": {"scopes": "https://developers.hubspot.com/scopes"},
            },
        )

    def note_read(self, object_name: str, ids: list[str]) -> None:
        self.object_name = self.object_name or object_name
        self.record_ids.extend(ids)

    def note_write(self, object_name: str, crm_id: str, values: dict) -> None:
        self.object_name = self.object_name or object_name
        self.record_ids.append(crm_id)
        self.written.setdefault(crm_id, {}).update(values)


def endpoint(
    provider: str, kind: str, *, authenticate: bool = True
) -> Callable[[Callable[..., Reply]], Callable[..., HttpResponse]]:
    def decorate(view: Callable[..., Reply]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            started = time.monotonic()
            started_at = store.now()
            call = Call(request, provider, kind, correlation_id=str(uuid.uuid4()))
            drop = False
            try:
                if authenticate:
                    _authenticate(call)
                with _in_flight(call):
                    drop = _inject_faults(call)
                    _enforce_limits(call)
                    reply = view(request, call, *args, **kwargs)
                if reply.response is not None:
                    reply.status = reply.response.status_code
            except SandboxError as error:
                reply = Reply(
                    error.render(provider, call.correlation_id),
                    error.status,
                    error.headers,
                    error.code or "",
                )
            except Exception:
                logger.exception("sandbox %s %s failed", request.method, request.path)
                code = "INTERNAL_ERROR" if provider == Provider.HUBSPOT else "UNKNOWN_EXCEPTION"
                error = SandboxError(500, "internal error", code)
                reply = Reply(error.render(provider, call.correlation_id), 500, error_code=code)
            response = _render(call, reply, drop=drop)
            _log(call, reply, started_at, time.monotonic() - started)
            return response

        return wrapper

    return decorate


def _authenticate(call: Call) -> None:
    header = call.request.headers.get("Authorization", "")
    scheme, _, token_value = header.partition(" ")
    token = None
    if scheme.lower() in {"bearer", "oauth"} and token_value.strip():
        token = (
            SandboxToken.objects.select_related("account", "user")
            .filter(access_token=token_value.strip(), account__provider=call.provider)
            .first()
        )
    if token is None or token.revoked or not token.user.is_active:
        raise _invalid_auth(call.provider)
    if token.expires_at is not None and token.expires_at <= store.now():
        if call.provider == Provider.SALESFORCE:
            raise SandboxError(401, "Session expired or invalid", "INVALID_SESSION_ID")
        ago = int((store.now() - token.expires_at).total_seconds())
        raise SandboxError(
            401,
            f"The OAuth token used to make this call expired {ago} second(s) ago.",
            "EXPIRED_AUTHENTICATION",
        )
    if call.provider == Provider.SALESFORCE and token.scopes:
        granted = set(token.scopes.split())
        if not granted & {"api", "full"}:
            # Salesforce refuses a session without API access as an invalid one: 401.
            raise SandboxError(
                401, "This session is not valid for use with the REST API", "INVALID_SESSION_ID"
            )
    call.token, call.account, call.user = token, token.account, token.user


def _invalid_auth(provider: str) -> SandboxError:
    if provider == Provider.OPENAI:
        return SandboxError(401, "Incorrect API key provided.", "invalid_api_key")
    if provider == Provider.SALESFORCE:
        return SandboxError(401, "Session expired or invalid", "INVALID_SESSION_ID")
    return SandboxError(
        401,
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and "
        "you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        "INVALID_AUTHENTICATION",
    )


def _inject_faults(call: Call) -> bool:
    """Apply the account's fault settings; True means: drop this connection mid-response."""
    account = call.account
    if account is None:
        return False
    if account.latency_ms:
        time.sleep(account.latency_ms / 1000)
    if account.timeout_rate and random.random() < account.timeout_rate:
        time.sleep(account.timeout_seconds)
        raise SandboxError(
            504,
            "Gateway timeout",
            "TIMEOUT" if call.provider == Provider.HUBSPOT else "SERVER_UNAVAILABLE",
        )
    if account.error_rate and random.random() < account.error_rate:
        if call.provider == Provider.SALESFORCE:
            raise SandboxError(503, "Server temporarily unavailable", "SERVER_UNAVAILABLE")
        raise SandboxError(502, "Bad gateway", "INTERNAL_ERROR")
    return bool(account.drop_rate and random.random() < account.drop_rate)


@contextlib.contextmanager
def _in_flight(call: Call) -> Iterator[None]:
    """Hold one of a Salesforce org's concurrent request slots for the request (in_flight.py)."""
    account = call.account
    if call.provider != Provider.SALESFORCE or account is None or call.kind == RequestKind.AUTH:
        yield
        return
    try:
        with in_flight.slot(account.pk, account.concurrent_limit):
            yield
    except in_flight.AllTaken:  # only ever raised on entry, before the request runs
        raise SandboxError(403, CONCURRENT_LIMIT_MESSAGE, "REQUEST_LIMIT_EXCEEDED") from None


def _counted(account: SandboxAccount, since) -> int:
    return (
        SandboxRequest.objects.filter(account=account, started_at__gte=since)
        .exclude(status=429)
        .exclude(error_code="REQUEST_LIMIT_EXCEEDED")
        .count()
    )


def _enforce_limits(call: Call) -> None:
    account = call.account
    if account is None or call.kind in {RequestKind.AUTH, RequestKind.MODEL}:
        return
    now = store.now()
    if call.provider == Provider.SALESFORCE:
        used = _counted(account, now - timedelta(days=1))
        call.request.sandbox_usage = (used + 1, account.daily_limit)
        if account.daily_limit and used >= account.daily_limit:
            raise SandboxError(403, "TotalRequests Limit exceeded.", "REQUEST_LIMIT_EXCEEDED")
        return

    if call.kind == RequestKind.SEARCH:
        recent = SandboxRequest.objects.filter(
            account=account, kind=RequestKind.SEARCH, started_at__gte=now - timedelta(seconds=1)
        ).exclude(status=429)
        if account.search_per_second and recent.count() >= account.search_per_second:
            raise _rate_limited(call, "SECONDLY", "You have reached your secondly limit.")
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    daily_used = _counted(account, midnight)
    burst_used = _counted(account, now - HUBSPOT_BURST_WINDOW)
    call.request.sandbox_usage = (daily_used + 1, burst_used + 1)
    if account.daily_limit and daily_used >= account.daily_limit:
        raise _rate_limited(call, "DAILY", "You have reached your daily limit.")
    if account.burst_limit and burst_used >= account.burst_limit:
        raise _rate_limited(
            call, "TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit."
        )


def _rate_limited(call: Call, policy: str, message: str) -> SandboxError:
    return SandboxError(
        429,
        message,
        body={
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": call.correlation_id,
            "policyName": policy,
            "requestId": str(uuid.uuid4()),
        },
    )


CONTENT_TYPES = {
    Provider.HUBSPOT: HUBSPOT_CONTENT_TYPE,
    Provider.SALESFORCE: SALESFORCE_CONTENT_TYPE,
    Provider.OPENAI: "application/json",
}


def _render(call: Call, reply: Reply, *, drop: bool) -> HttpResponse:
    if reply.response is not None:
        response = reply.response
    elif reply.data is None and reply.status in {204, 304}:
        response = HttpResponse(status=reply.status)
    else:
        response = HttpResponse(
            json.dumps(reply.data), status=reply.status, content_type=CONTENT_TYPES[call.provider]
        )
    for name, value in reply.headers.items():
        response[name] = value
    usage = getattr(call.request, "sandbox_usage", None)
    if call.provider == Provider.SALESFORCE:
        if usage:
            response["Sforce-Limit-Info"] = f"api-usage={usage[0]}/{usage[1]}"
    elif call.provider == Provider.HUBSPOT:
        response["X-HubSpot-Correlation-Id"] = call.correlation_id
        account = call.account
        if usage and account and call.kind != RequestKind.SEARCH:
            daily_used, burst_used = usage
            token = call.token
            if token is not None and token.refresh_token is None and token.expires_at is None:
                # HubSpot leaves the daily headers off OAuth-authenticated calls.
                response["X-HubSpot-RateLimit-Daily"] = str(account.daily_limit)
                response["X-HubSpot-RateLimit-Daily-Remaining"] = str(
                    max(account.daily_limit - daily_used, 0)
                )
            response["X-HubSpot-RateLimit-Interval-Milliseconds"] = "10000"
            response["X-HubSpot-RateLimit-Max"] = str(account.burst_limit)
            response["X-HubSpot-RateLimit-Remaining"] = str(
                max(account.burst_limit - burst_used, 0)
            )
    if drop:
        if response.status_code in {204, 304}:
            # A client reads no body after these, so a cut body would go unnoticed; a
            # connection cut before the answer is what it sees instead. (The request log
            # keeps the real status: the write happened.)
            response.status_code = 200
        # Promise more bytes than are sent: the client sees the connection cut mid-body.
        response["Content-Length"] = str(len(response.content) + 1024)
        # ...once the server closes it (see server.SandboxRequestHandler).
        call.request.META[DROP_CONNECTION] = True
    return response


def _log(call: Call, reply: Reply, started_at, elapsed: float) -> None:
    request = call.request
    SandboxRequest.objects.create(
        account=call.account,
        user=call.user,
        provider=call.provider,
        method=request.method or "",
        path=request.path.replace("\x00", "%00")[:500],  # PostgreSQL text holds no NUL
        query=request.META.get("QUERY_STRING", ""),
        kind=call.kind,
        status=reply.status,
        error_code=reply.error_code,
        object_name=call.object_name,
        record_ids=call.record_ids if reply.status < 400 else [],
        written=call.written if reply.status < 400 else {},
        started_at=started_at,
        duration_ms=round(elapsed * 1000, 2),
        correlation_id=call.correlation_id,
    )
