"""The contact service's events (and the shift service's ``ShiftPublished``) as the
monitoring report's contact figures need them (``contact_figures``): ids, the
pseudonymous ``caller_ref``, codes and UTC instants, never personal data. Every handler
is idempotent: applying an event twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.reporting import month_counts
from services.reporting.month_counts import Delta, month_of
from services.reporting.read_model import metadata
from shared.eventstore.readtables import Instant, from_ts, ts
from shared.messaging.envelope import IntegrationEvent

Handler = Callable[[Connection, IntegrationEvent], None]

contacts = sa.Table(
    "rm_cf_contacts",
    metadata,
    sa.Column("contact_id", sa.String(36), primary_key=True),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("direction", sa.String(20), nullable=False),
    sa.Column("answered", sa.Boolean, nullable=False),
    sa.Column("started_at", Instant, nullable=False, index=True),
    sa.Column("caller_ref", sa.String(40), index=True),
    sa.Column("gender", sa.String(40)),
    sa.Column("age_band", sa.String(40)),
    sa.Column("caller_is", sa.String(40)),
    sa.Column("shift_id", sa.String(36), index=True),
)

contact_issues = sa.Table(
    "rm_cf_contact_issues",
    metadata,
    sa.Column("contact_id", sa.String(36), primary_key=True),
    sa.Column("issue", sa.String(60), primary_key=True),
)

signposts = sa.Table(
    "rm_cf_signposts",
    metadata,
    sa.Column("contact_id", sa.String(36), primary_key=True),
    sa.Column("entry_id", sa.String(36), primary_key=True),
)

risk = sa.Table(
    "rm_cf_risk",
    metadata,
    sa.Column("contact_id", sa.String(36), primary_key=True),
    sa.Column("n", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("level", sa.String(20), nullable=False),
)

escalations = sa.Table(
    "rm_cf_escalations",
    metadata,
    sa.Column("contact_id", sa.String(36), primary_key=True),
    sa.Column("n", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("at", Instant, nullable=False, index=True),
)

follow_ups = sa.Table(
    "rm_cf_follow_ups",
    metadata,
    sa.Column("contact_id", sa.String(36), primary_key=True),
    sa.Column("n", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("due_by", Instant, index=True),  # null only if completed arrived first
    sa.Column("completed_at", Instant, index=True),
)

referrals = sa.Table(
    "rm_cf_referrals",
    metadata,
    sa.Column("referral_id", sa.String(36), primary_key=True),
    sa.Column("source", sa.String(40), nullable=False),
    sa.Column("received_at", Instant, nullable=False, index=True),
    sa.Column("accepted_at", Instant, index=True),
    sa.Column("declined_at", Instant, index=True),
)

callers = sa.Table(  # first answered contact ever, for ``callers.new``
    "rm_cf_callers",
    metadata,
    sa.Column("caller_ref", sa.String(40), primary_key=True),
    sa.Column("first_at", Instant, nullable=False),
)

shift_slots = sa.Table(
    "rm_cf_shift_slots",
    metadata,
    sa.Column("shift_id", sa.String(36), primary_key=True),
    sa.Column("slot", sa.String(120)),  # null: an extra shift
)


# ------------------------------------------------------------------------- handlers

def _instant(value: str | None) -> datetime | None:
    return ts(datetime.fromisoformat(value)) if value else None


def _exists(conn: Connection, table: sa.Table, **key: Any) -> bool:
    where = [table.c[name] == value for name, value in key.items()]
    return conn.execute(sa.select(sa.literal(1)).select_from(table).where(*where)).first() \
        is not None


def _insert_new(conn: Connection, table: sa.Table, key: dict[str, Any], **values: Any) -> None:
    """Insert a row unless one with this key is there (a duplicate event)."""
    if not _exists(conn, table, **key):
        conn.execute(sa.insert(table).values(**key, **values))


def _replace_set(conn: Connection, table: sa.Table, column: str, contact_id: str,
                 values: list[str]) -> None:
    conn.execute(sa.delete(table).where(table.c.contact_id == contact_id))
    for value in sorted(set(values)):
        conn.execute(sa.insert(table).values(contact_id=contact_id, **{column: value}))


# A contact's arrival is the hot path of the reporting consumer (one per contact
# logged): its statements are built once, and a set is inserted in one executemany.
_CONTACT_KNOWN = (sa.select(sa.literal(1)).select_from(contacts)
                  .where(contacts.c.contact_id == sa.bindparam("cid")))
_INSERT_CONTACT = sa.insert(contacts)
_INSERT_ISSUE = sa.insert(contact_issues)
_INSERT_SIGNPOST = sa.insert(signposts)
_FIRST_AT = sa.select(callers.c.first_at).where(callers.c.caller_ref == sa.bindparam("ref"))
_INSERT_CALLER = sa.insert(callers)
_EARLIER_FIRST = (sa.update(callers).where(callers.c.caller_ref == sa.bindparam("ref"))
                  .values(first_at=sa.bindparam("first")))


_LATEST_RISK = (sa.select(risk.c.n, risk.c.level).where(risk.c.contact_id == sa.bindparam("cid"))
                .order_by(risk.c.n.desc()).limit(1))
_SLOT = sa.select(shift_slots.c.slot).where(shift_slots.c.shift_id == sa.bindparam("sid"))
_COUNTED = sa.select(contacts.c.answered, contacts.c.started_at, contacts.c.caller_is).where(
    contacts.c.contact_id == sa.bindparam("cid"))
EXTRA_SHIFT = "extra"  # a contact on an extra shift (published with no slot)
UNKNOWN_SHIFT = "unknown"  # its shift's ShiftPublished not (yet) applied


def _slot_code(slot: str | None) -> str:
    return slot or EXTRA_SHIFT


def contact_logged(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    cid = d["contact_id"]
    if conn.execute(_CONTACT_KNOWN, {"cid": cid}).first() is not None:
        return  # a duplicate: its corrections since must stand
    started_at = _instant(d["started_at"])
    assert started_at is not None
    answered = bool(d.get("answered", True))
    conn.execute(_INSERT_CONTACT, {
        "contact_id": cid, "channel": d["channel"],
        "direction": d.get("direction") or "inbound", "answered": answered,
        "started_at": started_at, "caller_ref": d.get("caller_ref"),
        "gender": d.get("gender"), "age_band": d.get("age_band"),
        "caller_is": d.get("caller_is"), "shift_id": d.get("shift_id")})
    # A new contact has no rows in the sets yet: nothing to replace.
    issues = sorted(set(d.get("issues") or []))
    if issues:
        conn.execute(_INSERT_ISSUE, [{"contact_id": cid, "issue": i} for i in issues])
    entries = sorted(set(d.get("signposted_to") or []))
    if entries:
        conn.execute(_INSERT_SIGNPOST, [{"contact_id": cid, "entry_id": e} for e in entries])
    month, delta = month_of(started_at), Delta()
    if not answered:
        delta.count(month, "contacts.missed_calls")
        month_counts.add(conn, delta)
        return
    _count_contact(conn, delta, month, cid, d, issues, entries)
    ref = d.get("caller_ref")
    if ref:
        month_counts.caller_contact(
            conn, delta, month=month, ref=ref, contact_id=cid, started_at=started_at,
            gender=d.get("gender"), age_band=d.get("age_band"))
        first = from_ts(conn.execute(_FIRST_AT, {"ref": ref}).scalar())
        if first is None:
            conn.execute(_INSERT_CALLER, {"caller_ref": ref, "first_at": started_at})
            delta.count(month, "callers.new")
        elif started_at < first:
            conn.execute(_EARLIER_FIRST, {"ref": ref, "first": started_at})
            delta.count(month_of(first), "callers.new", n=-1)
            delta.count(month, "callers.new")
    month_counts.add(conn, delta)


def _count_contact(conn: Connection, delta: Delta, month: str, cid: str, d: dict[str, Any],
                   issues: list[str], entries: list[str]) -> None:
    """An answered contact's counts in its month."""
    latest = conn.execute(_LATEST_RISK, {"cid": cid}).first()  # none, unless replayed
    shift_id, slot = d.get("shift_id"), None
    if shift_id is not None:
        row = conn.execute(_SLOT, {"sid": shift_id}).first()
        slot = UNKNOWN_SHIFT if row is None else _slot_code(row.slot)
    month_counts.count_contact(delta, month, d, issues, entries,
                               risk=latest.level if latest else None, slot=slot)


