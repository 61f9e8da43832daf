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
from pydantic import BaseModel, ConfigDict

from shared.web.auth import Allow, Principal
from shared.web.idempotency import FirstResponse
from shared.web.problems import PreconditionFailed
from shared.web.types import ascii_int

A = TypeVar("A")

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]
Cursor = Annotated[str | None, Query(max_length=400, description="next_cursor of the page before")]
# Why someone reads personal data: recorded with the read (sealed with the subject's
# key) before anything is shown (shared.audit.access). Optional: "not stated" is kept too.
Purpose = Annotated[str | None, Query(
    min_length=3, max_length=200,
    description="Why you are reading it. Every read of personal data is recorded, with "
    "this purpose, before it is shown.")]


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


class Strict(BaseModel):
    """A request body: a field the endpoint does not know is refused (422), not dropped."""

    model_config = ConfigDict(extra="forbid")


T = TypeVar("T")


def created_once(request: Request, service: str, principal: Principal, key: str | None,
                 route: str, body: BaseModel, *, create: Callable[[], T],
                 ident: Callable[[T], str], load: Callable[[str], T],
                 show: Callable[[T], tuple[BaseModel, str, int]]) -> Response:
    """Answer a creating POST with 201, ``Location`` and ``ETag``, once per
    ``Idempotency-Key`` (``shared.web.idempotency``): ``create`` makes the resource,
    ``ident`` names it, ``show`` presents it (model, location, version); a retry gets
    the answer first given, whatever has happened to the resource since (``load`` is
    only for a retry whose first answer was not kept)."""
    made: list[T] = []

    def run() -> str:
        made.append(create())
        return ident(made[0])

    def present(resource_id: str) -> FirstResponse:
        model, location, version = show(made[0] if made else load(resource_id))
        return FirstResponse(201, model.model_dump_json().encode(),
                             {"Location": location, "ETag": etag(version)})

    first = runtime_of(request, service).idempotency.respond(
        key=key, principal=principal, route=route, body=body.model_dump_json().encode(),
        create=run, present=present)
    return first.response()
