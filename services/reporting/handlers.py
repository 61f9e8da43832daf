"""Inbound: how reporting applies other services' integration events to its read
models.

Each handler runs inside the projection's transaction, beside the tracking row, so an
event's effect and the record that it was applied commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.reporting.read_model import contacts, directory_names
from shared.messaging.envelope import IntegrationEvent

LONDON = ZoneInfo("Europe/London")

Handler = Callable[[Connection, IntegrationEvent], None]


def london_month(ts: datetime) -> str:
    """The month in London wall-clock time: 23:30 UTC on 31 May is 1 June in BST."""
    return ts.astimezone(LONDON).strftime("%Y-%m")


def contact_logged(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    started_at = datetime.fromisoformat(d["started_at"])
    conn.execute(
        sa.insert(contacts).values(
            contact_id=d["contact_id"],
            channel=d["channel"],
            started_at=started_at,
            month=london_month(started_at),
            issues=",".join(sorted(d["issues"])),
            answered=bool(d.get("answered", True)),
            shift_id=d.get("shift_id"),
            london_hour=started_at.astimezone(LONDON).hour,
            signposted_to=",".join(d.get("signposted_to") or []),
            logged_notification_id=ev.notification_id,
        )
    )


def contact_corrected(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    values: dict[str, object] = {}
    if d.get("issues") is not None:
        values["issues"] = ",".join(sorted(d["issues"]))
    if d.get("signposted_to") is not None:  # signposting after the contact was logged
        values["signposted_to"] = ",".join(d["signposted_to"])
    if values:
        conn.execute(
            sa.update(contacts).where(contacts.c.contact_id == d["contact_id"]).values(**values)
        )


def directory_entry(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    where = directory_names.c.entry_id == d["entry_id"]
    if conn.execute(sa.select(directory_names.c.entry_id).where(where)).first() is None:
        conn.execute(sa.insert(directory_names).values(entry_id=d["entry_id"], name=d["name"]))
    else:
        conn.execute(sa.update(directory_names).where(where).values(name=d["name"]))


HANDLERS: dict[tuple[str, str], Handler] = {
    ("contact", "DirectoryEntryAdded"): directory_entry,
    ("contact", "DirectoryEntryUpdated"): directory_entry,
    ("contact", "ContactLogged"): contact_logged,
    ("contact", "ContactCorrected"): contact_corrected,
}


def apply(conn: Connection, ev: IntegrationEvent) -> None:
    """Apply one event: those reporting has no use for change nothing but the tracking."""
    handler = HANDLERS.get((ev.service, ev.type))
    if handler is not None:
        handler(conn, ev)