def _replace_counted(conn: Connection, delta: Delta, month: str | None, figure: str,
                     table: sa.Table, column: str, cid: str, values: list[str]) -> None:
    """Replace a contact's set, its counts moved from the old codes to the new."""
    old = set(conn.execute(sa.select(table.c[column]).where(table.c.contact_id == cid))
              .scalars())
    _replace_set(conn, table, column, cid, values)
    if month is not None:
        for code in old - set(values):
            delta.count(month, figure, code, -1)
        for code in set(values) - old:
            delta.count(month, figure, code)


def contact_corrected(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    cid = d["contact_id"]
    row = conn.execute(_COUNTED, {"cid": cid}).first()
    # Only an answered contact is in the breakdowns.
    month = month_of(row.started_at) if row is not None and row.answered else None
    delta = Delta()
    if d.get("issues") is not None:
        _replace_counted(conn, delta, month, "contacts.by_issue", contact_issues, "issue",
                         cid, list(d["issues"]))
    if d.get("signposted_to") is not None:
        _replace_counted(conn, delta, month, "contacts.signposting", signposts, "entry_id",
                         cid, list(d["signposted_to"]))
    if d.get("caller_is") is not None:
        conn.execute(sa.update(contacts).where(contacts.c.contact_id == cid)
                     .values(caller_is=d["caller_is"]))
        if month is not None and row is not None:
            delta.move(month, "contacts.by_caller_is", row.caller_is or "not_recorded",
                       d["caller_is"])
    month_counts.add(conn, delta)


def risk_assessed(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    cid, n = d["contact_id"], int(d["n"])
    if _exists(conn, risk, contact_id=cid, n=n):
        return
    before = conn.execute(_LATEST_RISK, {"cid": cid}).first()
    conn.execute(sa.insert(risk).values(contact_id=cid, n=n, level=d["level"]))
    if before is not None and before.n > n:
        return  # an earlier assessment: the latest stands
    row = conn.execute(_COUNTED, {"cid": cid}).first()
    if row is not None and row.answered:
        delta = Delta()
        delta.move(month_of(row.started_at), "contacts.by_risk_level",
                   before.level if before is not None else "not_assessed", d["level"])
        month_counts.add(conn, delta)


def contact_escalated(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    _insert_new(conn, escalations, {"contact_id": d["contact_id"], "n": int(d["n"])},
                kind=d["kind"], at=ts(ev.occurred_at))


def follow_up_due(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    key = {"contact_id": d["contact_id"], "n": int(d["n"])}
    due_by = _instant(d.get("due_by"))
    if _exists(conn, follow_ups, **key):
        conn.execute(sa.update(follow_ups).where(
            follow_ups.c.contact_id == key["contact_id"], follow_ups.c.n == key["n"])
            .values(due_by=due_by))
    else:
        conn.execute(sa.insert(follow_ups).values(**key, due_by=due_by))


def follow_up_completed(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    key = {"contact_id": d["contact_id"], "n": int(d["n"])}
    when = ts(ev.occurred_at)
    if not _exists(conn, follow_ups, **key):
        conn.execute(sa.insert(follow_ups).values(**key, completed_at=when))
        return
    conn.execute(sa.update(follow_ups).where(  # the first completion stands
        follow_ups.c.contact_id == key["contact_id"], follow_ups.c.n == key["n"],
        follow_ups.c.completed_at.is_(None)).values(completed_at=when))


def referral_received(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    _insert_new(conn, referrals, {"referral_id": d["referral_id"]}, source=d["source"],
                received_at=_instant(d["received_at"]) or ts(ev.occurred_at))


def _referral_decided(column: str) -> Handler:
    def decided(conn: Connection, ev: IntegrationEvent) -> None:
        col = referrals.c[column]
        conn.execute(sa.update(referrals).where(
            referrals.c.referral_id == ev.data["referral_id"], col.is_(None))
            .values({col: ts(ev.occurred_at)}))
    return decided


def shift_published(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    sid, slot = d["shift_id"], d.get("slot")
    row = conn.execute(_SLOT, {"sid": sid}).first()
    if row is not None:
        conn.execute(sa.update(shift_slots).where(shift_slots.c.shift_id == sid)
                     .values(slot=slot))
    else:
        conn.execute(sa.insert(shift_slots).values(shift_id=sid, slot=slot))
    old = UNKNOWN_SHIFT if row is None else _slot_code(row.slot)
    if old == _slot_code(slot):
        return
    # Its contacts so far move from their old slot (unknown, before this) to this one.
    delta = Delta()
    for (started_at,) in conn.execute(sa.select(contacts.c.started_at).where(
            contacts.c.shift_id == sid, contacts.c.answered.is_(True))).all():
        delta.move(month_of(started_at), "contacts.by_shift_slot", old, _slot_code(slot))
    month_counts.add(conn, delta)


HANDLERS: dict[tuple[str, str], Handler] = {
    ("contact", "ContactLogged"): contact_logged,
    ("contact", "ContactCorrected"): contact_corrected,
    ("contact", "RiskAssessed"): risk_assessed,
    ("contact", "ContactEscalated"): contact_escalated,
    ("contact", "FollowUpDue"): follow_up_due,
    ("contact", "FollowUpCompleted"): follow_up_completed,
    ("contact", "ReferralReceived"): referral_received,
    ("contact", "ReferralAccepted"): _referral_decided("accepted_at"),
    ("contact", "ReferralDeclined"): _referral_decided("declined_at"),
    ("shift", "ShiftPublished"): shift_published,
}
