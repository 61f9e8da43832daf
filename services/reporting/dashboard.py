"""The coordinator's dashboard: what needs attention now, read from reporting's tables
(``dashboard_events`` and the monitoring report's) in one transaction. Ids, codes,
counts and times only (UTC instants; the weekend is reckoned in London time).

Sections, in this order (docs/api.md, "The coordinator's dashboard"):

- ``safety_alerts``: meetings whose latest ``SafetyCheckOverdue`` is not followed by a
  ``SafetyAlertResolved``, the longest open first. Always first.
- ``audit_alerts``: beside them, the sources reporting found rewound (``audit.py``):
  their figures here and in the reports stand still until a rebuild.
- ``on_call``: the shifts on at ``now`` (started, not ended), each with its crew as the
  assignments, unassignments and swaps left it, each supporter's check-in, and
  ``all_checked_in``: as many supporters as it requires, every one checked in.
- ``short_shifts``: the shifts overlapping the next ``AHEAD`` (14 days) with fewer
  supporters assigned than they require (``assigned`` may be 0), earliest first.
- ``debriefs``: those opened and not completed, the oldest (so the overdue) first;
  overdue once open longer than the shift service's ``debrief_overdue_hours``.
- ``follow_ups``: contacts' follow-ups not completed and referrals' first contacts not
  made, due before ``now`` + ``FOLLOW_UPS_AHEAD`` (24 hours; the overdue included),
  soonest due first.
- ``meetings_awaiting_approval``: meetings requested or risk-assessed and not yet
  approved, declined or cancelled, the longest waiting first.
- ``weekend``: answered contacts (and, apart, missed calls) started since the latest
  Friday 18:00 London time until the Monday 08:00 after it (the out-of-hours line's
  weekend); between weekends, the last one's, with ``current`` false.

Each list holds at most ``LIMIT`` items; its ``count`` counts them all.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from services.reporting import audit
from services.reporting.contact_events import contacts, follow_ups
from services.reporting.dashboard_events import (
    WAITING_FOR_APPROVAL,
    check_ins,
    dash_shifts,
    first_contacts,
    meetings,
    safety_alerts,
)
from services.reporting.service_figures import rota_crew, shift_debriefs
from shared.eventstore.readtables import at, from_ts

LONDON = ZoneInfo("Europe/London")
AHEAD = timedelta(days=14)
FOLLOW_UPS_AHEAD = timedelta(hours=24)
LIMIT = 100
WEEKEND_STARTS = time(18, 0)  # Friday, London
WEEKEND_ENDS = time(8, 0)  # Monday, London
FRIDAY = 4


def _iso(value: datetime | None) -> str | None:
    moment = from_ts(value)
    return moment.isoformat() if moment is not None else None


def _listed(items: list[dict[str, Any]], **counts: int) -> dict[str, Any]:
    return {"count": len(items), **counts, "items": items[:LIMIT]}


def document(conn: Connection, now: datetime, *,
             debrief_overdue_after: timedelta) -> dict[str, Any]:
    """The dashboard at ``now`` (an aware time)."""
    now = now.astimezone(UTC)
    shifts = _shifts(conn, now)
    return {
        "safety_alerts": _listed(_alerts(conn)),
        "audit_alerts": _listed([{**a, "detected_at": _iso(a["detected_at"])}
                                 for a in audit.alerts(conn)]),
        "on_call": [_on_call(s) for s in shifts if s["starts_at"] <= now < s["ends_at"]],
        "short_shifts": _listed([_short(s) for s in shifts
                                 if len(s["supporters"]) < s["required"]]),
        "debriefs": _debriefs(conn, now, debrief_overdue_after),
        "follow_ups": _follow_ups(conn, now),
        "meetings_awaiting_approval": _listed(_meetings(conn)),
        "weekend": weekend(conn, now),
        "at": now.isoformat(),
    }


# -- safety alerts ----------------------------------------------------------------------

def _alerts(conn: Connection) -> list[dict[str, Any]]:
    a = safety_alerts.c
    rows = conn.execute(
        sa.select(a.meeting_id, a.raised_at, a.deadline)
        .where(a.raised_n.is_not(None),
               sa.or_(a.resolved_n.is_(None), a.resolved_n < a.raised_n))
        .order_by(a.raised_at, a.meeting_id)).all()
    return [{"meeting_id": m, "raised_at": _iso(r), "deadline": _iso(d)} for m, r, d in rows]


# -- shifts -----------------------------------------------------------------------------

def _shifts(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    """The shifts overlapping [now, now + AHEAD), with their crews and check-ins."""
    s = dash_shifts.c
    rows = conn.execute(
        sa.select(s.shift_id, s.slot, s.starts_at, s.ends_at, s.required)
        .where(s.ends_at > at(now), s.starts_at < at(now + AHEAD))
        .order_by(s.starts_at, s.shift_id)).all()
    ids = [r.shift_id for r in rows]
    crews = _crews(conn, ids)
    checked = _check_ins(conn, ids)
    out = []
    for r in rows:
        crew = sorted(crews.get(r.shift_id, ()))
        times = checked.get(r.shift_id, {})
        out.append({"shift_id": r.shift_id, "slot": r.slot,
                    "starts_at": from_ts(r.starts_at), "ends_at": from_ts(r.ends_at),
                    "required": int(r.required),
                    "supporters": [{"supporter_id": sid, "checked_in_at": _iso(times.get(sid))}
                                   for sid in crew]})
    return out


def _crews(conn: Connection, ids: Iterable[str]) -> dict[str, set[str]]:
    """Each shift's supporters now: the last change of each by its log position."""
    c = rota_crew.c
    on: dict[str, dict[str, bool]] = {}
    for shift_id, supporter_id, joined in conn.execute(
            sa.select(c.shift_id, c.supporter_id, c.joined)
            .where(c.shift_id.in_(list(ids))).order_by(c.notification_id)).all():
        on.setdefault(shift_id, {})[supporter_id] = bool(joined)
    return {sid: {p for p, yes in crew.items() if yes} for sid, crew in on.items()}


