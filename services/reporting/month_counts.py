"""The contact figures of each London month, kept as counters as events arrive, so a
monthly report reads a few hundred rows however many contacts the month had.

``contact_events``' handlers keep the row-level tables (``rm_cf_contacts`` and its
sets) and, in the same transaction, add the change each event makes to its month's
counters (``add``): a contact counts in the month its call started, in London time;
a correction moves its counts from the old codes to the new; a later risk assessment
moves it from one level to another; a shift published after its contacts moves them
from ``unknown`` to the shift's slot. A duplicate event changes no row, so it changes
no counter either.

Callers are counted per month in ``rm_cf_caller_months`` (one row per caller with an
answered contact in the month: how many, and the gender and age band of the latest),
and their counters move with it.

``month_figures`` reads a month back in the shape of ``contact_figures.figures``: the
two agree for a London month, which a test checks on random histories.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from services.reporting.read_model import directory_names, metadata
from services.reporting.report import london_month
from shared.eventstore.readtables import Instant, from_ts

NOT_DISCLOSED = frozenset({"", "not_disclosed", "prefer_not_to_say"})
NONE = ""  # a code not given (a caller who did not say)

counts = sa.Table(
    "rm_cf_month_counts",
    metadata,
    sa.Column("month", sa.String(7), primary_key=True),  # London YYYY-MM
    sa.Column("figure", sa.String(40), primary_key=True),  # e.g. contacts.by_issue
    sa.Column("code", sa.String(200), primary_key=True),  # "" for a plain count
    sa.Column("n", sa.Integer, nullable=False),
)

caller_months = sa.Table(
    "rm_cf_caller_months",
    metadata,
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("caller_ref", sa.String(40), primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),  # answered contacts in the month
    sa.Column("latest_at", Instant, nullable=False),
    sa.Column("latest_contact", sa.String(36), nullable=False),
    sa.Column("gender", sa.String(40), nullable=False),
    sa.Column("age_band", sa.String(40), nullable=False),
)

Key = tuple[str, str, str]  # (month, figure, code)


class Delta(Counter[Key]):
    """The changes one event makes to the counters."""

    def count(self, month: str, figure: str, code: str = NONE, n: int = 1) -> None:
        self[(month, figure, code)] += n

    def move(self, month: str, figure: str, old: str, new: str) -> None:
        if old != new:
            self.count(month, figure, old, -1)
            self.count(month, figure, new, +1)


_UPSERT: dict[str, Any] = {}


def _upsert(dialect: str) -> Any:
    if dialect not in _UPSERT:
        ins = (postgresql.insert(counts) if dialect == "postgresql"
               else sqlite.insert(counts))
        _UPSERT[dialect] = ins.on_conflict_do_update(
            index_elements=[counts.c.month, counts.c.figure, counts.c.code],
            set_={"n": counts.c.n + ins.excluded.n})
    return _UPSERT[dialect]


def add(conn: Connection, delta: Mapping[Key, int]) -> None:
    """Add the changes to the counters, in one statement."""
    rows = [{"month": m, "figure": f, "code": c, "n": n}
            for (m, f, c), n in sorted(delta.items()) if n]
    if rows:
        conn.execute(_upsert(conn.dialect.name), rows)
    # A count moved away to nothing leaves no row: the counters are then the same
    # whatever order the services' streams arrived in (a rebuild's, or live).
    emptied = [{"m": m, "f": f, "c": c} for (m, f, c), n in delta.items() if n < 0]
    if emptied:
        conn.execute(_DELETE_EMPTY, emptied)


_DELETE_EMPTY = sa.delete(counts).where(
    counts.c.month == sa.bindparam("m"), counts.c.figure == sa.bindparam("f"),
    counts.c.code == sa.bindparam("c"), counts.c.n == 0)


def month_of(started_at: datetime | None) -> str:
    """The London month of a time as written or read back from a read table."""
    at = from_ts(started_at)
    assert at is not None, "a contact always has a start"
    return london_month(at)


def count_contact(delta: Delta, month: str, d: Mapping[str, Any], issues: list[str],
                  entries: list[str], *, risk: str | None, slot: str | None) -> None:
    """An answered contact's counts in its month: ``risk`` its latest level (None: not
    assessed), ``slot`` its shift's slot code (None: no shift)."""
    delta.count(month, "contacts.total")
    delta.count(month, "contacts.by_channel", d["channel"])
    delta.count(month, "contacts.by_direction", d.get("direction") or "inbound")
    delta.count(month, "contacts.by_caller_is", d.get("caller_is") or "not_recorded")
    for issue in issues:
        delta.count(month, "contacts.by_issue", issue)
    for entry in entries:
        delta.count(month, "contacts.signposting", entry)
    delta.count(month, "contacts.by_risk_level", risk or "not_assessed")
    if slot is None:
        delta.count(month, "contacts.outside_shifts")
    else:
        delta.count(month, "contacts.by_shift_slot", slot)


