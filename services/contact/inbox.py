"""The text inbox: a table of the contact service's read model (``contact-views``,
applied in the same transaction as ``read_model.py``'s tables: one projection per saved
event, not two, and rebuilt with them by replaying the log), one row per text
conversation, for ``GET /contact/texts``.

A row holds ids, codes, counts and times only: never a message body or a number.
``status`` is ``unclaimed`` (not closed, nobody claimed it), ``open`` (claimed, not
closed) or ``closed``. ``unread`` counts the caller's messages since the last reply
sent: what waits for an answer (a reply sets it to 0). The list is newest message
first: ordered by ``last_at``, the last message's time (the thread's start before any
message), keyset-paged on (``last_at``, ``contact_id``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from services.contact import read_model
from services.contact.domain import Channel, Contact
from services.contact.domain.thread import CLOSED, OPEN, UNCLAIMED, Claimed, HandedOver, Released
from shared.eventstore.readtables import (
    Instant,
    decode_cursor,
    from_ts,
    id_part,
    instant_part,
    page,
    ts,
)
from shared.eventstore.readtables import at as _at

STATUSES = (UNCLAIMED, OPEN, CLOSED)

threads = sa.Table(
    "v_text_inbox",
    read_model.metadata,
    sa.Column("contact_id", sa.String(36), primary_key=True),
    sa.Column("caller_ref", sa.String(20)),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("claimed_by", sa.String(100)),  # a token's sub
    sa.Column("started_at", Instant, nullable=False),
    sa.Column("last_message_at", Instant),
    sa.Column("last_at", Instant, nullable=False),
    sa.Column("messages", sa.Integer, nullable=False),
    sa.Column("unread", sa.Integer, nullable=False),
    sa.Column("risk_level", sa.String(10)),
    sa.Column("closed", sa.Boolean, nullable=False),
    sa.Index("ix_v_text_inbox_status_last", "status", "last_at", "contact_id"),
    sa.Index("ix_v_text_inbox_last", "last_at", "contact_id"),
)


def _status(closed: bool, claimed_by: str | None) -> str:
    if closed:
        return CLOSED
    return OPEN if claimed_by is not None else UNCLAIMED


def _row(conn: Connection, cid: str) -> Any:
    return conn.execute(sa.select(threads).where(threads.c.contact_id == cid)).first()


def _update(conn: Connection, cid: str, **values: Any) -> None:
    conn.execute(sa.update(threads).where(threads.c.contact_id == cid).values(**values))


def apply(conn: Connection, ev: Any) -> None:
    cid = str(ev.originator_id)
    if isinstance(ev, Contact.Logged):
        if ev.channel == Channel.TEXT:
            started = ts(ev.started_at)
            conn.execute(sa.insert(threads).values(
                contact_id=cid, caller_ref=ev.caller_ref, status=UNCLAIMED, claimed_by=None,
                started_at=started, last_message_at=None, last_at=started, messages=0,
                unread=0, risk_level=None, closed=False))
        return
    if not isinstance(ev, Contact.MessageReceived | Contact.MessageSent | Contact.RiskAssessed
                      | Contact.Closed | Contact.Reopened | Claimed | Released | HandedOver):
        return
    row = _row(conn, cid)
    if row is None:  # not a text conversation
        return
    if isinstance(ev, Contact.MessageReceived | Contact.MessageSent):
        at = ts(ev.at)
        last = from_ts(row.last_message_at)
        newest = at if last is None or at is None or at > last else last
        _update(conn, cid, messages=row.messages + 1, last_message_at=newest,
                last_at=newest or from_ts(row.last_at),
                unread=row.unread + 1 if isinstance(ev, Contact.MessageReceived) else 0)
    elif isinstance(ev, Contact.RiskAssessed):
        _update(conn, cid, risk_level=ev.level)
    elif isinstance(ev, Contact.Closed):
        _update(conn, cid, closed=True, claimed_by=None, status=CLOSED)
    elif isinstance(ev, Contact.Reopened):
        _update(conn, cid, closed=False, status=_status(False, row.claimed_by))
    else:
        claimant = (ev.by if isinstance(ev, Claimed)
                    else ev.to if isinstance(ev, HandedOver) else None)
        _update(conn, cid, claimed_by=claimant, status=_status(row.closed, claimant))


# -------------------------------------------------------------------------- queries


def list_threads(engine: Engine, *, status: str | None, limit: int,
                 cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Newest message first, keyset-paged on (last_at, contact_id)."""
    q = sa.select(threads)
    if status is not None:
        q = q.where(threads.c.status == status)
    if cursor:
        last, cid = decode_cursor(cursor, "texts", (instant_part, id_part))
        q = q.where(sa.tuple_(threads.c.last_at, threads.c.contact_id)
                    < sa.tuple_(_at(last), sa.literal(cid)))
    q = q.order_by(threads.c.last_at.desc(), threads.c.contact_id.desc()).limit(limit + 1)
    with engine.connect() as conn:
        rows, next_cursor = page(list(conn.execute(q)), limit, "texts",
                                 lambda r: (r.last_at, r.contact_id))
    return [_item(r) for r in rows], next_cursor


def _item(r: Any) -> dict[str, Any]:
    return {"contact_id": r.contact_id, "caller_ref": r.caller_ref, "status": r.status,
            "claimed_by": r.claimed_by, "started_at": from_ts(r.started_at),
            "last_message_at": from_ts(r.last_message_at), "messages": r.messages,
            "unread": r.unread, "risk_level": r.risk_level}

