"""RFC 9457 problem details for every error, validation included.

The web layer raises the problems below; the domain and the applications raise the
errors of ``shared.kernel``. ``install_problem_handlers`` is the one place that maps
both, FastAPI's validation errors and anything unexpected to
``application/problem+json``.
A server error is a bug: it is logged with its traceback (no request body) and
answered with a 500 problem that reveals nothing. A store that cannot be reached is
not a bug: it is a 503 problem with ``Retry-After``, logged without the driver's
message (which may hold SQL and row values).
"""

from __future__ import annotations

import traceback
from typing import Any

import psycopg
import sqlalchemy.exc as sa_exc
from eventsourcing import persistence as es
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import get_route_path

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


class Invalid(Problem):
    """A field the web layer checks itself, answered as FastAPI's validation is (422
    ``validation``, ``errors`` naming each field)."""

    status, type, title = 422, "validation", "The request is not valid"


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


# What a store that cannot be reached raises, through each layer: the eventsourcing
# library (it wraps psycopg's and sqlite3's errors in its own; a pool that times out is
# its ConnectionUnavailableError, an OperationalError), SQLAlchemy (our own tables; its
# pool's TimeoutError) and psycopg itself (psycopg_pool's PoolTimeout is one).
STORE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    es.OperationalError,
    es.InterfaceError,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sa_exc.DisconnectionError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
# The library's catch-all for a driver error it has no finer class for (a connection
# closed by the server, a database file that is not one). Its subclasses (DataError,
# ProgrammingError, IntegrityError...) are bugs or conflicts, not an unreachable store.
_GENERIC_STORE_ERRORS = (es.DatabaseError, es.PersistenceError)
STORE_RETRY_AFTER_S = 5


def store_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) means the store cannot be
    reached now, rather than a bug."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        if isinstance(current, STORE_UNAVAILABLE) or type(current) in _GENERIC_STORE_ERRORS:
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        current, seen = current.__cause__, seen + 1
    return False


def unavailable_response(instance: str | None = None) -> JSONResponse:
    return problem_response(
        503,
        "store-unavailable",
        "Service unavailable",
        "The service cannot reach its data store just now. Try again in "
        f"{STORE_RETRY_AFTER_S} seconds (with the same Idempotency-Key, for a create).",
        headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
        instance=instance,
    )


def allowed_methods(request: Request) -> str:
    """Every method some route of the app takes at this path (Starlette names only
    the first route's). Routes of included routers are seen through FastAPI's route
    contexts, each with its full path."""
    path = get_route_path(request.scope)
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        route_methods = route.methods
        regex = getattr(route, "path_regex", None)
        if route_methods and regex is not None and regex.match(path):
            methods.update(route_methods)
    order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return ", ".join(sorted(methods, key=lambda m: (order.index(m) if m in order else 99, m)))


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


def frames(exc: BaseException, limit: int = 12) -> list[str]:
    """The innermost frames of the error's traceback as ``file:line function``."""
    frames = traceback.extract_tb(exc.__traceback__)[-limit:]
    return [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in frames]


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
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
            headers["Allow"] = allowed_methods(request)
        return problem_response(
            exc.status_code,
            {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error"),
            titles.get(exc.status_code, "HTTP error"),
            str(exc.detail),
            headers=headers or None,
            instance=request.url.path,
        )

    async def _store(request: Request, exc: Exception) -> JSONResponse:
        if not store_unavailable(exc):
            return await _unexpected(request, exc)
        # Not the error's text: it may hold the statement and its parameters.
        log.warning("store_unavailable", path=request.url.path, error_type=type(exc).__name__)
        return unavailable_response(request.url.path)

    for error in (*STORE_UNAVAILABLE, *_GENERIC_STORE_ERRORS):
        app.add_exception_handler(error, _store)

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
        if store_unavailable(exc):
            return await _store(request, exc)
        # Where it failed, not what it said: an error's text may hold a stored row
        # (PostgreSQL's "Failing row contains ..."), a body or a phone number.
        log.error("unhandled_error", path=request.url.path, error_type=type(exc).__name__,
                  where=frames(exc))
        return problem_response(
            500,
            "internal",
            "Internal server error",
            "The server failed to handle the request. It has been logged.",
            instance=request.url.path,
        )
