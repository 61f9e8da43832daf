"""The contact figures of the monitoring report: contacts, callers, referrals,
escalations and follow-ups, read from the contact service's events (and the shift
service's ``ShiftPublished``, for the slot of a contact's shift).

Its tables and handlers are in ``contact_events`` (re-exported: ``HANDLERS``). ``figures``
gives RAW counts for a period of UTC instants ``[start, end)``: turning a
London month into instants, percentages and suppression are the report's
(``services.reporting.report``).

Definitions (docs/api.md, "Reporting"):

- ``contacts.total``: answered contacts (calls and text threads) started in the period;
  a reopened text thread is the same contact. Missed calls are ``missed_calls`` apart,
  in no other figure of ``contacts``. Every ``by_*`` breakdown is of ``total``:
  ``by_issue`` counts a contact once per category (as last corrected),
  ``by_risk_level`` by its latest assessment (``not_assessed`` when none),
  ``by_caller_is`` as last corrected (``not_recorded`` when none), ``by_shift_slot``
  by the slot of its shift (``extra`` for an extra shift, ``unknown`` while its
  ``ShiftPublished`` has not arrived), ``outside_shifts`` those with no shift.
- ``callers``: distinct ``caller_ref`` with an answered contact in the period
  (anonymous contacts are contacts, not callers); ``new`` those whose first answered
  contact ever is in it; ``repeat`` those with two or more in it; gender and age band
  as on their latest contact in it (null or ``not_disclosed``: not disclosed).
- ``referrals``: ``total``/``by_source`` received in the period; ``accepted`` and
  ``declined`` decided in it (whenever received).
- ``escalations``: recorded in the period, by kind.
- ``follow_ups``: ``due`` with ``due_by`` in the period; ``completed`` completed in it;
  ``overdue`` due in it, past due at ``now``, and not completed by its ``due_by``.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.reporting import month_counts
from services.reporting.contact_events import (
    EXTRA_SHIFT,
    HANDLERS,
    UNKNOWN_SHIFT,
    Handler,
    callers,
    contact_issues,
    contacts,
    escalations,
    follow_ups,
    referrals,
    risk,
    shift_slots,
    signposts,
)
from services.reporting.read_model import directory_names
from shared.eventstore.readtables import at

__all__ = ["HANDLERS", "Handler", "figures", "month_figures", "year_figures"]

NOT_DISCLOSED = frozenset({"not_disclosed", "prefer_not_to_say"})


# -------------------------------------------------------------------------- figures

def _counts(conn: Connection, stmt: sa.Select[Any], none: str = "none") -> dict[str, int]:
    """``stmt`` selects (code, count): as a dict in code order, a null code as ``none``."""
    counts: Counter[str] = Counter()
    for code, n in conn.execute(stmt).all():
        counts[none if code is None else str(code)] += int(n)
    return dict(sorted(counts.items()))


def figures(conn: Connection, start: datetime, end: datetime, *,
            now: datetime | None = None) -> dict[str, Any]:
    """RAW counts for the UTC instants ``[start, end)``; ``now`` (default: the clock)
    decides which follow-ups due in the period are past due yet."""
    now = now or datetime.now(UTC)
    return {
        "contacts": _contacts(conn, start, end),
        "callers": _callers(conn, start, end),
        "referrals": _referrals(conn, start, end),
        "escalations": _escalations(conn, start, end),
        "follow_ups": _follow_ups(conn, start, end, now),
    }


def month_figures(conn: Connection, month: str, start: datetime, end: datetime, *,
                  now: datetime | None = None) -> dict[str, Any]:
    """``figures`` of a whole London month (``start``/``end`` its instants): contacts and
    callers read from the month's counters (``month_counts``), the rest counted."""
    now = now or datetime.now(UTC)
    return {**month_counts.month_figures(conn, month),
            "referrals": _referrals(conn, start, end),
            "escalations": _escalations(conn, start, end),
            "follow_ups": _follow_ups(conn, start, end, now)}


def _merged(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict):
            merged = dict(out.get(key, {}))
            for code, n in value.items():
                merged[code] = merged.get(code, 0) + n
            out[key] = dict(sorted(merged.items()))
        else:
            out[key] = out.get(key, 0) + value
    return out


