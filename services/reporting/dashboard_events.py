"""What the coordinator's dashboard needs beyond the monitoring report's tables: the
shifts' ends, the check-ins, the safety alerts open, the meetings' current status and
the referrals' first contacts, from the shift, outreach and contact services'
integration events (``HANDLERS``, registered by ``handlers.py``). The dashboard also
reads the report's tables (the crews in ``rm_rota_crew``, the debriefs, the contacts'
follow-ups and the contacts themselves): see ``dashboard.py``.

Ids, codes and UTC instants only. Every handler is idempotent and keeps the latest
state by the event's position in its service's log: a duplicate, or an older event
delivered again after newer ones, changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.reporting.read_model import metadata
from shared.eventstore.readtables import Instant, ts
from shared.messaging.envelope import IntegrationEvent

Handler = Callable[[Connection, IntegrationEvent], None]

dash_shifts = sa.Table(
    "rm_dash_shifts",
    metadata,
    sa.Column("shift_id", sa.String(36), primary_key=True),
    sa.Column("slot", sa.String(120)),  # null: an extra shift
    sa.Column("starts_at", Instant, nullable=False, index=True),
    sa.Column("ends_at", Instant, nullable=False, index=True),
    sa.Column("required", sa.Integer, nullable=False),
)

check_ins = sa.Table(
    "rm_dash_check_ins",
    metadata,
    sa.Column("shift_id", sa.String(36), primary_key=True),
    sa.Column("supporter_id", sa.String(64), primary_key=True),
    sa.Column("at", Instant, nullable=False),
)

# One row per meeting that ever had an alert: open while the latest SafetyCheckOverdue
# is later in the outreach log than the latest SafetyAlertResolved.
safety_alerts = sa.Table(
    "rm_dash_safety_alerts",
    metadata,
    sa.Column("meeting_id", sa.String(36), primary_key=True),
    sa.Column("raised_n", sa.BigInteger),
    sa.Column("raised_at", Instant),
    sa.Column("deadline", Instant),
    sa.Column("resolved_n", sa.BigInteger),
)

meetings = sa.Table(
    "rm_dash_meetings",
    metadata,
    sa.Column("meeting_id", sa.String(36), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("kind", sa.String(40)),
    sa.Column("requested_at", Instant),
    sa.Column("risk_level", sa.String(20)),
    sa.Column("last_n", sa.BigInteger, nullable=False),  # the event that set the status
)

first_contacts = sa.Table(
    "rm_dash_first_contacts",
    metadata,
    sa.Column("referral_id", sa.String(36), primary_key=True),
    sa.Column("due_by", Instant, index=True),
    sa.Column("made_at", Instant),
)


def _instant(value: Any, fallback: datetime) -> datetime | None:
    if not value:
        return ts(fallback)
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError("a time without its offset")
    return ts(parsed)


def _row(conn: Connection, table: sa.Table, key: str, value: str) -> Any:
    return conn.execute(sa.select(table).where(table.c[key] == value)).mappings().first()


def _upsert(conn: Connection, table: sa.Table, key: str, value: str,
            **values: Any) -> None:
    if _row(conn, table, key, value) is None:
        conn.execute(sa.insert(table).values({key: value, **values}))
    elif values:
        conn.execute(sa.update(table).where(table.c[key] == value).values(**values))


# -- the shift service -----------------------------------------------------------------

def shift_published(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    _upsert(conn, dash_shifts, "shift_id", d["shift_id"], slot=d.get("slot"),
            starts_at=_instant(d["starts_at"], ev.occurred_at),
            ends_at=_instant(d["ends_at"], ev.occurred_at), required=int(d["required"]))


def supporter_checked_in(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    where = sa.and_(check_ins.c.shift_id == d["shift_id"],
                    check_ins.c.supporter_id == d["supporter_id"])
    if conn.execute(sa.select(check_ins.c.at).where(where)).first() is None:
        conn.execute(sa.insert(check_ins).values(
            shift_id=d["shift_id"], supporter_id=d["supporter_id"],
            at=_instant(d.get("at"), ev.occurred_at)))


# -- the outreach service --------------------------------------------------------------

def safety_check_overdue(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    row = _row(conn, safety_alerts, "meeting_id", d["meeting_id"])
    if row is not None and (row["raised_n"] or 0) >= ev.notification_id:
        return
    _upsert(conn, safety_alerts, "meeting_id", d["meeting_id"], raised_n=ev.notification_id,
            raised_at=ts(ev.occurred_at), deadline=_instant(d.get("deadline"), ev.occurred_at))


def safety_alert_resolved(conn: Connection, ev: IntegrationEvent) -> None:
    row = _row(conn, safety_alerts, "meeting_id", ev.data["meeting_id"])
    if row is not None and (row["resolved_n"] or 0) >= ev.notification_id:
        return
    _upsert(conn, safety_alerts, "meeting_id", ev.data["meeting_id"],
            resolved_n=ev.notification_id)


MEETING_STATUS = {
    "MeetingRequested": "requested",
    "MeetingRiskAssessed": "risk_assessed",
    "MeetingApproved": "approved",
    "MeetingDeclined": "declined",
    "MeetingScheduled": "scheduled",
    "MeetingCheckedIn": "in_progress",
    "MeetingCompleted": "completed",
    "MeetingCancelled": "cancelled",
}
WAITING_FOR_APPROVAL = ("requested", "risk_assessed")


def meeting_status(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    values: dict[str, Any] = {}
    if ev.type == "MeetingRequested":
        values = {"kind": d.get("kind"),
                  "requested_at": _instant(d.get("requested_at"), ev.occurred_at)}
    elif ev.type == "MeetingRiskAssessed":
        values = {"risk_level": d.get("level")}
    row = _row(conn, meetings, "meeting_id", d["meeting_id"])
    if row is None:
        conn.execute(sa.insert(meetings).values(
            meeting_id=d["meeting_id"], status=MEETING_STATUS[ev.type],
            last_n=ev.notification_id, **values))
    elif row["last_n"] < ev.notification_id:
        conn.execute(sa.update(meetings).where(meetings.c.meeting_id == d["meeting_id"])
                     .values(status=MEETING_STATUS[ev.type], last_n=ev.notification_id,
                             **values))
    elif ev.type == "MeetingRequested" and row["requested_at"] is None:
        conn.execute(sa.update(meetings).where(meetings.c.meeting_id == d["meeting_id"])
                     .values(**values))  # arrived after a later one: its facts, not status


# -- the contact service: referrals' first contacts ------------------------------------

def referral_accepted(conn: Connection, ev: IntegrationEvent) -> None:
    due = ev.data.get("first_contact_due_by")
    _upsert(conn, first_contacts, "referral_id", ev.data["referral_id"],
            due_by=_instant(due, ev.occurred_at) if due else None)


def first_contact_made(conn: Connection, ev: IntegrationEvent) -> None:
    referral_id = ev.data["referral_id"]
    row = _row(conn, first_contacts, "referral_id", referral_id)
    if row is None or row["made_at"] is None:  # the first one stands
        _upsert(conn, first_contacts, "referral_id", referral_id,
                made_at=_instant(ev.data.get("at"), ev.occurred_at))


HANDLERS: dict[tuple[str, str], Handler] = {
    ("shift", "ShiftPublished"): shift_published,
    ("shift", "SupporterCheckedIn"): supporter_checked_in,
    ("outreach", "SafetyCheckOverdue"): safety_check_overdue,
    ("outreach", "SafetyAlertResolved"): safety_alert_resolved,
    **{("outreach", name): meeting_status for name in MEETING_STATUS},
    ("contact", "ReferralAccepted"): referral_accepted,
    ("contact", "ReferralFirstContactMade"): first_contact_made,
}
