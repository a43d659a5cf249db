"""Salesforce errors as integrations/crm/errors.py, keeping Salesforce's own message,
status and errorCode (the first error of its array; collection SaveResults say
``statusCode``).

Salesforce decides by status first and errorCode second: 401 is an expired or invalid
session; 403 REQUEST_LIMIT_EXCEEDED is an API limit (Salesforce never answers 429), either
the daily one (``TotalRequests Limit exceeded.``), which frees as the rolling 24 hours pass,
or the one on requests running at once (``ConcurrentPerOrgLongTxn Limit exceeded.``,
``ConcurrentRequests (Concurrent API Requests) Limit exceeded.``), which frees within
seconds, so each gets its own retry time; other 403s and the INSUFFICIENT_ACCESS family
(which Salesforce answers with 400, e.g. a record shared read-only) are refusals; 404
covers deleted records too; 412 is a failed precondition; 5xx are transient; any other 400
is a validation error naming the fields (INVALID_FIELD names its column only in the
message, so it is read from there: an unknown column, or a filter or sort on a field the
describe says cannot be filtered or sorted).
"""

import re
from datetime import UTC, datetime, timedelta

from simple_salesforce.exceptions import SalesforceError

from integrations.crm import errors
from integrations.crm.salesforce_values import PROVIDER

# Errors that name their field only in the message: an unknown column, and a filter or sort
# on a field the describe marks filterable / sortable false.
_NO_COLUMN = re.compile(r"No such column '([^']+)'|field '([^']+)' can not be (?:filtered|sorted)")
ACCESS_CODES = frozenset(
    {
        "INSUFFICIENT_ACCESS",
        "INSUFFICIENT_ACCESS_OR_READONLY",
        "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
        "INSUFFICIENT_PRIVILEGES",
        "API_DISABLED_FOR_ORG",
    }
)
DUPLICATE_CODES = frozenset({"DUPLICATE_VALUE", "DUPLICATES_DETECTED"})
# The concurrent limit frees as soon as one long-running request ends; Salesforce gives no
# Retry-After, so a short fixed wait.
CONCURRENT_RETRY_SECONDS = 5.0


def limit_exceeded(message: str, **kwargs: object) -> errors.RateLimited:
    """RateLimited for a REQUEST_LIMIT_EXCEEDED, to be retried when its limit frees: the
    concurrent one in seconds, the daily one at the next UTC midnight (the message stays
    Salesforce's own, which names the limit; the retry time says when)."""
    if message.startswith("Concurrent"):
        return errors.RateLimited(message, retry_after=CONCURRENT_RETRY_SECONDS, **kwargs)
    if message.startswith("TotalRequests"):
        return errors.RateLimited(message, retry_after=seconds_to_next_day(), **kwargs)
    return errors.RateLimited(message, **kwargs)  # an unknown limit: the caller's back-off


def seconds_to_next_day(now: datetime | None = None) -> float:
    """When to retry after REQUEST_LIMIT_EXCEEDED. Salesforce counts API requests over a
    rolling 24 hours and says nothing about when capacity returns; the time to the next
    UTC midnight is a bounded estimate (at most a day) that lets callers park the work."""
    now = now or datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max((midnight - now).total_seconds(), 1.0)


def _bad_fields(errors_list: list[dict]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for error in errors_list:
        message = str(error.get("message") or error.get("errorCode") or "")
        names = error.get("fields") or []
        if not names and (match := _NO_COLUMN.search(message)):
            names = [match.group(1) or match.group(2)]
        for name in names:
            fields.setdefault(str(name), message)
    return fields


def from_errors(
    status: int | None, errors_list: list[dict], body: object, fallback: str
) -> errors.CrmError:
    """The hierarchy's error for a Salesforce error array (REST errors use ``errorCode``,
    collection SaveResults ``statusCode``)."""
    first = errors_list[0] if errors_list else {}
    code = first.get("errorCode") or first.get("statusCode") or first.get("error")
    message = str(first.get("message") or first.get("error_description") or fallback)
    kwargs: dict = {"provider": PROVIDER, "status": status, "code": code, "body": body}
    if status == 401:
        return errors.AuthExpired(message, **kwargs)
    if code == "REQUEST_LIMIT_EXCEEDED":
        return limit_exceeded(message, **kwargs)
    if status == 403 or code in ACCESS_CODES:
        return errors.PermissionDenied(message, **kwargs)
    if status == 404 or code in ("NOT_FOUND", "ENTITY_IS_DELETED"):
        return errors.NotFound(message, **kwargs)
    if status in (409, 412) or code in DUPLICATE_CODES or code == "PRECONDITION_FAILED":
        return errors.Conflict(message, **kwargs)
    if status is not None and status >= 500:
        return errors.Transient(message, **kwargs)
    if status is None or status == 400:
        return errors.ValidationFailed(message, fields=_bad_fields(errors_list), **kwargs)
    return errors.CrmError(message, **kwargs)


def translate(exc: SalesforceError) -> errors.CrmError:
    content = exc.content
    if isinstance(content, dict):
        content = [content]
    errors_list = [e for e in content if isinstance(e, dict)] if isinstance(content, list) else []
    fallback = content if isinstance(content, str) and content else f"HTTP {exc.status}"
    return from_errors(exc.status, errors_list, exc.content, fallback)
