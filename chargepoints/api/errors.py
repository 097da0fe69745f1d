"""API errors as JSON: ``{"error": "<code>", "detail": "<one line for a human>", ...}``.

Every error of /api/ is JSON, whoever raises it: DRF's exceptions, Django's
(a body over DATA_UPLOAD_MAX_MEMORY_SIZE is 413 ``request_too_large``), an
unexpected exception (500 ``server_error``, logged with its traceback), and the
errors Django answers before or outside a view (the ``handler400/404/500`` views
below, for paths under /api/).
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    response = drf_exception_handler(exc, context)
    if response is None:
        return _django_error_response(exc, context.get("request"))
    if isinstance(exc, exceptions.ValidationError):
        response.data = {
            "error": "invalid_request",
            "detail": _first_message(exc.detail),
            "fields": exc.detail,
        }
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        response.data = {
            "error": codes if isinstance(codes, str) else "error",
            "detail": str(exc.detail) if not isinstance(exc.detail, (dict, list)) else exc.detail,
        }
    return response


def _django_error_response(exc: Exception, request) -> JsonResponse:
    """The JSON answer to an exception DRF leaves to Django."""
    if isinstance(exc, RequestDataTooBig):
        return _json(413, "request_too_large", "The request body is larger than this server accepts.")
    if isinstance(exc, SuspiciousOperation):
        logger.warning("Suspicious API request refused: %s", exc)
        return _json(400, "bad_request", "The request was refused as malformed.")
    logger.error(
        "Unexpected error answering %s %s",
        getattr(request, "method", "?"),
        getattr(request, "path", "?"),
        exc_info=exc,
    )
    return _json(500, "server_error", "The server failed to answer this request; it is logged.")


def _json(status: int, error: str, detail: str) -> JsonResponse:
    return JsonResponse({"error": error, "detail": detail}, status=status)


def _first_message(detail) -> str:
    if isinstance(detail, dict):
        for name, value in detail.items():
            message = _first_message(value)
            return message if name == "non_field_errors" else f"{name}: {message}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


# --- Django's error views (levity_site.urls), JSON under /api/ ----------------------


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def bad_request(request: HttpRequest, exception: Exception, **kwargs) -> HttpResponse:
    if not _is_api(request):
        return defaults.bad_request(request, exception, **kwargs)
    if isinstance(exception, RequestDataTooBig):
        return _json(413, "request_too_large", "The request body is larger than this server accepts.")
    return _json(400, "bad_request", "The request was refused as malformed.")


def page_not_found(request: HttpRequest, exception: Exception, **kwargs) -> HttpResponse:
    if not _is_api(request):
        return defaults.page_not_found(request, exception, **kwargs)
    return _json(404, "not_found", "No such API endpoint.")


def permission_denied(request: HttpRequest, exception: Exception, **kwargs) -> HttpResponse:
    if not _is_api(request):
        return defaults.permission_denied(request, exception, **kwargs)
    return _json(403, "permission_denied", "You do not have permission to perform this action.")


def server_error(request: HttpRequest, **kwargs) -> HttpResponse:
    if not _is_api(request):
        return defaults.server_error(request, **kwargs)
    return _json(500, "server_error", "The server failed to answer this request; it is logged.")
