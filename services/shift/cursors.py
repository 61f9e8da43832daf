"""Keyset cursors of the shift service's lists: a cursor names its list and the sort
key of a page's last item (a time and an id), base64 of JSON. Each part is read back as
what it was, or the cursor is refused (422 on ``query.cursor``): the contact service's
convention. Clients treat it as opaque.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from shared.kernel import InvalidCommand


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive UTC, PostgreSQL the session's zone."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _instant_part(part: str) -> datetime:
    value = datetime.fromisoformat(part)
    if value.tzinfo is None:
        raise ValueError("naive")
    return value.astimezone(UTC)


def _id_part(part: str) -> str:
    if not _ID.match(part):
        raise ValueError("not an id")
    return part


def decode(cursor: str, kind: str) -> tuple[datetime, str]:
    """The sort key in a cursor this list gave out."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")).decode())
        if not (isinstance(raw, list) and len(raw) == 3 and raw[0] == kind
                and all(isinstance(p, str) for p in raw)):
            raise ValueError("shape")
        return _instant_part(raw[1]), _id_part(raw[2])
    except Exception as e:
        raise InvalidCommand("cursor", "is not one this list gave out", "query") from e


def page(rows: list[Any], limit: int, kind: str,
         key: Callable[[Any], tuple[datetime, str]]) -> tuple[list[Any], str | None]:
    """Rows fetched with limit + 1: the page, and the cursor of the next one if any."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    at, ident = key(rows[-1])
    text = [kind, _utc(at).isoformat(), ident]
    return rows, base64.urlsafe_b64encode(json.dumps(text).encode()).decode()
