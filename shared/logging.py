"""Structured logging: JSON in production, readable on a terminal.

Every line of a request carries ``request_id`` and ``correlation_id`` (bound in
contextvars by the HTTP middleware). No personal data is ever logged: log calls
pass ids and codes, never names, numbers or free text, and the access log
redacts query values that are not on an allow-list.
"""

from __future__ import annotations

import logging
import sys
from typing import Any
from urllib.parse import parse_qsl, quote

import structlog

# Query parameters whose values are never personal and may be logged as they are.
SAFE_QUERY_KEYS = frozenset(
    {
        "limit",
        "cursor",
        "after",
        "month",
        "status",
        "from",
        "to",
        "due_before",
        "need",
        "open_at",
        "role",
        "service",
        "probe",
    }
)


def redact_query(query: str) -> str:
    """The query string with every value not known to be safe replaced by ``[redacted]``."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(
        f"{quote(k)}={quote(v) if k in SAFE_QUERY_KEYS else '[redacted]'}" for k, v in pairs
    )


class _CurrentStderr:
    """A file-like object that writes to whatever ``sys.stderr`` is at the moment."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(fmt: str = "console", level: str = "INFO") -> None:
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelName(level.upper())
        ),
        # The stream is looked up at every write, not bound now: whoever replaces
        # sys.stderr later (a test's capture, a daemon) never leaves logging writing to a
        # closed stream.
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    # Quieten libraries that would print request lines or connection URLs of their own.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for name in ("uvicorn.access",):
        logging.getLogger(name).disabled = True
    # HTTP clients log full request URLs at INFO: keep them to warnings.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
