"""What every service's read tables share: times kept as native UTC (they sort as they
compare, on SQLite and PostgreSQL), and keyset cursors for their lists.

A cursor names its list and the sort key of a page's last item (base64 of JSON). Each
part is read back as what it was (a time, an id, a small number) or the cursor is
refused with a 422 on ``query.cursor``: never a value the database cannot take (a
number past its integer, a digit that is not ASCII). Clients treat it as opaque.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from shared.kernel import InvalidCommand

Instant = sa.DateTime(timezone=True)  # always UTC


def ts(value: datetime | None) -> datetime | None:
    """A time as the read tables keep it: UTC."""
    return value.astimezone(UTC) if value is not None else None


def from_ts(value: datetime | None) -> datetime | None:
    """A time read back: SQLite hands back naive UTC, PostgreSQL the session's zone."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def at(value: datetime) -> Any:
    """A time bound into a query as the column type, so SQLite compares like with like."""
    return sa.literal(ts(value), Instant)


# ---------------------------------------------------------------------------- cursors

_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_N = re.compile(r"^[0-9]{1,9}$")


def instant_part(part: str) -> datetime:
    value = datetime.fromisoformat(part)
    if value.tzinfo is None:
        raise ValueError("naive")
    return value.astimezone(UTC)


def id_part(part: str) -> str:
    if not _ID.match(part):
        raise ValueError("not an id")
    return part


def n_part(part: str) -> int:
    if not _N.match(part):
        raise ValueError("not a small number")
    return int(part)


def _cursor_text(value: object) -> str:
    if isinstance(value, datetime):
        return (from_ts(value) or value).isoformat()
    return str(value)


def encode_cursor(kind: str, *parts: object) -> str:
    """An opaque keyset cursor: which list, and the sort key of a page's last item."""
    text = [kind, *map(_cursor_text, parts)]
    return base64.urlsafe_b64encode(json.dumps(text).encode()).decode()


def decode_cursor(cursor: str, kind: str,
                  parts: Sequence[Callable[[str], Any]]) -> list[Any]:
    """The sort key in a cursor this list gave out, each part read by its parser; a 422
    naming query.cursor otherwise."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")).decode())
        if not (isinstance(raw, list) and len(raw) == len(parts) + 1 and raw[0] == kind
                and all(isinstance(p, str) for p in raw)):
            raise ValueError("shape")
        return [parse(p) for parse, p in zip(parts, raw[1:], strict=True)]
    except Exception as e:
        raise InvalidCommand("cursor", "is not one this list gave out", "query") from e


def page(rows: list[Any], limit: int, kind: str, key: Callable[[Any], tuple[object, ...]]
         ) -> tuple[list[Any], str | None]:
    """Rows fetched with limit + 1: the page, and the cursor of the next one if any."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(kind, *key(rows[-1]))
