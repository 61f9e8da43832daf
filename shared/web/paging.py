"""Paging of the notification log (``?after=`` or ``?cursor=``).

Positions are ASCII digits that fit a signed 64-bit integer (what the stores hold):
``str.isdigit`` would take ``²``, and a larger number overflows the database driver.
"""

from __future__ import annotations

from shared.web.problems import Invalid
from shared.web.types import MAX_POSITION, ascii_int


def page_params(limit: int, cursor: str | None, after: int | None) -> tuple[int, int]:
    """Decode ``cursor``/``after`` for the notification-log list."""
    if after is not None and not 0 <= after <= MAX_POSITION:
        raise Invalid(
            "Invalid fields: query.after",
            errors=[{"field": "query.after", "message": f"not a position from 0 to {MAX_POSITION}",
                     "code": "position"}],
        )
    start = after or 0
    if cursor:
        position = ascii_int(cursor)
        if position is None:
            raise Invalid(
                "Invalid fields: query.cursor",
                errors=[{"field": "query.cursor", "message": "not a cursor this service gave out",
                         "code": "cursor"}],
            )
        start = position
    return limit, start
