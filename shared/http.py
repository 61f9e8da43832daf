"""HTTP plumbing every service shares: request and correlation ids, the access log
(with personal query values redacted), a body-size limit, roles in the OpenAPI
description, ``Idempotency-Key`` for creating POSTs, and ``ETag``/``If-Match``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import structlog
from fastapi import FastAPI, Request, Response
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import Allow, Principal
from shared.logging import get_logger, redact_query
from shared.problems import (
    Conflict,
    PreconditionFailed,
    Unprocessable,
    problem_response,
)
from shared.store import idempotency_keys

access_log = get_logger("access")

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
REQUEST_ID_HEADER = "X-Request-ID"
CORRELATION_ID_HEADER = "X-Correlation-ID"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class RequestContextMiddleware:
    """Binds request_id and correlation_id for every log line; writes the access log."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = 65536) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        incoming = _header(scope, b"x-correlation-id")
        # It is stored in events and published: only an opaque id is taken, never text.
        correlation_id = incoming if incoming and _SAFE_ID.match(incoming) else request_id
        scope.setdefault("state", {})
        scope["state"]["request_id"] = request_id
        scope["state"]["correlation_id"] = correlation_id
        structlog.contextvars.bind_contextvars(
            request_id=request_id, correlation_id=correlation_id
        )
        started = time.perf_counter()
        status_holder: dict[str, int] = {"status": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = 1
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                headers.append((CORRELATION_ID_HEADER.encode(), correlation_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            body = await self._read_body(scope, receive)
            if body is None:
                response = problem_response(
                    413,
                    "payload-too-large",
                    "Payload too large",
                    f"The request body is larger than {self.max_body_bytes} bytes.",
                )
                await response(scope, receive, send_wrapper)
                return
            try:
                await self.app(scope, _replay(body, receive), send_wrapper)
            except Exception as exc:  # a bug: one structured log line, a problem, no details
                access_log.error("unhandled_error", path=scope.get("path"),
                                 error_type=type(exc).__name__, exc_info=exc)
                if status_holder["status"] == 500 and not status_holder.get("started"):
                    await problem_response(
                        500, "internal", "Internal server error",
                        "The server failed to handle the request. It has been logged.",
                    )(scope, receive, send_wrapper)
        finally:
            access_log.info(
                "request",
                method=scope.get("method"),
                path=scope.get("path"),
                query=redact_query(scope.get("query_string", b"").decode("latin-1")),
                status=status_holder["status"],
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            structlog.contextvars.clear_contextvars()


    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body (bodies are small here), or None past the limit. A declared
        Content-Length over the limit is refused before anything is read."""
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def install_http_basics(app: FastAPI, max_body_bytes: int) -> None:
    app.add_middleware(RequestContextMiddleware, max_body_bytes=max_body_bytes)


def roles_doc(allow: Allow, text: str = "") -> str:
    return f"{text}\n\n{allow.describe()}".strip()


def correlation_of(request: Request) -> str | None:
    return getattr(request.state, "correlation_id", None)


# ----------------------------------------------------------------- ETag / If-Match


def etag(version: int) -> str:
    return f'"{version}"'


def expected_version(request: Request) -> int | None:
    """The version named by If-Match, if one is given, for the application to check."""
    header = request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return None
    value = header.split(",")[0].strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise PreconditionFailed("If-Match must be an ETag this service gave out.")
    return int(value)


# -------------------------------------------------------------------- Idempotency


class Idempotency:
    """``Idempotency-Key`` for creating POSTs: a retry gets the first result.

    The key is reserved before the command runs (a concurrent duplicate gets 409), the
    new resource's id recorded after it; a failed command releases the key. Only a
    keyed hash of the body is kept, never the body.
    """

    def __init__(self, engine: Engine, secret: bytes) -> None:
        self.engine = engine
        self.secret = secret

    def _hash(self, body: bytes) -> str:
        return hmac.new(self.secret, body, hashlib.sha256).hexdigest()

    def run(
        self,
        *,
        key: str | None,
        principal: Principal,
        route: str,
        body: bytes,
        create: Callable[[], str],
    ) -> tuple[str, bool]:
        """Run ``create`` once per key; return (resource id, replayed?)."""
        if key is None:
            return create(), False
        if not (1 <= len(key) <= 200):
            raise Unprocessable(
                "Idempotency-Key must be 1 to 200 characters.",
                errors=[{"field": "header.Idempotency-Key", "message": "1 to 200 characters"}],
            )
        digest = self._hash(body)
        where = sa.and_(
            idempotency_keys.c.principal == principal.sub, idempotency_keys.c.key == key
        )
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(idempotency_keys).values(
                        principal=principal.sub,
                        key=key,
                        route=route,
                        request_hash=digest,
                        resource_id=None,
                        state="pending",
                        created_at=datetime.now(UTC),
                    )
                )
        except SAIntegrityError:
            with self.engine.connect() as conn:
                row = conn.execute(sa.select(idempotency_keys).where(where)).mappings().first()
            if row is None:  # released between our insert and select: try once more
                return self.run(key=key, principal=principal, route=route, body=body,
                                create=create)
            if row["route"] != route or row["request_hash"] != digest:
                raise Unprocessable(
                    "This Idempotency-Key was used for a different request.",
                    errors=[{"field": "header.Idempotency-Key",
                             "message": "reused with a different request"}],
                ) from None
            if row["state"] != "done" and _abandoned(row["created_at"]):
                # A crash between reserving the key and finishing left it pending.
                with self.engine.begin() as conn:
                    conn.execute(sa.delete(idempotency_keys).where(
                        where, idempotency_keys.c.state == "pending",
                        idempotency_keys.c.created_at == row["created_at"]))
                return self.run(key=key, principal=principal, route=route, body=body,
                                create=create)
            if row["state"] != "done":
                raise Conflict(
                    "A request with this Idempotency-Key is still in progress."
                ) from None
            return str(row["resource_id"]), True
        try:
            resource_id = create()
        except BaseException:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(idempotency_keys).where(where))
            raise
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(idempotency_keys)
                .where(where)
                .values(resource_id=resource_id, state="done")
            )
        return resource_id, False


PENDING_TIMEOUT = timedelta(seconds=60)


def _abandoned(created_at: datetime) -> bool:
    if created_at.tzinfo is None:  # SQLite hands back naive UTC
        created_at = created_at.replace(tzinfo=UTC)
    return datetime.now(UTC) - created_at > PENDING_TIMEOUT


def created(response: Response, location: str, version: int | None = None) -> None:
    response.status_code = 201
    response.headers["Location"] = location
    if version is not None:
        response.headers["ETag"] = etag(version)


def page_params(limit: int, cursor: str | None, after: int | None) -> tuple[int, int]:
    """Decode ``cursor``/``after`` for the notification-log list."""
    start = after or 0
    if cursor:
        if not cursor.isdigit():
            raise Unprocessable(
                "cursor is not one this service gave out.",
                errors=[{"field": "query.cursor", "message": "not a valid cursor"}],
            )
        start = int(cursor)
    return limit, start


