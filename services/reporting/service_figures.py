"""The monitoring report's shift and outreach figures: shifts and their cover, debriefs,
and meetings in the community, from the shift and outreach services' integration
events (``HANDLERS``, registered by ``handlers.py``) into the tables below, and
``figures`` counting them over a period.

Only ids, codes, counts and times: no personal data reaches these tables. Every handler
is idempotent (a row is keyed by its id, or by the event's position in its service's
log), so an event applied twice changes no figure, even past the projection's tracking.

Definitions (a period is [start, end), UTC instants; ``report.py`` makes them from
London dates):

- ``shifts``: shifts starting in the period. Each is covered by the supporters assigned
  to it at its start, as the ``SupporterAssigned``, ``SupporterUnassigned`` and
  ``ShiftSwapped`` recorded by then left it (a change recorded after the start does
  not alter how the shift started; one still to start counts its supporters as of
  now): ``fully_covered`` as many as ``required`` or more, ``short`` fewer but some,
  ``empty`` none (the shift service's own coverage rule).
- ``debriefs``: ``opened`` those opened in the period (``DebriefOpened``: when the
  shift service recorded it, the moment the contact service asked); ``completed``
  those recorded done in it (``DebriefCompleted``); ``overdue`` those opened in the
  period and not recorded done within ``debrief_overdue_after``
  (``SOLIDARITY_DEBRIEF_OVERDUE_HOURS``: the shift service's rule; done later, or not
  yet and that long has passed by ``now``). The shift service publishes no event when a
  debrief becomes overdue, so the rule is applied here.
- ``meetings``: each event counted by when it happened in the period (a request by its
  ``requested_at``, the others when the outreach service recorded them):
  ``requested``, ``approved``, ``declined``, ``completed``, ``cancelled``; ``by_kind``
  the kinds of those requested; ``safety_alerts`` the ``SafetyCheckOverdue`` raised.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.reporting.read_model import metadata
from shared.eventstore.readtables import Instant, at, from_ts, ts
from shared.messaging.envelope import IntegrationEvent

Handler = Callable[[Connection, IntegrationEvent], None]

# The shift service's default (SOLIDARITY_DEBRIEF_OVERDUE_HOURS); pass the setting.
DEBRIEF_OVERDUE_AFTER = timedelta(hours=72)

rota_shifts = sa.Table(
    "rm_rota_shifts",
    metadata,
    sa.Column("shift_id", sa.String(36), primary_key=True),
    sa.Column("starts_at", Instant, nullable=False, index=True),
    sa.Column("required", sa.Integer, nullable=False),
)

# One row per supporter per change of a shift's crew: joined (assigned, swapped in) or
# not (unassigned, swapped out), at when the shift service recorded it. Keyed by the event's
# position in the shift service's log, so a duplicate adds nothing.
rota_crew = sa.Table(
    "rm_rota_crew",
    metadata,
    sa.Column("notification_id", sa.BigInteger, primary_key=True),
    sa.Column("supporter_id", sa.String(64), primary_key=True),
    sa.Column("shift_id", sa.String(36), nullable=False, index=True),
    sa.Column("joined", sa.Boolean, nullable=False),
    sa.Column("at", Instant, nullable=False),
)

shift_debriefs = sa.Table(
    "rm_shift_debriefs",
    metadata,
    sa.Column("debrief_id", sa.String(36), primary_key=True),
    sa.Column("opened_at", Instant, index=True),
    sa.Column("completed_at", Instant, index=True),
)

# One row per meeting event counted (its type, its time, and for a request its kind),
# keyed by the event's position in the outreach service's log.
meeting_events = sa.Table(
    "rm_outreach_meeting_events",
    metadata,
    sa.Column("notification_id", sa.BigInteger, primary_key=True),
    sa.Column("meeting_id", sa.String(36), nullable=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(40)),
    sa.Column("at", Instant, nullable=False, index=True),
)


def _instant(value: Any, fallback: datetime) -> datetime:
    """A time of an event's data (ISO 8601 with offset), or the event's own time."""
    if not value:
        return fallback
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError("a time without its offset")
    return parsed


def _absent(conn: Connection, table: sa.Table, **key: Any) -> bool:
    where = sa.and_(*(table.c[name] == value for name, value in key.items()))
    return conn.execute(sa.select(sa.literal(1)).select_from(table).where(where)).first() is None


# -- shifts ---------------------------------------------------------------------------

def shift_published(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    values = {"starts_at": ts(_instant(d["starts_at"], ev.occurred_at)),
              "required": int(d["required"])}
    if _absent(conn, rota_shifts, shift_id=d["shift_id"]):
        conn.execute(sa.insert(rota_shifts).values(shift_id=d["shift_id"], **values))
    else:
        conn.execute(sa.update(rota_shifts)
                     .where(rota_shifts.c.shift_id == d["shift_id"]).values(**values))


def _crew_change(conn: Connection, ev: IntegrationEvent, supporter_id: str,
                 joined: bool) -> None:
    if _absent(conn, rota_crew, notification_id=ev.notification_id, supporter_id=supporter_id):
        conn.execute(sa.insert(rota_crew).values(
            notification_id=ev.notification_id, supporter_id=supporter_id,
            shift_id=ev.data["shift_id"], joined=joined, at=ts(ev.occurred_at)))


def supporter_assigned(conn: Connection, ev: IntegrationEvent) -> None:
    _crew_change(conn, ev, ev.data["supporter_id"], True)


def supporter_unassigned(conn: Connection, ev: IntegrationEvent) -> None:
    _crew_change(conn, ev, ev.data["supporter_id"], False)


def shift_swapped(conn: Connection, ev: IntegrationEvent) -> None:
    _crew_change(conn, ev, ev.data["from_supporter_id"], False)
    _crew_change(conn, ev, ev.data["to_supporter_id"], True)


# -- debriefs -------------------------------------------------------------------------

def _debrief(conn: Connection, ev: IntegrationEvent, column: str) -> None:
    debrief_id = ev.data["debrief_id"]
    if _absent(conn, shift_debriefs, debrief_id=debrief_id):
        conn.execute(sa.insert(shift_debriefs).values(debrief_id=debrief_id))
    c = shift_debriefs.c
    conn.execute(sa.update(shift_debriefs)  # the first time it was recorded stands
                 .where(c.debrief_id == debrief_id, c[column].is_(None))
                 .values({column: ts(ev.occurred_at)}))


def debrief_opened(conn: Connection, ev: IntegrationEvent) -> None:
    _debrief(conn, ev, "opened_at")


def debrief_completed(conn: Connection, ev: IntegrationEvent) -> None:
    _debrief(conn, ev, "completed_at")


# -- meetings -------------------------------------------------------------------------

MEETING_EVENTS = {
    "MeetingRequested": "requested",
    "MeetingApproved": "approved",
    "MeetingDeclined": "declined",
    "MeetingCompleted": "completed",
    "MeetingCancelled": "cancelled",
    "SafetyCheckOverdue": "safety_alerts",
}


def meeting_event(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    requested = ev.type == "MeetingRequested"
    when = _instant(d.get("requested_at"), ev.occurred_at) if requested else ev.occurred_at
    if _absent(conn, meeting_events, notification_id=ev.notification_id):
        conn.execute(sa.insert(meeting_events).values(
            notification_id=ev.notification_id, meeting_id=d["meeting_id"],
            type=MEETING_EVENTS[ev.type], kind=d.get("kind") if requested else None,
            at=ts(when)))


HANDLERS: dict[tuple[str, str], Handler] = {
    ("shift", "ShiftPublished"): shift_published,
    ("shift", "SupporterAssigned"): supporter_assigned,
    ("shift", "SupporterUnassigned"): supporter_unassigned,
    ("shift", "ShiftSwapped"): shift_swapped,
    ("shift", "DebriefOpened"): debrief_opened,
    ("shift", "DebriefCompleted"): debrief_completed,
    **{("outreach", name): meeting_event for name in MEETING_EVENTS},
}


# -- the figures ----------------------------------------------------------------------

def _shifts(conn: Connection, start: datetime, end: datetime) -> dict[str, int]:
    s, crew = rota_shifts.c, rota_crew.c
    in_period = sa.and_(s.starts_at >= at(start), s.starts_at < at(end))
    required = dict(conn.execute(sa.select(s.shift_id, s.required).where(in_period)).all())
    changes = conn.execute(
        sa.select(crew.shift_id, crew.supporter_id, crew.joined)
        .join(rota_shifts, s.shift_id == crew.shift_id)
        .where(in_period, crew.at <= s.starts_at)
        .order_by(crew.notification_id)
    ).all()
    on_at_start: dict[str, dict[str, bool]] = {shift_id: {} for shift_id in required}
    for shift_id, supporter_id, joined in changes:  # the last change by the start stands
        on_at_start[shift_id][supporter_id] = bool(joined)
    counts = {"published": len(required), "fully_covered": 0, "short": 0, "empty": 0}
    for shift_id, crew_on in on_at_start.items():
        assigned = sum(crew_on.values())
        if not assigned:
            counts["empty"] += 1
        elif assigned >= required[shift_id]:
            counts["fully_covered"] += 1
        else:
            counts["short"] += 1
    return counts


def _count(conn: Connection, table: sa.Table, column: str, start: datetime,
           end: datetime) -> int:
    c = table.c[column]
    query = sa.select(sa.func.count()).select_from(table).where(c >= at(start), c < at(end))
    return int(conn.execute(query).scalar_one())


def _debriefs(conn: Connection, start: datetime, end: datetime, now: datetime,
              overdue_after: timedelta) -> dict[str, int]:
    c = shift_debriefs.c
    opened = conn.execute(
        sa.select(c.opened_at, c.completed_at)
        .where(c.opened_at >= at(start), c.opened_at < at(end))
    ).all()
    overdue = 0
    for opened_at, completed_at in opened:
        done = from_ts(completed_at) or now
        if done - (from_ts(opened_at) or now) > overdue_after:
            overdue += 1
    completed = _count(conn, shift_debriefs, "completed_at", start, end)
    return {"opened": len(opened), "completed": completed, "overdue": overdue}


def _meetings(conn: Connection, start: datetime, end: datetime) -> dict[str, Any]:
    m = meeting_events.c
    in_period = sa.and_(m.at >= at(start), m.at < at(end))
    by_type: dict[str, int] = dict(conn.execute(
        sa.select(m.type, sa.func.count()).where(in_period).group_by(m.type)).all())
    by_kind = conn.execute(
        sa.select(m.kind, sa.func.count())
        .where(in_period, m.type == "requested", m.kind.is_not(None))
        .group_by(m.kind).order_by(m.kind)).all()
    counts: dict[str, Any] = {name: int(by_type.get(name, 0))
                              for name in MEETING_EVENTS.values() if name != "safety_alerts"}
    counts["by_kind"] = {kind: int(n) for kind, n in by_kind}
    counts["safety_alerts"] = int(by_type.get("safety_alerts", 0))
    return counts


def figures(conn: Connection, start: datetime, end: datetime, *,
            now: datetime | None = None,
            debrief_overdue_after: timedelta = DEBRIEF_OVERDUE_AFTER) -> dict[str, Any]:
    """The raw shift and outreach counts of [start, end) (UTC instants; see the module's
    docstring for each definition). ``now`` (default: the clock) is when a debrief not
    yet done is judged overdue; ``debrief_overdue_after`` the shift service's setting."""
    now = now or datetime.now(UTC)
    return {
        "shifts": _shifts(conn, start, end),
        "debriefs": _debriefs(conn, start, end, now, debrief_overdue_after),
        "meetings": _meetings(conn, start, end),
    }
