"""Every answer the API gives is JSON, the errors too: bodies over the size limit (413),
throttled authentication (429), unknown paths (404) and server errors (500) included, so a
client never has to parse an HTML page.

Error bodies have two shapes: ``{"detail": "…"}`` for the request as a whole, and
``{"<dotted.path>": ["…"]}`` for bad values, each keyed by the field it is about.
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

API_PREFIX = "/api/"


def body_limit_label() -> str:
    return f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE // (1024 * 1024)} MiB"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"

    def __init__(self) -> None:
        super().__init__(
            f"The request body is over the {body_limit_label()} limit "
            f"({settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes)."
        )


def api_exception_handler(exc: Exception, context: dict):
    """DRF's handler, plus Django's "body too big", which DRF leaves to an HTML 400."""
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    return drf_exception_handler(exc, context)


# --- Django's own error views, JSON under /api/ (config/urls.py) -----------------------------
def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def _json_error(detail: str, status_code: int) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status_code)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return _json_error(PayloadTooLarge().detail, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    return _json_error("Bad request.", status.HTTP_400_BAD_REQUEST)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not _is_api(request):
        return defaults.permission_denied(request, exception)
    return _json_error("You do not have permission to perform this action.", 403)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not _is_api(request):
        return defaults.page_not_found(request, exception)
    return _json_error("Not found.", status.HTTP_404_NOT_FOUND)


def server_error(request: HttpRequest) -> HttpResponse:
    if not _is_api(request):
        return defaults.server_error(request)
    return _json_error("Server error: it has been logged.", status.HTTP_500_INTERNAL_SERVER_ERROR)