def _check_ins(conn: Connection, ids: Iterable[str]) -> dict[str, dict[str, datetime]]:
    c = check_ins.c
    out: dict[str, dict[str, datetime]] = {}
    for shift_id, supporter_id, when in conn.execute(
            sa.select(c.shift_id, c.supporter_id, c.at).where(c.shift_id.in_(list(ids)))):
        out.setdefault(shift_id, {})[supporter_id] = when
    return out


def _times(shift: dict[str, Any]) -> dict[str, Any]:
    return {"shift_id": shift["shift_id"], "slot": shift["slot"],
            "starts_at": shift["starts_at"].isoformat(),
            "ends_at": shift["ends_at"].isoformat(), "required": shift["required"]}


def _on_call(shift: dict[str, Any]) -> dict[str, Any]:
    crew = shift["supporters"]
    checked = sum(1 for p in crew if p["checked_in_at"] is not None)
    return {**_times(shift), "supporters": crew, "checked_in": checked,
            "all_checked_in": len(crew) >= shift["required"] and checked == len(crew)}


def _short(shift: dict[str, Any]) -> dict[str, Any]:
    return {**_times(shift), "assigned": len(shift["supporters"])}


# -- debriefs, follow-ups, meetings -----------------------------------------------------

def _debriefs(conn: Connection, now: datetime, after: timedelta) -> dict[str, Any]:
    d = shift_debriefs.c
    rows = conn.execute(
        sa.select(d.debrief_id, d.opened_at)
        .where(d.opened_at.is_not(None), d.completed_at.is_(None))
        .order_by(d.opened_at, d.debrief_id)).all()
    items = []
    for debrief_id, opened in rows:
        opened_at = from_ts(opened) or now
        items.append({"debrief_id": debrief_id, "opened_at": opened_at.isoformat(),
                      "due_by": (opened_at + after).isoformat(),
                      "overdue": now - opened_at > after})
    return _listed(items, overdue=sum(1 for i in items if i["overdue"]))


