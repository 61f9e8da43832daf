"""The middleware every service shares: request and correlation ids, the access log
(with personal query values redacted) and a body-size limit.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logging import get_logger, redact_query
from shared.web.problems import problem_response

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


def correlation_of(request: Request) -> str | None:
    return getattr(request.state, "correlation_id", None)


