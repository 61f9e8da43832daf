"""Small checks of what a client sends, before any endpoint sees it: numbers that must
be ASCII and fit 64 bits (positions, ETags), the correlation id, and JSON bodies and
query strings that no service can store safely.

Why here and not in each endpoint: a body that is not UTF-8, JSON nested thousands
deep, or a NUL character in a string breaks the parser, a database (PostgreSQL refuses
NUL in text) or a later query whichever endpoint receives it, so the middleware refuses
them once for every service. The checks are cheap on the hot path: a body is parsed
here only when its raw bytes could hold the problem (an escaped NUL, more brackets
than the depth bound), and the answer never echoes what was sent.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

# Positions in a log and aggregate versions: what a signed 64-bit column holds.
MAX_POSITION = 2**63 - 1
# How deep a request's JSON may nest (our bodies nest three or four levels).
MAX_JSON_DEPTH = 32

_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")
_OPAQUE_ID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{32}"
)
_UTF8 = frozenset({"utf-8", "utf8"})
_NUL_ESCAPE = b"\\u0000"


def ascii_int(text: str, maximum: int = MAX_POSITION) -> int | None:
    """``text`` as a non-negative int if it is ASCII digits only and at most
    ``maximum``; else None (``str.isdigit`` accepts ``²`` and Arabic-Indic digits; ``int`` takes
    signs, spaces and underscores)."""
    if not _ASCII_DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value <= maximum else None


def is_opaque_id(text: str | None) -> bool:
    """A UUID, hyphenated or as 32 hex digits: an id that carries no client text."""
    return bool(text) and _OPAQUE_ID.fullmatch(text or "") is not None


@dataclass(frozen=True)
class BodyProblem:
    """Why a request is refused before its endpoint runs (rendered as a problem)."""

    status: int
    type: str
    title: str
    detail: str
    errors: list[dict[str, str]] | None = field(default=None)


def _invalid(fields: list[str], message: str, code: str) -> BodyProblem:
    return BodyProblem(
        422, "validation", "The request is not valid", f"Invalid fields: {', '.join(fields)}",
        [{"field": f, "message": message, "code": code} for f in fields],
    )


def json_media(content_type: str | None) -> tuple[bool, str | None]:
    """Whether a Content-Type is JSON (``application/json`` or ``application/*+json``,
    as FastAPI decides), and its charset parameter, lower case, if it has one."""
    if not content_type:
        return False, None
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if not (media == "application/json"
            or (media.startswith("application/") and media.endswith("+json"))):
        return False, None
    charset = None
    if params:
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset":
                charset = value.strip().strip('"').strip().lower()
    return True, charset


def check_json_body(content_type: str | None, body: bytes,
                    max_depth: int = MAX_JSON_DEPTH) -> BodyProblem | None:
    """Why a JSON request body may not reach its endpoint, or None: another charset than
    UTF-8 (415), bytes that are not UTF-8 JSON text (422), nesting deeper than
    ``max_depth`` (422), a NUL character in any string or key (422, each named by its
    path as ``body.<path>``). Anything else, valid or not, is the endpoint's to judge."""
    is_json, charset = json_media(content_type)
    if not is_json or not body:
        return None
    if charset is not None and charset not in _UTF8:
        return BodyProblem(415, "unsupported-media-type", "Unsupported media type",
                           "A JSON body must be UTF-8 (charset=utf-8, or no charset).")
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return _invalid(["body"], "the body is not UTF-8 JSON text", "json_encoding")
    if b"\x00" in body:  # never in JSON text; UTF-16 and UTF-32 JSON is full of them
        return _invalid(["body"], "the body is not UTF-8 JSON text", "json_encoding")
    deep = body.count(b"[") + body.count(b"{") > max_depth
    if not deep and _NUL_ESCAPE not in body:
        return None  # the hot path: nothing here can be too deep or hold a NUL
    try:
        value = json.loads(body.decode("utf-8"))
    except RecursionError:
        return _too_deep(max_depth)
    except ValueError:
        return None  # not JSON: the endpoint answers json_invalid
    if deep and _depth_exceeds(value, max_depth):
        return _too_deep(max_depth)
    fields = nul_fields(value)
    if fields:
        return _invalid(fields, "must not contain a NUL character (\\u0000)", "nul_character")
    return None


def _too_deep(max_depth: int) -> BodyProblem:
    return _invalid(["body"], f"JSON nested deeper than {max_depth} levels", "json_too_deep")


def _depth_exceeds(value: Any, max_depth: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list)))
    return False


def _name(part: str) -> str:
    """A key as part of a field name, its NUL spelled out (the key is the client's own
    name for the field, as in FastAPI's errors; a NUL would end a C string)."""
    return part.replace("\x00", "\\u0000")


def nul_fields(value: Any, prefix: str = "body") -> list[str]:
    """The paths (``body.supporter_ids.0``) of every string or key holding a NUL, in
    document order."""
    found: list[str] = []
    # (node, its path, whether the path is that of a bad key rather than of a node)
    stack: list[tuple[Any, str, bool]] = [(value, prefix, False)]
    while stack:
        node, path, bad_key = stack.pop()
        if bad_key or (isinstance(node, str) and "\x00" in node):
            if path not in found:
                found.append(path)
        elif isinstance(node, dict):
            items: list[tuple[Any, str, bool]] = []
            for key, child in node.items():
                child_path = f"{path}.{_name(key)}"
                if "\x00" in key:
                    items.append((None, child_path, True))
                items.append((child, child_path, False))
            stack.extend(reversed(items))
        elif isinstance(node, list):
            stack.extend(reversed([(child, f"{path}.{i}", False)
                                   for i, child in enumerate(node)]))
    return found


def query_nul_fields(query_string: bytes) -> list[str]:
    """``query.<name>`` for every query parameter whose name or value holds a NUL."""
    if b"%00" not in query_string:
        return []
    found: list[str] = []
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            field_name = f"query.{_name(name)}"
            if field_name not in found:
                found.append(field_name)
    return found


def query_problem(query_string: bytes) -> BodyProblem | None:
    fields = query_nul_fields(query_string)
    if not fields:
        return None
    return _invalid(fields, "must not contain a NUL character (%00)", "nul_character")


# ---------------------------------------------------------------------------- Instant
# A point in time as the API documents it: an ISO 8601 date-time string with an offset
# (``2026-11-29T22:10:00+00:00``, ``...Z``), handed on in UTC. A JSON number or a
# numeric string (``0``, ``"1700000000"``) is refused, although pydantic would read
# either as seconds since 1970: a client that sends one made a mistake to name, not to
# guess. So is a value whose UTC form Python cannot hold (year 1 at +01:00 is in year
# 0; 9999-12-31 at -01:00 in year 10000), or that lies outside INSTANT_MIN to
# INSTANT_MAX: no time anyone means, and every later conversion (UTC, London time, the
# database's) stays in range. Which times a record may hold (a contact from 2000 on, a
# follow-up at most two years ahead) is the domain's rule, not this type's.

INSTANT_MIN = datetime(1900, 1, 1, tzinfo=UTC)
INSTANT_MAX = datetime(2200, 1, 1, tzinfo=UTC)

# The start of an ISO 8601 extended date-time: a date, then T (or a space), then hh:mm.
_ISO_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_string(value: Any) -> Any:
    if isinstance(value, datetime):  # built in Python, not parsed from a request
        return value
    if not isinstance(value, str) or not _ISO_DATE_TIME.match(value):
        raise ValueError("an ISO 8601 date-time string with an offset, "
                         "e.g. 2026-11-29T22:10:00+00:00")
    return value


def _in_utc(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    if not INSTANT_MIN <= utc < INSTANT_MAX:
        raise ValueError(f"must be from {INSTANT_MIN.year} to {INSTANT_MAX.year - 1}")
    return utc


Instant = Annotated[AwareDatetime, BeforeValidator(_iso_string), AfterValidator(_in_utc)]
