"""Every API error is JSON: ``{"detail": "<one clear sentence>"}``, plus field errors where there are some."""

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import HttpError, ValidationError

from api.auth import NotAuthenticated, RateLimited

try:
    from ninja.responses import Status
except ImportError:  # django-ninja before 1.6 takes a (status, body) tuple, which later versions deprecate

    def Status(status: int, body):  # noqa: N802
        return status, body


log = logging.getLogger(__name__)


class ApiError(HttpError):
    """A refusal with a status, a message and optional extra JSON members (``errors``, ``mission``)."""

    def __init__(self, status: int, detail: str, **extra):
        self.extra = extra
        super().__init__(status, detail)


def _validation_detail(errors: list[dict]) -> str:
    """The first problems as one sentence: ``body.budget_usd: Input should be a valid string``."""
    parts = []
    for error in errors[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else error.get("msg", "invalid"))
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "Invalid request: " + "; ".join(parts) + more + "."


def install_error_handlers(api: NinjaAPI) -> None:
    def respond(request: HttpRequest, status: int, body: dict) -> HttpResponse:
        return api.create_response(request, body, status=status)

    @api.exception_handler(ApiError)
    def api_error(request, exc: ApiError):
        return respond(request, exc.status_code, {"detail": exc.message, **exc.extra})

    @api.exception_handler(NotAuthenticated)
    def not_authenticated(request, exc: NotAuthenticated):
        response = respond(request, 401, {"detail": exc.message})
        response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response

    @api.exception_handler(RateLimited)
    def rate_limited(request, exc: RateLimited):
        response = respond(request, 429, {"detail": exc.message})
        response["Retry-After"] = str(exc.retry_after_s)
        return response

    @api.exception_handler(HttpError)
    def http_error(request, exc: HttpError):
        return respond(request, exc.status_code, {"detail": str(exc)})

    @api.exception_handler(ValidationError)
    def validation_error(request, exc: ValidationError):
        # The offending input is not echoed back: it may be megabytes, or something a log should not keep.
        errors = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in exc.errors]
        for error in errors:  # ("body", "payload", "title") -> ("body", "title"): the view's parameter is no field
            loc = list(error.get("loc", ()))
            error["loc"] = loc[:1] + loc[2:] if loc[:2] == ["body", "payload"] else loc
        return respond(request, 422, {"detail": _validation_detail(errors), "errors": errors})

    @api.exception_handler(Http404)
    def not_found(request, exc: Http404):
        return respond(request, 404, {"detail": str(exc) or "Not found."})

    @api.exception_handler(PermissionDenied)
    def forbidden(request, exc: PermissionDenied):
        return respond(request, 403, {"detail": str(exc) or "You may not do that."})

    @api.exception_handler(RequestDataTooBig)
    def too_big(request, exc: RequestDataTooBig):
        return respond(request, 413, {"detail": "The request body is too large."})

    @api.exception_handler(Exception)
    def server_error(request, exc: Exception):
        # A client gets JSON it can parse, never the HTML error page; the traceback goes to the log.
        log.exception("API request failed: %s %s", request.method, request.path)
        return respond(request, 500, {"detail": "Internal server error; it has been logged."})