# ------------------------------------------------------------------- callers per month

_CALLER_MONTH = sa.select(caller_months).where(
    caller_months.c.month == sa.bindparam("m"), caller_months.c.caller_ref == sa.bindparam("r"))
_INSERT_CALLER_MONTH = sa.insert(caller_months)
_UPDATE_CALLER_MONTH = sa.update(caller_months).where(
    caller_months.c.month == sa.bindparam("m"), caller_months.c.caller_ref == sa.bindparam("r"))


def caller_contact(conn: Connection, delta: Delta, *, month: str, ref: str, contact_id: str,
                   started_at: datetime, gender: str | None, age_band: str | None) -> None:
    """A new answered contact of a known caller in ``month``: unique, repeat, and the
    gender and age band of the caller's latest contact in the month."""
    g, a = gender or NONE, age_band or NONE
    row = conn.execute(_CALLER_MONTH, {"m": month, "r": ref}).first()
    if row is None:
        conn.execute(_INSERT_CALLER_MONTH, {
            "month": month, "caller_ref": ref, "n": 1, "latest_at": started_at,
            "latest_contact": contact_id, "gender": g, "age_band": a})
        delta.count(month, "callers.unique")
        delta.count(month, "callers.by_gender", g)
        delta.count(month, "callers.by_age_band", a)
        return
    values: dict[str, Any] = {"n": row.n + 1}
    if row.n == 1:
        delta.count(month, "callers.repeat")
    latest = from_ts(row.latest_at)
    if latest is None or (started_at, contact_id) > (latest, row.latest_contact):
        values.update(latest_at=started_at, latest_contact=contact_id, gender=g, age_band=a)
        delta.move(month, "callers.by_gender", row.gender, g)
        delta.move(month, "callers.by_age_band", row.age_band, a)
    conn.execute(_UPDATE_CALLER_MONTH.values(**values), {"m": month, "r": ref})


# ------------------------------------------------------------------------------- read

def _by(rows: dict[str, dict[str, int]], figure: str) -> dict[str, int]:
    return {code: n for code, n in sorted(rows.get(figure, {}).items()) if n}


def month_figures(conn: Connection, month: str) -> dict[str, Any]:
    """The contacts and callers of a London month (``YYYY-MM``) from its counters, as
    ``contact_figures.figures`` counts them for that month's instants."""
    rows: dict[str, dict[str, int]] = {}
    for figure, code, n in conn.execute(
            sa.select(counts.c.figure, counts.c.code, counts.c.n)
            .where(counts.c.month == month)).all():
        rows.setdefault(figure, {})[code] = int(n)

    def one(figure: str) -> int:
        return rows.get(figure, {}).get(NONE, 0)

    total = one("contacts.total")
    risk = _by(rows, "contacts.by_risk_level")
    caller_is = _by(rows, "contacts.by_caller_is")
    named: Counter[str] = Counter()
    signposts = _by(rows, "contacts.signposting")
    if signposts:
        names = dict(conn.execute(
            sa.select(directory_names.c.entry_id, directory_names.c.name)
            .where(directory_names.c.entry_id.in_(list(signposts)))).all())
        for entry_id, n in signposts.items():
            named[names.get(entry_id) or entry_id] += n
    gender = _by(rows, "callers.by_gender")
    age = _by(rows, "callers.by_age_band")
    return {
        "contacts": {
            "total": total,
            "by_channel": _by(rows, "contacts.by_channel"),
            "by_direction": _by(rows, "contacts.by_direction"),
            "by_caller_is": {"not_recorded": 0, **caller_is},
            "by_issue": _by(rows, "contacts.by_issue"),
            "by_risk_level": {**risk, "not_assessed": risk.get("not_assessed", 0)},
            "by_shift_slot": _by(rows, "contacts.by_shift_slot"),
            "outside_shifts": one("contacts.outside_shifts"),
            "missed_calls": one("contacts.missed_calls"),
            "signposting": dict(sorted(named.items())),
        },
        "callers": {
            "unique": one("callers.unique"), "new": one("callers.new"),
            "repeat": one("callers.repeat"),
            "by_gender": {c: n for c, n in gender.items() if c not in NOT_DISCLOSED},
            "gender_not_disclosed": sum(n for c, n in gender.items() if c in NOT_DISCLOSED),
            "by_age_band": {c: n for c, n in age.items() if c not in NOT_DISCLOSED},
            "age_band_not_disclosed": sum(n for c, n in age.items() if c in NOT_DISCLOSED),
        },
    }