def year_figures(conn: Connection, months: list[tuple[str, datetime, datetime]], *,
                 now: datetime | None = None) -> tuple[dict[str, Any],
                                                       list[tuple[str, dict[str, Any]]]]:
    """``figures`` of consecutive whole London months, and each month's own. A contact is
    in one month, so the year's contacts are the months' sum; a caller may be in several,
    so the year's callers are counted over the year."""
    now = now or datetime.now(UTC)
    each = [(m, month_figures(conn, m, start, end, now=now)) for m, start, end in months]
    begin, end = months[0][1], months[-1][2]
    contacts_: dict[str, Any] = {}
    for _, f in each:
        contacts_ = _merged(contacts_, f["contacts"])
    return ({"contacts": contacts_,
             "callers": _callers(conn, begin, end, months=[m for m, _, _ in months]),
             "referrals": _referrals(conn, begin, end),
             "escalations": _escalations(conn, begin, end),
             "follow_ups": _follow_ups(conn, begin, end, now)}, each)


def _within(column: Any, start: datetime, end: datetime) -> Any:
    return sa.and_(column >= at(start), column < at(end))


def _contacts(conn: Connection, start: datetime, end: datetime) -> dict[str, Any]:
    c = contacts.c
    period = _within(c.started_at, start, end)
    answered = sa.select(c.contact_id).where(period, c.answered.is_(True)).subquery()
    one = sa.func.count()

    # One pass over the period's contacts for the total, missed calls and the breakdowns
    # of the contact row itself; the others join the few tables that hold sets.
    by_channel: Counter[str] = Counter()
    by_direction: Counter[str] = Counter()
    by_caller_is: Counter[str] = Counter({"not_recorded": 0})
    total = missed = 0
    for channel, direction, caller_is, was_answered, n in conn.execute(
            sa.select(c.channel, c.direction, c.caller_is, c.answered, one).where(period)
            .group_by(c.channel, c.direction, c.caller_is, c.answered)).all():
        if not was_answered:
            missed += int(n)
            continue
        total += int(n)
        by_channel[channel] += int(n)
        by_direction[direction] += int(n)
        by_caller_is["not_recorded" if caller_is is None else caller_is] += int(n)
    issues = _counts(conn, sa.select(contact_issues.c.issue, one)
                     .join(answered, answered.c.contact_id == contact_issues.c.contact_id)
                     .group_by(contact_issues.c.issue))
    return {
        "total": total,
        "by_channel": dict(sorted(by_channel.items())),
        "by_direction": dict(sorted(by_direction.items())),
        "by_caller_is": dict(sorted(by_caller_is.items())),
        "by_issue": issues,
        "by_risk_level": _risk_levels(conn, answered, total),
        **_shift_slots(conn, answered),
        "missed_calls": missed,
        "signposting": _signposting(conn, answered),
    }


def _risk_levels(conn: Connection, answered: Any, total: int) -> dict[str, int]:
    latest = (sa.select(risk.c.contact_id, sa.func.max(risk.c.n).label("n"))
              .join(answered, answered.c.contact_id == risk.c.contact_id)
              .group_by(risk.c.contact_id).subquery())
    levels = _counts(conn, sa.select(risk.c.level, sa.func.count()).join(
        latest, sa.and_(latest.c.contact_id == risk.c.contact_id, latest.c.n == risk.c.n))
        .group_by(risk.c.level))
    levels["not_assessed"] = total - sum(levels.values())
    return levels


def _shift_slots(conn: Connection, answered: Any) -> dict[str, Any]:
    c, s = contacts.c, shift_slots.c
    rows = conn.execute(
        sa.select(c.shift_id.is_(None), s.shift_id.is_(None), s.slot, sa.func.count())
        .select_from(contacts.join(answered, answered.c.contact_id == c.contact_id)
                     .outerjoin(shift_slots, s.shift_id == c.shift_id))
        .group_by(c.shift_id.is_(None), s.shift_id.is_(None), s.slot)
    ).all()
    by_slot: Counter[str] = Counter()
    outside = 0
    for no_shift, unknown, slot, n in rows:
        if no_shift:
            outside += int(n)
        else:
            by_slot[UNKNOWN_SHIFT if unknown else (slot or EXTRA_SHIFT)] += int(n)
    return {"by_shift_slot": dict(sorted(by_slot.items())), "outside_shifts": outside}


def _signposting(conn: Connection, answered: Any) -> dict[str, int]:
    rows = conn.execute(
        sa.select(signposts.c.entry_id, directory_names.c.name, sa.func.count())
        .join(answered, answered.c.contact_id == signposts.c.contact_id)
        .outerjoin(directory_names, directory_names.c.entry_id == signposts.c.entry_id)
        .group_by(signposts.c.entry_id, directory_names.c.name)
    ).all()
    named: Counter[str] = Counter()
    for entry_id, name, n in rows:
        named[name or entry_id] += int(n)
    return dict(sorted(named.items()))


