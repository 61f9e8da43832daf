"""Paging of the notification log (``?after=`` or ``?cursor=``)."""

from __future__ import annotations

from shared.web.problems import Unprocessable


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


