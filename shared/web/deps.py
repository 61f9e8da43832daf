"""The web layer's dependencies and small helpers, used by every router: the current
principal (``Allow``), the service's application, ``If-Match``, ``Idempotency-Key``,
``ETag`` and ``Location``, and the roles in an endpoint's description.

Who acts and the request's correlation id reach the events one way: ``Allow`` sets
them (``shared.kernel.set_acting``) once it knows the principal, and every event reads
them when it is triggered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Query, Request, Response
from pydantic import BaseModel

from shared.web.auth import Allow, Principal
from shared.web.problems import PreconditionFailed
from shared.web.types import ascii_int

A = TypeVar("A")

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]
Cursor = Annotated[str | None, Query(max_length=400, description="next_cursor of the page before")]


def runtime_of(request: Request, service: str) -> Any:
    """The running service (application, idempotency, relay...) behind this request."""
    return request.app.state.runtimes[service]


def application(service: str, cls: type[A]) -> Callable[[Request], Awaitable[A]]:
    """A dependency that hands an endpoint its service's application."""

    async def dependency(request: Request) -> A:
        app = runtime_of(request, service).app
        assert isinstance(app, cls)
        return app

    dependency.__name__ = f"{service}_application"
    return dependency


def roles_doc(allow: Allow, text: str = "") -> str:
    return f"{text}\n\n{allow.describe()}".strip()


def etag(version: int) -> str:
    return f'"{version}"'


def expected_version(request: Request) -> int | None:
    """The version named by If-Match, if one is given, for the application to check."""
    header = request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return None
    value = header.split(",")[0].strip().removeprefix("W/").strip('"')
    version = ascii_int(value)  # ASCII digits that fit 64 bits, nothing else
    if version is None:
        raise PreconditionFailed("If-Match must be an ETag this service gave out.")
    return version


IfMatch = Annotated[int | None, Depends(expected_version)]


def created(response: Response, location: str, version: int | None = None) -> None:
    response.status_code = 201
    response.headers["Location"] = location
    if version is not None:
        response.headers["ETag"] = etag(version)


def with_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


def once(request: Request, service: str, principal: Principal, key: str | None, route: str,
         body: BaseModel, create: Callable[[], str]) -> str:
    """Run ``create`` once per ``Idempotency-Key``: a retry gets the first resource id."""
    resource_id, _ = runtime_of(request, service).idempotency.run(
        key=key, principal=principal, route=route,
        body=body.model_dump_json().encode(), create=create,
    )
    return str(resource_id)