def _follow_ups(conn: Connection, now: datetime) -> dict[str, Any]:
    f, r = follow_ups.c, first_contacts.c
    horizon = at(now + FOLLOW_UPS_AHEAD)
    due: list[tuple[datetime, dict[str, Any]]] = []
    for contact_id, n, due_by in conn.execute(
            sa.select(f.contact_id, f.n, f.due_by)
            .where(f.completed_at.is_(None), f.due_by.is_not(None), f.due_by < horizon)):
        due.append((from_ts(due_by) or now, {"kind": "follow_up", "contact_id": contact_id,
                                             "n": int(n)}))
    for referral_id, due_by in conn.execute(
            sa.select(r.referral_id, r.due_by)
            .where(r.made_at.is_(None), r.due_by.is_not(None), r.due_by < horizon)):
        due.append((from_ts(due_by) or now, {"kind": "first_contact",
                                             "referral_id": referral_id}))
    due.sort(key=lambda item: (item[0], str(item[1].get("contact_id") or item[1].get(
        "referral_id")), item[1].get("n") or 0))
    items = [{**item, "due_by": when.isoformat(), "overdue": when < now} for when, item in due]
    return _listed(items, overdue=sum(1 for i in items if i["overdue"]))


def _meetings(conn: Connection) -> list[dict[str, Any]]:
    m = meetings.c
    rows = conn.execute(
        sa.select(m.meeting_id, m.status, m.kind, m.requested_at, m.risk_level)
        .where(m.status.in_(WAITING_FOR_APPROVAL))
        .order_by(m.requested_at, m.meeting_id)).all()
    return [{"meeting_id": mid, "status": status, "kind": kind,
             "requested_at": _iso(requested), "risk_level": level}
            for mid, status, kind, requested, level in rows]


# -- the weekend ------------------------------------------------------------------------

def weekend_of(now: datetime) -> tuple[datetime, datetime]:
    """The latest weekend to start by ``now``: [Friday 18:00, Monday 08:00) London."""
    today = now.astimezone(LONDON).date()
    friday = today - timedelta(days=(today.weekday() - FRIDAY) % 7)
    start = _london(friday, WEEKEND_STARTS)
    if start > now:  # a Friday before 18:00: the weekend before
        friday -= timedelta(days=7)
        start = _london(friday, WEEKEND_STARTS)
    return start, _london(friday + timedelta(days=3), WEEKEND_ENDS)


def _london(day: date, clock: time) -> datetime:
    return datetime.combine(day, clock, tzinfo=LONDON).astimezone(UTC)


def weekend(conn: Connection, now: datetime) -> dict[str, Any]:
    start, end = weekend_of(now)
    c = contacts.c
    counts: dict[Any, int] = dict(conn.execute(
        sa.select(c.answered, sa.func.count())
        .where(c.started_at >= at(start), c.started_at < at(end))
        .group_by(c.answered)).all())
    return {"from": start.isoformat(), "to": end.isoformat(), "current": now < end,
            "contacts": int(counts.get(True, 0)), "missed_calls": int(counts.get(False, 0))}


def read(engine: Engine, now: datetime, *, debrief_overdue_after: timedelta) -> dict[str, Any]:
    """The dashboard read in one transaction (a snapshot, on PostgreSQL): its sections
    agree with each other even while events are being applied."""
    options = ({"isolation_level": "REPEATABLE READ"}
               if engine.dialect.name == "postgresql" else {})
    with engine.connect().execution_options(**options) as conn, conn.begin():
        return document(conn, now, debrief_overdue_after=debrief_overdue_after)