def _callers(conn: Connection, start: datetime, end: datetime, *,
             months: list[str] | None = None) -> dict[str, Any]:
    """Counted in SQL (a month at national scale has tens of thousands of callers):
    distinct callers, those with two or more contacts, those whose first contact ever
    is in the period, and gender and age band as recorded on each one's latest contact
    in the period. From the contacts of the period; for whole London ``months`` (the
    year report), from the callers' rows of those months (``month_counts``: a row per
    caller and month, with the count and the latest contact), a third as many rows."""
    c, m = contacts.c, month_counts.caller_months.c
    rows_in: tuple[Any, ...]
    n: Any
    gender_of: Any
    age_of: Any
    if months is None:
        rows_in = (_within(c.started_at, start, end), c.answered.is_(True),
                   c.caller_ref.is_not(None))
        ref, n, order = c.caller_ref, sa.func.count(), (c.started_at.desc(),
                                                         c.contact_id.desc())
        gender_of, age_of = c.gender, c.age_band
    else:
        rows_in = (m.month.in_(months),)
        ref, n, order = m.caller_ref, sa.func.sum(m.n), (m.latest_at.desc(),
                                                          m.latest_contact.desc())
        gender_of, age_of = sa.func.nullif(m.gender, ""), sa.func.nullif(m.age_band, "")
    per_caller = (sa.select(ref, n.label("n")).where(*rows_in).group_by(ref).subquery())
    unique, repeat = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(
            sa.case((per_caller.c.n >= 2, 1), else_=0)), 0))).one()
    new = conn.execute(sa.select(sa.func.count()).select_from(callers)
                       .where(_within(callers.c.first_at, start, end))).scalar_one()
    latest = (sa.select(gender_of.label("gender"), age_of.label("age_band"),
                        sa.func.row_number().over(partition_by=ref, order_by=order)
                        .label("rn")).where(*rows_in).subquery())
    rows = conn.execute(sa.select(latest.c.gender, latest.c.age_band, sa.func.count())
                        .where(latest.c.rn == 1)
                        .group_by(latest.c.gender, latest.c.age_band)).all()
    gender: Counter[str] = Counter()
    age: Counter[str] = Counter()
    gender_nd = age_nd = 0
    for g, a, n in rows:
        if g is None or g in NOT_DISCLOSED:
            gender_nd += int(n)
        else:
            gender[g] += int(n)
        if a is None or a in NOT_DISCLOSED:
            age_nd += int(n)
        else:
            age[a] += int(n)
    return {"unique": int(unique), "new": int(new), "repeat": int(repeat),
            "by_gender": dict(sorted(gender.items())), "gender_not_disclosed": gender_nd,
            "by_age_band": dict(sorted(age.items())), "age_band_not_disclosed": age_nd}


def _referrals(conn: Connection, start: datetime, end: datetime) -> dict[str, Any]:
    r = referrals.c
    by_source = _counts(conn, sa.select(r.source, sa.func.count())
                        .where(_within(r.received_at, start, end)).group_by(r.source))

    def decided(column: Any) -> int:
        return int(conn.execute(sa.select(sa.func.count()).select_from(referrals)
                                .where(_within(column, start, end))).scalar_one())

    return {"total": sum(by_source.values()), "by_source": by_source,
            "accepted": decided(r.accepted_at), "declined": decided(r.declined_at)}


def _escalations(conn: Connection, start: datetime, end: datetime) -> dict[str, Any]:
    e = escalations.c
    by_kind = _counts(conn, sa.select(e.kind, sa.func.count())
                      .where(_within(e.at, start, end)).group_by(e.kind))
    return {"total": sum(by_kind.values()), "by_kind": by_kind}


def _follow_ups(conn: Connection, start: datetime, end: datetime,
                now: datetime) -> dict[str, int]:
    f = follow_ups.c
    due = _within(f.due_by, start, end)

    def count(*where: Any) -> int:
        return int(conn.execute(sa.select(sa.func.count()).select_from(follow_ups)
                                .where(*where)).scalar_one())

    return {
        "due": count(due),
        "completed": count(_within(f.completed_at, start, end)),
        "overdue": count(due, f.due_by < at(now),
                         sa.or_(f.completed_at.is_(None), f.completed_at > f.due_by)),
    }
