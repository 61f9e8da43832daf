"""RFC 9457 problem details for every error, validation included.

The web layer raises the problems below; the domain and the applications raise the
errors of ``shared.kernel``. ``install_problem_handlers`` is the one place that maps
both, FastAPI's validation errors and anything unexpected to
``application/problem+json``.
A server error is a bug: it is logged with its traceback (no request body) and
answered with a 500 problem that reveals nothing.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.kernel import (
    Conflicting,
    DomainError,
    InvalidCommand,
    NotKnown,
    NotPermitted,
    RuleBroken,
    VersionMismatch,
)
from shared.logging import get_logger

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://solidarity.example/problems/"

log = get_logger("problems")


class Problem(Exception):
    """An error with an HTTP meaning. Subclasses set status and type."""

    status: int = 400
    type: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


class NotFound(Problem):
    status, type, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, type, title = 409, "conflict", "Conflict"


class PreconditionFailed(Problem):
    status, type, title = 412, "precondition-failed", "Precondition failed"


class Unauthorized(Problem):
    status, type, title = 401, "unauthorized", "Unauthorized"


class Forbidden(Problem):
    status, type, title = 403, "forbidden", "Forbidden"


class Unprocessable(Problem):
    """A request that is well formed but breaks a rule (422)."""

    status, type, title = 422, "unprocessable", "Unprocessable request"


def problem_response(
    status: int,
    type_: str,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    instance: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + type_,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """The validation errors without the submitted values (they may be personal)."""
    out = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            loc = loc[:1]  # "body", not a character offset
        out.append(
            {
                "field": _field_name(loc),
                "message": str(err.get("msg", "invalid")),
                "code": str(err.get("type", "invalid")),
            }
        )
    return out


_DOMAIN_PROBLEMS: tuple[tuple[type[DomainError], type[Problem]], ...] = (
    (NotKnown, NotFound),
    (Conflicting, Conflict),
    (NotPermitted, Forbidden),
)


def domain_problem(exc: DomainError, instance: str) -> JSONResponse:
    """The one mapping of the domain's errors to problems."""
    if isinstance(exc, InvalidCommand):
        return problem_response(
            422,
            "validation",
            "The request is not valid",
            f"Invalid field: {exc.location}.{exc.field}: {exc.message}",
            errors=[{"field": f"{exc.location}.{exc.field}", "message": exc.message,
                     "code": "rule"}],
            instance=instance,
        )
    if isinstance(exc, VersionMismatch):
        return problem_response(
            PreconditionFailed.status, PreconditionFailed.type, PreconditionFailed.title,
            exc.message, headers={"ETag": f'"{exc.current}"'}, instance=instance,
        )
    if isinstance(exc, RuleBroken):
        return problem_response(
            422,
            "rule-violated",
            "A rule of the service refused the request",
            exc.message,
            instance=instance,
        )
    for error, problem in _DOMAIN_PROBLEMS:
        if isinstance(exc, error):
            return problem_response(problem.status, problem.type, problem.title, exc.message,
                                    instance=instance)
    raise exc


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.type,
            exc.title,
            exc.detail,
            errors=exc.errors,
            headers=exc.headers,
            instance=request.url.path,
        )

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return domain_problem(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_errors(exc)
        fields = ", ".join(sorted({e["field"] for e in errors}))
        return problem_response(
            422,
            "validation",
            "The request is not valid",
            f"Invalid fields: {fields}",
            errors=errors,
            instance=request.url.path,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized"}
        return problem_response(
            exc.status_code,
            {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error"),
            titles.get(exc.status_code, "HTTP error"),
            str(exc.detail),
            headers=getattr(exc, "headers", None),
            instance=request.url.path,
        )

    @app.exception_handler(IntegrityError)
    async def _conflict(request: Request, exc: IntegrityError) -> JSONResponse:
        # An optimistic-concurrency race lost at the store: someone else saved first.
        return problem_response(
            409,
            "conflict",
            "Conflict",
            "The resource was changed by another request at the same time; "
            "reload it and try again.",
            instance=request.url.path,
        )

    @app.exception_handler(AggregateNotFoundError)
    async def _missing(request: Request, exc: AggregateNotFoundError) -> JSONResponse:
        return problem_response(
            404, "not-found", "Not found", "No such resource.", instance=request.url.path
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", path=request.url.path, error_type=type(exc).__name__,
                  exc_info=exc)
        return problem_response(
            500,
            "internal",
            "Internal server error",
            "The server failed to handle the request. It has been logged.",
            instance=request.url.path,
        )
