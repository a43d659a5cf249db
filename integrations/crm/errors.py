"""One error hierarchy for both CRMs; every adapter maps the CRM's own errors onto it.

The CRM's own message, status and code are kept on every error, so a refusal can be shown
to a person exactly as the CRM worded it.
"""

from collections.abc import Mapping


class CrmError(Exception):
    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        code: str | None = None,
        body: object = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status = status
        self.code = code
        self.body = body

    def __str__(self) -> str:
        where = f"{self.provider} " if self.provider else ""
        status = (
            f" (HTTP {self.status}{', ' + self.code if self.code else ''})" if self.status else ""
        )
        return f"{where}{self.message}{status}"


class NotFound(CrmError):
    """The record (or object) does not exist, or the user may not see it."""


class PermissionDenied(CrmError):
    """The CRM refused: missing scope, record access, or field-level security."""


class RateLimited(CrmError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ValidationFailed(CrmError):
    """The CRM rejected values; ``fields`` maps each bad property to the CRM's reason."""

    def __init__(self, message: str, *, fields: Mapping[str, str] | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.fields = dict(fields or {})


class Conflict(CrmError):
    """The record changed since it was read (precondition failed), or a duplicate exists."""


class Transient(CrmError):
    """A failure worth retrying later: 5xx, timeouts, dropped connections."""


class AuthExpired(CrmError):
    """The token is expired, revoked or invalid: the connection must be refreshed or redone."""
