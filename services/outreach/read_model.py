"""The outreach service's own read tables, projected from its events by the platform's
projector (``shared.eventstore.projection``): the meetings with their status, times and
attendees, and the safety alerts. The application reads them for lists, for what a
command needs of other meetings (is this supporter booked on another meeting then?)
and for its clock work (which meetings in progress are past their deadline).

Only ids, codes and times: the address, the venue and every free text stay in the
events, sealed with the caller's key. The deadline column holds the latest expected end
of a meeting's check-ins (the grace is added when it is read, so a changed setting
applies at once); it is rebuilt from the events, so the overdue check survives a
restart. Times are native ``DateTime(timezone=True)`` columns holding UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shared.eventstore.readtables import (
    Instant,
    decode_cursor,
    from_ts,
    id_part,
    instant_part,
    page,
    ts,
)
from shared.eventstore.readtables import (
    at as _at,
)

metadata = sa.MetaData()

PERSON = 100  # characters: a person's id (a token's sub)

# What each event makes of the meeting's status (the alert events leave it alone).
STATUS_AFTER = {
    "Requested": "requested",
    "RiskAssessed": "risk_assessed",
    "Approved": "approved",
    "Declined": "declined",
    "Scheduled": "scheduled",
    "CheckedIn": "in_progress",
    "Completed": "completed",
    "Cancelled": "cancelled",
}
BOOKED = ("scheduled", "in_progress")  # the statuses in which attendees are booked

meetings = sa.Table(
    "v_meetings",
    metadata,
    sa.Column("meeting_id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("caller_ref", sa.String(20), nullable=False),
    sa.Column("contact_id", sa.String(36)),
    sa.Column("requested_by", sa.String(PERSON), nullable=False, index=True),
    sa.Column("requested_at", Instant, nullable=False),
    sa.Column("starts_at", Instant, nullable=False, index=True),
    sa.Column("ends_at", Instant, nullable=False),
    sa.Column("deadline", Instant, index=True),  # latest expected end of its check-ins
    sa.Column("alert", sa.String(10)),  # null, open, resolved
    sa.Column("version", sa.Integer, nullable=False),
)

attendees = sa.Table(
    "v_meeting_attendees",
    metadata,
    sa.Column("meeting_id", sa.String(36), primary_key=True),
    sa.Column("supporter_id", sa.String(PERSON), primary_key=True, index=True),
    sa.Column("checked_in_at", Instant),
    sa.Column("expected_end", Instant),
    sa.Column("checked_out_at", Instant),
)

alerts = sa.Table(
    "v_safety_alerts",
    metadata,
    sa.Column("meeting_id", sa.String(36), primary_key=True),
    sa.Column("deadline", Instant, nullable=False),
    sa.Column("raised_at", Instant, nullable=False, index=True),
    sa.Column("missing", sa.JSON, nullable=False),
    sa.Column("resolved_at", Instant),
    sa.Column("resolved_by", sa.String(PERSON)),
)


# ---------------------------------------------------------------------------- apply


def _actor(ev: Any) -> str:
    return str((getattr(ev, "meta", None) or {}).get("actor", ""))


def _attendee(mid: str, supporter_id: str) -> Any:
    return sa.and_(attendees.c.meeting_id == mid, attendees.c.supporter_id == supporter_id)


def apply(conn: Connection, ev: Any) -> None:
    kind = type(ev).__name__
    mid = str(ev.originator_id)
    where = meetings.c.meeting_id == mid
    values: dict[str, Any] = {"version": ev.originator_version}
    if kind in STATUS_AFTER:
        values["status"] = STATUS_AFTER[kind]
    if kind == "Requested":
        starts = ts(ev.proposed_at)
        conn.execute(sa.insert(meetings).values(
            meeting_id=mid, kind=ev.kind, caller_ref=ev.caller_ref,
            contact_id=str(ev.contact_id) if ev.contact_id else None,
            requested_by=ev.requested_by, requested_at=ts(ev.requested_at), starts_at=starts,
            ends_at=ts(ev.proposed_at + timedelta(minutes=ev.expected_minutes)), deadline=None,
            alert=None, **values))
        return
    if kind == "Scheduled":
        conn.execute(sa.insert(attendees), [
            {"meeting_id": mid, "supporter_id": s, "checked_in_at": None,
             "expected_end": None, "checked_out_at": None} for s in ev.attendees])
        values.update(starts_at=ts(ev.starts_at), ends_at=ts(ev.ends_at))
    elif kind == "CheckedIn":
        conn.execute(sa.update(attendees).where(_attendee(mid, ev.supporter_id)).values(
            checked_in_at=ts(ev.at), expected_end=ts(ev.expected_end)))
        latest = conn.execute(sa.select(sa.func.max(attendees.c.expected_end))
                              .where(attendees.c.meeting_id == mid)).scalar()
        values["deadline"] = latest
    elif kind == "CheckedOut":
        conn.execute(sa.update(attendees).where(_attendee(mid, ev.supporter_id)).values(
            checked_out_at=ts(ev.at)))
    elif kind == "SafetyCheckOverdue":
        conn.execute(sa.insert(alerts).values(
            meeting_id=mid, deadline=ts(ev.deadline), raised_at=ts(ev.at),
            missing=list(ev.missing), resolved_at=None, resolved_by=None))
        values["alert"] = "open"
    elif kind == "SafetyAlertResolved":
        conn.execute(sa.update(alerts).where(alerts.c.meeting_id == mid).values(
            resolved_at=ts(ev.at), resolved_by=_actor(ev)))
        values["alert"] = "resolved"
    conn.execute(sa.update(meetings).where(where).values(**values))


# -------------------------------------------------------------------------- queries


def _people(conn: Connection, ids: Sequence[str]) -> dict[str, list[Any]]:
    people: dict[str, list[Any]] = {i: [] for i in ids}
    if ids:
        for p in conn.execute(sa.select(attendees).where(attendees.c.meeting_id.in_(ids))
                              .order_by(attendees.c.supporter_id)):
            people[p.meeting_id].append(p)
    return people


def meeting_row(row: Any, people: Sequence[Any]) -> dict[str, Any]:
    """A meeting as a list shows it: ids, codes and times only."""
    return {
        "id": row.meeting_id, "kind": row.kind, "status": row.status,
        "caller_ref": row.caller_ref, "contact_id": row.contact_id,
        "requested_by": row.requested_by, "requested_at": from_ts(row.requested_at),
        "starts_at": from_ts(row.starts_at), "ends_at": from_ts(row.ends_at),
        "attendees": [p.supporter_id for p in people],
        "checked_in": [p.supporter_id for p in people if p.checked_in_at is not None],
        "checked_out": [p.supporter_id for p in people if p.checked_out_at is not None],
        "deadline": from_ts(row.deadline),  # the latest expected end, before the grace
        "alert": row.alert, "version": row.version,
    }


def involving(supporter_id: str) -> Any:
    """Meetings a supporter requested or attends."""
    attending = sa.select(attendees.c.meeting_id).where(
        attendees.c.supporter_id == supporter_id)
    return sa.or_(meetings.c.requested_by == supporter_id,
                  meetings.c.meeting_id.in_(attending))


def meeting_rows(engine: Engine, *, status: str | None, start: datetime | None,
                 end: datetime | None, involved: str | None, limit: int,
                 cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Meetings by their start, earliest first, keyset-paged on (starts_at, id):
    ``status`` and a window ``start <= starts_at < end`` filter; ``involved``: only
    those that supporter requested or attends."""
    q = sa.select(meetings)
    if status is not None:
        q = q.where(meetings.c.status == status)
    if start is not None:
        q = q.where(meetings.c.starts_at >= _at(start))
    if end is not None:
        q = q.where(meetings.c.starts_at < _at(end))
    if involved is not None:
        q = q.where(involving(involved))
    if cursor:
        at, mid = decode_cursor(cursor, "meetings", (instant_part, id_part))
        q = q.where(sa.tuple_(meetings.c.starts_at, meetings.c.meeting_id)
                    > sa.tuple_(_at(at), sa.literal(mid)))
    q = q.order_by(meetings.c.starts_at, meetings.c.meeting_id).limit(limit + 1)
    with engine.connect() as conn:
        rows, next_cursor = page(list(conn.execute(q)), limit, "meetings",
                                 lambda r: (r.starts_at, r.meeting_id))
        people = _people(conn, [r.meeting_id for r in rows])
        return [meeting_row(r, people[r.meeting_id]) for r in rows], next_cursor


