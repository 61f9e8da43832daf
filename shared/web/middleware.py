"""The middleware every service shares: request and correlation ids, the access log
(with personal query values redacted), a body-size limit, the checks of bodies and
query strings no service can store (``shared.web.types``) and the headers every
response carries (personal data: never sniffed, never cached).
"""

from __future__ import annotations

import time
import uuid

import structlog
from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logging import get_logger, redact_query
from shared.web.problems import (
    frames,
    problem_response,
    store_unavailable,
    unavailable_response,
)
from shared.web.types import MAX_JSON_DEPTH, ascii_int, check_json_body, is_opaque_id, query_problem

access_log = get_logger("access")

REQUEST_ID_HEADER = "X-Request-ID"
CORRELATION_ID_HEADER = "X-Correlation-ID"
# Set on every response, replacing whatever an endpoint set.
FIXED_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store"))
_FIXED_NAMES = frozenset(name for name, _ in FIXED_HEADERS)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class RequestContextMiddleware:
    """Binds request_id and correlation_id for every log line; writes the access log."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = 65536,
                 max_json_depth: int = MAX_JSON_DEPTH, quiet: bool = False,
                 slow_ms: float = 1000.0) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        # Quiet (``solidarity up`` on a terminal): a request that went well and fast is a
        # debug line, so a client polling /health does not flood the screen.
        self.quiet = quiet
        self.slow_ms = slow_ms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        incoming = _header(scope, b"x-correlation-id")
        # It is stored in events, published and logged: only an opaque id (a UUID) is
        # taken, never client text; anything else gets a fresh one.
        correlation_id = incoming if incoming and is_opaque_id(incoming) else request_id
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
                headers = [h for h in message.get("headers", [])
                           if h[0].lower() not in _FIXED_NAMES]
                headers.extend(FIXED_HEADERS)
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
            refused = query_problem(scope.get("query_string", b"")) or check_json_body(
                _header(scope, b"content-type"), body, self.max_json_depth)
            if refused is not None:
                await problem_response(
                    refused.status, refused.type, refused.title, refused.detail,
                    errors=refused.errors, instance=scope.get("path"),
                )(scope, receive, send_wrapper)
                return
            try:
                await self.app(scope, _replay(body, receive), send_wrapper)
            except Exception as exc:  # a bug: one structured log line, a problem, no details
                unavailable = store_unavailable(exc)
                if unavailable:  # the error's text may hold SQL and row values: not logged
                    access_log.warning("store_unavailable", path=scope.get("path"),
                                       error_type=type(exc).__name__)
                else:
                    # Where it failed, not what it said (the text may hold a row).
                    access_log.error("unhandled_error", path=scope.get("path"),
                                     error_type=type(exc).__name__, where=frames(exc))
                if status_holder["status"] == 500 and not status_holder.get("started"):
                    await (unavailable_response(scope.get("path")) if unavailable
                           else problem_response(
                               500, "internal", "Internal server error",
                               "The server failed to handle the request. It has been logged.",
                           ))(scope, receive, send_wrapper)
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            status = status_holder["status"]
            quiet = self.quiet and status < 400 and duration_ms < self.slow_ms
            (access_log.debug if quiet else access_log.info)(
                "request",
                method=scope.get("method"),
                path=scope.get("path"),
                query=redact_query(scope.get("query_string", b"").decode("latin-1")),
                status=status,
                duration_ms=duration_ms,
            )
            structlog.contextvars.clear_contextvars()

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body (bodies are small here), or None past the limit. A declared
        Content-Length over the limit is refused before anything is read."""
        length = _header(scope, b"content-length")
        declared = ascii_int(length) if length is not None else None
        if declared is not None and declared > self.max_body_bytes:
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


def install_http_basics(app: FastAPI, max_body_bytes: int, *, quiet: bool = False,
                        slow_ms: float = 1000.0) -> None:
    app.add_middleware(RequestContextMiddleware, max_body_bytes=max_body_bytes,
                       quiet=quiet, slow_ms=slow_ms)


def correlation_of(request: Request) -> str | None:
    return getattr(request.state, "correlation_id", None)


