"""Inbound: how the shift service's integration events change the contact service's
rota read model (``rota.py``): who is a supporter, which shifts there are and who is
assigned to them. "On shift", a contact's default shift and who answers a new text are
read from it.

Each handler runs inside the projection's transaction, beside the tracking row, so an
event's effect and the record that it was applied commit together or not at all. An
event whose data cannot be read (an id that is not a UUID, a time without an offset)
raises ``ValueError``: the projection sets it aside and shows it in health.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.contact.domain import supporter_key
from services.contact.domain.rota import COORDINATOR, SUPPORTER
from services.contact.rota import assignments, instant, shifts, supporters
from shared.messaging.envelope import IntegrationEvent

Handler = Callable[[Connection, IntegrationEvent], None]
ROLES = frozenset({SUPPORTER, COORDINATOR})


def _id(data: dict[str, Any], name: str) -> str:
    key = supporter_key(data[name])
    if key is None:
        raise ValueError(f"{name} is not a UUID")
    return key


def _time(data: dict[str, Any], name: str) -> datetime:
    value = data[name]
    at = instant(datetime.fromisoformat(value)) if isinstance(value, str) else None
    if at is None:
        raise ValueError(f"{name} is not an ISO 8601 time with an offset")
    return at


def _upsert(conn: Connection, table: sa.Table, key: dict[str, str],
            values: dict[str, Any]) -> None:
    where = [table.c[k] == v for k, v in key.items()]
    if conn.execute(sa.select(*table.primary_key.columns).where(*where)).first() is None:
        conn.execute(sa.insert(table).values(**key, **values))
    elif values:
        conn.execute(sa.update(table).where(*where).values(**values))


def _supporter(conn: Connection, supporter_id: str, **values: Any) -> None:
    conn.execute(sa.update(supporters).where(supporters.c.supporter_id == supporter_id)
                 .values(**values))


def supporter_registered(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    if d["role"] not in ROLES:
        raise ValueError("role is not one of supporter, coordinator")
    _upsert(conn, supporters, {"supporter_id": _id(d, "supporter_id")},
            {"role": d["role"], "active": True, "eligible": bool(d["eligible"])})


def eligibility_changed(conn: Connection, ev: IntegrationEvent) -> None:
    _supporter(conn, _id(ev.data, "supporter_id"), eligible=bool(ev.data["eligible"]))


def supporter_deactivated(conn: Connection, ev: IntegrationEvent) -> None:
    _supporter(conn, _id(ev.data, "supporter_id"), active=False)


def shift_published(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    starts_at, ends_at = _time(d, "starts_at"), _time(d, "ends_at")
    if ends_at <= starts_at:
        raise ValueError("a shift ends after it starts")
    _upsert(conn, shifts, {"shift_id": _id(d, "shift_id")},
            {"starts_at": starts_at, "ends_at": ends_at})


def _assign(conn: Connection, shift_id: str, supporter_id: str) -> None:
    _upsert(conn, assignments, {"shift_id": shift_id, "supporter_id": supporter_id}, {})


def _unassign(conn: Connection, shift_id: str, supporter_id: str) -> None:
    conn.execute(sa.delete(assignments).where(assignments.c.shift_id == shift_id,
                                              assignments.c.supporter_id == supporter_id))


def supporter_assigned(conn: Connection, ev: IntegrationEvent) -> None:
    _assign(conn, _id(ev.data, "shift_id"), _id(ev.data, "supporter_id"))


def supporter_unassigned(conn: Connection, ev: IntegrationEvent) -> None:
    _unassign(conn, _id(ev.data, "shift_id"), _id(ev.data, "supporter_id"))


def shift_swapped(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    shift_id = _id(d, "shift_id")
    given, taken = _id(d, "from_supporter_id"), _id(d, "to_supporter_id")
    _unassign(conn, shift_id, given)
    _assign(conn, shift_id, taken)


HANDLERS: dict[tuple[str, str], Handler] = {
    ("shift", "SupporterRegistered"): supporter_registered,
    ("shift", "SupporterEligibilityChanged"): eligibility_changed,
    ("shift", "SupporterDeactivated"): supporter_deactivated,
    ("shift", "ShiftPublished"): shift_published,
    ("shift", "SupporterAssigned"): supporter_assigned,
    ("shift", "SupporterUnassigned"): supporter_unassigned,
    ("shift", "ShiftSwapped"): shift_swapped,
}


def apply(conn: Connection, ev: IntegrationEvent) -> None:
    """Apply one event: those the contact service has no use for (check-ins, the bag,
    debriefs) change nothing but the tracking."""
    handler = HANDLERS.get((ev.service, ev.type))
    if handler is not None:
        handler(conn, ev)