def busy(engine: Engine, supporter_ids: Sequence[str], start: datetime, end: datetime,
         other_than: str) -> list[str]:
    """Those of ``supporter_ids`` booked on another meeting (scheduled or in progress)
    that overlaps [start, end)."""
    q = (sa.select(attendees.c.supporter_id).distinct()
         .join(meetings, meetings.c.meeting_id == attendees.c.meeting_id)
         .where(attendees.c.supporter_id.in_(list(supporter_ids)),
                meetings.c.meeting_id != other_than, meetings.c.status.in_(BOOKED),
                meetings.c.starts_at < _at(end), meetings.c.ends_at > _at(start)))
    with engine.connect() as conn:
        found = {r for (r,) in conn.execute(q)}
    return [s for s in supporter_ids if s in found]


def overdue(engine: Engine, deadline_before: datetime) -> list[str]:
    """Meetings whose expected end is before a moment, with someone not checked out and
    no alert raised yet: in progress (the latest expected end the check-ins gave), or
    scheduled with nobody checked in (the planned end). Earliest first."""
    out = sa.select(attendees.c.meeting_id).where(attendees.c.checked_out_at.is_(None))
    before = _at(deadline_before)
    in_progress = sa.and_(meetings.c.status == "in_progress",
                          meetings.c.deadline.is_not(None), meetings.c.deadline < before)
    nobody_came = sa.and_(meetings.c.status == "scheduled", meetings.c.ends_at < before)
    q = (sa.select(meetings.c.meeting_id)
         .where(sa.or_(in_progress, nobody_came), meetings.c.alert.is_(None),
                meetings.c.meeting_id.in_(out))
         .order_by(sa.func.coalesce(meetings.c.deadline, meetings.c.ends_at),
                   meetings.c.meeting_id))
    with engine.connect() as conn:
        return [r for (r,) in conn.execute(q)]


