"""The contact service's own read tables, projected from its events by the platform's
projector (``shared.eventstore.projection``): contacts by caller and date, who handled
each, follow-ups due, the referral queue and the directory. Free text stays sealed here
as in the events. (What the contact service knows of the rota, fed by the shift
service's events, is another read model: ``rota.py``.)

Times are native ``DateTime(timezone=True)`` columns holding UTC: PostgreSQL keeps a
``timestamptz``; SQLite keeps zero-padded naive text (``0387-07-26 ...`` sorts before
``2026-...``), read back here as UTC. Lists are lists (JSON arrays), never comma-joined
text, so that "who handled it" is an exact match on an id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from services.contact.domain import Contact, DirectoryEntry, Referral
from services.contact.domain.referral import FIRST_CONTACT
from shared.eventstore.readtables import (
    Instant,
    decode_cursor,
    from_ts,
    id_part,
    instant_part,
    n_part,
    page,
    ts,
)
from shared.eventstore.readtables import (
    at as _at,
)

metadata = sa.MetaData()


contacts = sa.Table(
    "v_contacts",
    metadata,
    sa.Column("contact_id", sa.String(36), primary_key=True),
    sa.Column("caller_id", sa.String(36), index=True),
    sa.Column("caller_ref", sa.String(20)),
    sa.Column("channel", sa.String(10), nullable=False),
    sa.Column("direction", sa.String(10), nullable=False),
    sa.Column("answered", sa.Boolean, nullable=False),
    sa.Column("started_at", Instant, nullable=False, index=True),
    sa.Column("ended_at", Instant),
    sa.Column("shift_id", sa.String(36)),
    sa.Column("supporter_ids", sa.JSON, nullable=False),
    sa.Column("issues", sa.JSON, nullable=False),
    sa.Column("caller_is", sa.String(30)),
    sa.Column("signposted_to", sa.JSON, nullable=False),
    sa.Column("summary", sa.Text),  # sealed
    sa.Column("risk_level", sa.String(10)),
    sa.Column("closed", sa.Boolean, nullable=False),
)

follow_ups = sa.Table(
    "v_follow_ups",
    metadata,
    sa.Column("contact_id", sa.String(36), primary_key=True),
    sa.Column("n", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("due_by", Instant, nullable=False, index=True),
    sa.Column("what", sa.Text),  # sealed
    sa.Column("caller_ref", sa.String(20)),
    sa.Column("completed_at", Instant),
)

referrals = sa.Table(
    "v_referrals",
    metadata,
    sa.Column("referral_id", sa.String(36), primary_key=True),
    sa.Column("status", sa.String(10), nullable=False, index=True),
    sa.Column("received_at", Instant, nullable=False),
    sa.Column("source", sa.String(20), nullable=False),
    sa.Column("caller_ref", sa.String(20)),
    sa.Column("referred_by", sa.String(100), index=True),  # the Received event's actor
)

# An accepted referral's follow-up: make first contact (listed with contacts' follow-ups).
referral_follow_ups = sa.Table(
    "v_referral_follow_ups",
    metadata,
    sa.Column("referral_id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("due_by", Instant, nullable=False, index=True),
    sa.Column("caller_ref", sa.String(20)),
    sa.Column("completed_at", Instant),
)

directory_entries = sa.Table(
    "v_directory",
    metadata,
    sa.Column("entry_id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("helps_with", sa.JSON, nullable=False),
    sa.Column("phone", sa.String(40)),
    sa.Column("opening_hours", sa.JSON, nullable=False),
    sa.Column("open_24_7", sa.Boolean, nullable=False),
    sa.Column("address", sa.Text),
    sa.Column("notes", sa.Text),
    sa.Column("version", sa.Integer, nullable=False),
)


# ---------------------------------------------------------------------------- apply


def apply(conn: Connection, ev: Any) -> None:
    cid = str(ev.originator_id)
    if isinstance(ev, Contact.Logged):
        started = ts(ev.started_at)
        conn.execute(sa.insert(contacts).values(
            contact_id=cid, caller_id=str(ev.caller_id) if ev.caller_id else None,
            caller_ref=ev.caller_ref, channel=ev.channel, direction=ev.direction,
            answered=ev.answered, started_at=started, ended_at=ts(ev.ended_at),
            shift_id=str(ev.shift_id) if ev.shift_id else None,
            supporter_ids=list(ev.supporter_ids), issues=list(ev.issues),
            caller_is=ev.caller_is, signposted_to=list(ev.signposted_to), summary=ev.summary,
            risk_level=None, closed=False,
        ))
    elif isinstance(ev, Contact.Corrected):
        values: dict[str, Any] = {}
        if ev.issues is not None:
            values["issues"] = list(ev.issues)
        if ev.ended_at is not None:
            values["ended_at"] = ts(ev.ended_at)
        for name in ("summary", "caller_is", "signposted_to"):  # absent from older events
            if getattr(ev, name, None) is not None:
                values[name] = getattr(ev, name)
        conn.execute(sa.update(contacts).where(contacts.c.contact_id == cid).values(**values))
    elif isinstance(ev, Contact.RiskAssessed):
        conn.execute(sa.update(contacts).where(contacts.c.contact_id == cid)
                     .values(risk_level=ev.level))
    elif isinstance(ev, Contact.Closed | Contact.Reopened):
        conn.execute(sa.update(contacts).where(contacts.c.contact_id == cid)
                     .values(closed=isinstance(ev, Contact.Closed)))
    elif isinstance(ev, Contact.FollowUpScheduled):
        ref = conn.execute(sa.select(contacts.c.caller_ref)
                           .where(contacts.c.contact_id == cid)).scalar()
        conn.execute(sa.insert(follow_ups).values(
            contact_id=cid, n=ev.n, kind=ev.kind, due_by=ts(ev.due_by), what=ev.what,
            caller_ref=ref, completed_at=None,
        ))
    elif isinstance(ev, Contact.FollowUpCompleted):
        conn.execute(sa.update(follow_ups)
                     .where(follow_ups.c.contact_id == cid, follow_ups.c.n == ev.n)
                     .values(completed_at=ts(ev.at)))
    elif isinstance(ev, Referral.Received):
        conn.execute(sa.insert(referrals).values(
            referral_id=cid, status="received", received_at=ts(ev.received_at),
            source=ev.source, caller_ref=ev.caller_ref,
            referred_by=(ev.meta or {}).get("actor"),
        ))
    elif isinstance(ev, Referral.Accepted | Referral.Declined | Referral.FirstContactMade):
        _referral_moved(conn, cid, ev)
    elif isinstance(ev, DirectoryEntry.Added | DirectoryEntry.Updated):
        row = {
            "name": ev.name, "helps_with": list(ev.helps_with), "phone": ev.phone,
            "opening_hours": list(ev.opening_hours),
            "open_24_7": bool(getattr(ev, "open_24_7", False)), "address": ev.address,
            "notes": ev.notes, "version": ev.originator_version,
        }
        if isinstance(ev, DirectoryEntry.Added):
            conn.execute(sa.insert(directory_entries).values(entry_id=cid, **row))
        else:
            conn.execute(sa.update(directory_entries)
                         .where(directory_entries.c.entry_id == cid).values(**row))
    elif isinstance(ev, DirectoryEntry.Removed):
        conn.execute(sa.delete(directory_entries).where(directory_entries.c.entry_id == cid))


def _referral_moved(conn: Connection, rid: str, ev: Any) -> None:
    """Accepted (with its first-contact follow-up: none in events stored before it
    existed), declined, or contacted (the follow-up done)."""
    status = ("accepted" if isinstance(ev, Referral.Accepted) else
              "declined" if isinstance(ev, Referral.Declined) else "contacted")
    where = referrals.c.referral_id == rid
    conn.execute(sa.update(referrals).where(where).values(status=status))
    due = getattr(ev, "first_contact_due_by", None)
    if isinstance(ev, Referral.Accepted) and due is not None:
        ref = conn.execute(sa.select(referrals.c.caller_ref).where(where)).scalar()
        conn.execute(sa.insert(referral_follow_ups).values(
            referral_id=rid, kind=FIRST_CONTACT, due_by=ts(due), caller_ref=ref,
            completed_at=None))
    elif isinstance(ev, Referral.FirstContactMade):
        conn.execute(sa.update(referral_follow_ups)
                     .where(referral_follow_ups.c.referral_id == rid)
                     .values(completed_at=ts(ev.at)))


# -------------------------------------------------------------------------- queries


def contacts_of_caller(engine: Engine, caller_id: UUID) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(
            sa.select(contacts).where(contacts.c.caller_id == str(caller_id))
            .order_by(contacts.c.started_at.desc(), contacts.c.contact_id.desc())
        ))


def list_contacts(engine: Engine, *, caller_id: UUID | None, start: datetime | None,
                  end: datetime | None, limit: int,
                  cursor: str | None) -> tuple[list[Any], str | None]:
    """Newest first, keyset-paged on (started_at, contact_id)."""
    q = sa.select(contacts)
    if caller_id is not None:
        q = q.where(contacts.c.caller_id == str(caller_id))
    if start is not None:
        q = q.where(contacts.c.started_at >= _at(start))
    if end is not None:
        q = q.where(contacts.c.started_at < _at(end))
    if cursor:
        s, cid = decode_cursor(cursor, "contacts", (instant_part, id_part))
        q = q.where(sa.tuple_(contacts.c.started_at, contacts.c.contact_id)
                    < sa.tuple_(_at(s), sa.literal(cid)))
    q = q.order_by(contacts.c.started_at.desc(), contacts.c.contact_id.desc()).limit(limit + 1)
    with engine.connect() as conn:
        rows = list(conn.execute(q))
    return page(rows, limit, "contacts", lambda r: (r.started_at, r.contact_id))


def supporters_of(row: Any) -> list[str]:
    return list(row.supporter_ids)


def row_to_dict(row: Any, reveal: Callable[[str | None], str | None] | None) -> dict[str, Any]:
    return {
        "id": row.contact_id,
        "caller_ref": row.caller_ref,
        "channel": row.channel,
        "direction": row.direction,
        "answered": row.answered,
        "started_at": from_ts(row.started_at),
        "ended_at": from_ts(row.ended_at),
        "shift_id": row.shift_id,
        "supporter_ids": list(row.supporter_ids),
        "issues": list(row.issues),
        "caller_is": row.caller_is,
        "signposted_to": list(row.signposted_to),
        "risk_level": row.risk_level,
        "closed": row.closed,
        "summary": reveal(row.summary) if reveal is not None else None,
    }


def follow_ups_due(engine: Engine, due_before: datetime, limit: int, cursor: str | None
                   ) -> tuple[list[dict[str, Any]], str | None]:
    """Contacts' open follow-ups and accepted referrals' first contacts (``n`` 1, no
    contact), earliest first, keyset-paged on (due_by, contact or referral id, n)."""
    f, r = follow_ups.c, referral_follow_ups.c
    due_soon = sa.union_all(
        sa.select(f.contact_id.label("owner"), f.n, f.kind, f.due_by, f.caller_ref,
                  sa.literal_column("0", sa.Integer).label("of_referral"))
        .where(f.completed_at.is_(None), f.due_by < _at(due_before)),
        sa.select(r.referral_id.label("owner"), sa.literal_column("1", sa.Integer).label("n"),
                  r.kind, r.due_by, r.caller_ref,
                  sa.literal_column("1", sa.Integer).label("of_referral"))
        .where(r.completed_at.is_(None), r.due_by < _at(due_before)),
    ).subquery()
    u = due_soon.c
    q = sa.select(due_soon)
    if cursor:
        due, oid, n = decode_cursor(cursor, "follow-ups", (instant_part, id_part, n_part))
        q = q.where(sa.tuple_(u.due_by, u.owner, u.n)
                    > sa.tuple_(_at(due), sa.literal(oid), sa.literal(n)))
    q = q.order_by(u.due_by, u.owner, u.n).limit(limit + 1)
    with engine.connect() as conn:
        rows, next_cursor = page(list(conn.execute(q)), limit, "follow-ups",
                                  lambda row: (row.due_by, row.owner, row.n))
    return [
        {"contact_id": None if row.of_referral else row.owner,
         "referral_id": row.owner if row.of_referral else None, "n": row.n, "kind": row.kind,
         "due_by": from_ts(row.due_by), "caller_ref": row.caller_ref}
        for row in rows
    ], next_cursor


def referral_ids(engine: Engine, status: str | None, limit: int, cursor: str | None,
                 referred_by: str | None = None) -> tuple[list[UUID], str | None]:
    """Oldest first, keyset-paged on (received_at, referral_id)."""
    q = sa.select(referrals.c.referral_id, referrals.c.received_at)
    if status is not None:
        q = q.where(referrals.c.status == status)
    if referred_by is not None:
        q = q.where(referrals.c.referred_by == referred_by)
    if cursor:
        received, rid = decode_cursor(cursor, "referrals", (instant_part, id_part))
        q = q.where(sa.tuple_(referrals.c.received_at, referrals.c.referral_id)
                    > sa.tuple_(_at(received), sa.literal(rid)))
    q = q.order_by(referrals.c.received_at, referrals.c.referral_id).limit(limit + 1)
    with engine.connect() as conn:
        rows, next_cursor = page(list(conn.execute(q)), limit, "referrals",
                                  lambda r: (r.received_at, r.referral_id))
    return [UUID(r.referral_id) for r in rows], next_cursor


def page_by_name(entries: list[dict[str, Any]], limit: int, cursor: str | None
                 ) -> tuple[list[dict[str, Any]], str | None]:
    """The directory is a booklet, not a ledger: filter in memory, page by (name, id)."""
    # Ordered here, not by the database: its collation may differ from Python's, and the
    # cursor comparison below must use the same order as the page.
    entries = sorted(entries, key=lambda e: (e["name"], e["id"]))
    if cursor:
        name, eid = decode_cursor(cursor, "directory", (str, id_part))
        entries = [e for e in entries if (e["name"], e["id"]) > (name, eid)]
    return page(entries, limit, "directory", lambda e: (e["name"], e["id"]))


def directory(engine: Engine, need: str | None) -> list[dict[str, Any]]:
    """Every entry, or those that help with ``need`` (the booklet is small: filtered here,
    where the list of codes is a list)."""
    with engine.connect() as conn:
        rows = list(conn.execute(sa.select(directory_entries)))
    return [
        {"id": r.entry_id, "name": r.name, "helps_with": list(r.helps_with),
         "phone": r.phone, "opening_hours": list(r.opening_hours),
         "open_24_7": r.open_24_7, "address": r.address, "notes": r.notes, "version": r.version}
        for r in rows if need is None or need in r.helps_with
    ]


def missing_directory_entries(engine: Engine, ids: list[UUID]) -> list[str]:
    if not ids:
        return []
    wanted = {str(i) for i in ids}
    with engine.connect() as conn:
        found = {r for (r,) in conn.execute(
            sa.select(directory_entries.c.entry_id).where(directory_entries.c.entry_id.in_(wanted))
        )}
    return sorted(wanted - found)