def alert_rows(engine: Engine, *, open_only: bool, limit: int, cursor: str | None
               ) -> tuple[list[dict[str, Any]], str | None]:
    """Safety alerts, earliest raised first, keyset-paged on (raised_at, meeting id);
    ``open_only``: those not resolved."""
    q = sa.select(alerts, meetings.c.kind).join(
        meetings, meetings.c.meeting_id == alerts.c.meeting_id)
    if open_only:
        q = q.where(alerts.c.resolved_at.is_(None))
    if cursor:
        at, mid = decode_cursor(cursor, "alerts", (instant_part, id_part))
        q = q.where(sa.tuple_(alerts.c.raised_at, alerts.c.meeting_id)
                    > sa.tuple_(_at(at), sa.literal(mid)))
    q = q.order_by(alerts.c.raised_at, alerts.c.meeting_id).limit(limit + 1)
    with engine.connect() as conn:
        rows, next_cursor = page(list(conn.execute(q)), limit, "alerts",
                                 lambda r: (r.raised_at, r.meeting_id))
        people = _people(conn, [r.meeting_id for r in rows])
    return [{
        "id": r.meeting_id, "meeting_id": r.meeting_id, "kind": r.kind,
        "deadline": from_ts(r.deadline), "raised_at": from_ts(r.raised_at),
        "missing": list(r.missing),
        "attendees": [p.supporter_id for p in people[r.meeting_id]],
        "resolved_at": from_ts(r.resolved_at), "resolved_by": r.resolved_by,
    } for r in rows], next_cursor
