"""The shift service's own read tables, projected from its events by the platform's
projector (``shared.eventstore.projection``): who is registered and active, the shifts
with their assignments and check-ins, the bags with their chain of custody, and the
debriefs. The application reads them for lists, for what a command needs to know of
other aggregates (is this supporter on an overlapping shift?) and for its clock work.

Only ids, codes, counts and times: names, contact details, notes and reasons stay in
the events, sealed. Times are native ``DateTime(timezone=True)`` columns holding UTC
(SQLite gives them back naive, read here as UTC); a coverage state is the domain's
(``coverage_of``), stored so that a list can filter on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from services.shift.domain import Bag, Debrief, Shift, Supporter
from services.shift.domain.shift import coverage_of
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

supporters = sa.Table(
    "v_supporters",
    metadata,
    sa.Column("supporter_id", sa.String(36), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("registered_at", Instant, nullable=False),
)

shifts = sa.Table(
    "v_shifts",
    metadata,
    sa.Column("shift_id", sa.String(36), primary_key=True),
    sa.Column("slot", sa.String(100)),
    sa.Column("starts_at", Instant, nullable=False, index=True),
    sa.Column("ends_at", Instant, nullable=False, index=True),
    sa.Column("required", sa.Integer, nullable=False),
    sa.Column("assigned", sa.Integer, nullable=False),
    sa.Column("coverage", sa.String(10), nullable=False),
    sa.Column("uncovered", sa.Boolean, nullable=False),
    sa.Column("bag_not_handed_over", sa.Boolean, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)

assignments = sa.Table(
    "v_assignments",
    metadata,
    sa.Column("shift_id", sa.String(36), primary_key=True),
    sa.Column("supporter_id", sa.String(PERSON), primary_key=True, index=True),
    sa.Column("checked_in_at", Instant),
)

bags = sa.Table(
    "v_bags",
    metadata,
    sa.Column("bag_id", sa.String(36), primary_key=True),
    sa.Column("label", sa.String(100), nullable=False),
    sa.Column("registered_by", sa.String(PERSON), nullable=False),
    sa.Column("registered_at", Instant, nullable=False),
    sa.Column("holder", sa.String(PERSON), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)

handovers = sa.Table(
    "v_handovers",
    metadata,
    sa.Column("bag_id", sa.String(36), primary_key=True),
    sa.Column("n", sa.Integer, primary_key=True),
    sa.Column("to_supporter_id", sa.String(PERSON), nullable=False),
    sa.Column("at", Instant, nullable=False),
)

debriefs = sa.Table(
    "v_debriefs",
    metadata,
    sa.Column("debrief_id", sa.String(36), primary_key=True),
    sa.Column("supporter_id", sa.String(PERSON), nullable=False, index=True),
    sa.Column("contact_id", sa.String(36), nullable=False),
    sa.Column("requested_at", Instant, nullable=False, index=True),
    sa.Column("completed_on", sa.Date),
    sa.Column("completed_by", sa.String(PERSON)),
    sa.Column("version", sa.Integer, nullable=False),
)


# ---------------------------------------------------------------------------- apply


def _shift_counts(conn: Connection, shift_id: str, version: int) -> None:
    """The shift's assigned count and coverage, after its assignments changed."""
    assigned = conn.execute(sa.select(sa.func.count()).select_from(assignments)
                            .where(assignments.c.shift_id == shift_id)).scalar() or 0
    required = conn.execute(sa.select(shifts.c.required)
                            .where(shifts.c.shift_id == shift_id)).scalar() or 0
    conn.execute(sa.update(shifts).where(shifts.c.shift_id == shift_id).values(
        assigned=assigned, coverage=coverage_of(assigned, required).value, version=version))


def _apply_supporter(conn: Connection, ev: Any, sid: str) -> None:
    if isinstance(ev, Supporter.Registered):
        conn.execute(sa.insert(supporters).values(supporter_id=sid, role=ev.role, active=True,
                                                  registered_at=ts(ev.timestamp)))
    elif isinstance(ev, Supporter.Deactivated):
        conn.execute(sa.update(supporters).where(supporters.c.supporter_id == sid)
                     .values(active=False))


def _apply_shift(conn: Connection, ev: Any, sid: str) -> None:
    version = ev.originator_version
    where = shifts.c.shift_id == sid
    if isinstance(ev, Shift.Published):
        conn.execute(sa.insert(shifts).values(
            shift_id=sid, slot=ev.slot, starts_at=ts(ev.starts_at), ends_at=ts(ev.ends_at),
            required=ev.required, assigned=0, coverage=coverage_of(0, ev.required).value,
            uncovered=False, bag_not_handed_over=False, version=version))
    elif isinstance(ev, Shift.Assigned):
        conn.execute(sa.insert(assignments).values(shift_id=sid, supporter_id=ev.supporter_id,
                                                   checked_in_at=None))
        _shift_counts(conn, sid, version)
    elif isinstance(ev, Shift.Unassigned):
        conn.execute(sa.delete(assignments).where(assignments.c.shift_id == sid,
                                                  assignments.c.supporter_id == ev.supporter_id))
        _shift_counts(conn, sid, version)
    elif isinstance(ev, Shift.Swapped):
        conn.execute(sa.update(assignments).where(
            assignments.c.shift_id == sid,
            assignments.c.supporter_id == ev.from_supporter_id,
        ).values(supporter_id=ev.to_supporter_id, checked_in_at=None))
        conn.execute(sa.update(shifts).where(where).values(version=version))
    elif isinstance(ev, Shift.CheckedIn):
        conn.execute(sa.update(assignments).where(
            assignments.c.shift_id == sid, assignments.c.supporter_id == ev.supporter_id,
        ).values(checked_in_at=ts(ev.at)))
        conn.execute(sa.update(shifts).where(where).values(version=version))
    elif isinstance(ev, Shift.Uncovered):
        conn.execute(sa.update(shifts).where(where).values(uncovered=True, version=version))
    elif isinstance(ev, Shift.BagNotHandedOver):
        conn.execute(sa.update(shifts).where(where).values(bag_not_handed_over=True,
                                                           version=version))


def _apply_bag(conn: Connection, ev: Any, bid: str) -> None:
    version = ev.originator_version
    if isinstance(ev, Bag.Registered):
        by = str(ev.meta.get("actor", ""))
        conn.execute(sa.insert(bags).values(bag_id=bid, label=ev.label, registered_by=by,
                                            registered_at=ts(ev.timestamp), holder=by,
                                            version=version))
    elif isinstance(ev, Bag.HandedOver):
        n = (conn.execute(sa.select(sa.func.count()).select_from(handovers)
                          .where(handovers.c.bag_id == bid)).scalar() or 0) + 1
        conn.execute(sa.insert(handovers).values(bag_id=bid, n=n,
                                                 to_supporter_id=ev.to_supporter_id,
                                                 at=ts(ev.at)))
        conn.execute(sa.update(bags).where(bags.c.bag_id == bid)
                     .values(holder=ev.to_supporter_id, version=version))
    elif isinstance(ev, Bag.ItemMissing):
        conn.execute(sa.update(bags).where(bags.c.bag_id == bid).values(version=version))


def _apply_debrief(conn: Connection, ev: Any, did: str) -> None:
    if isinstance(ev, Debrief.Opened):
        conn.execute(sa.insert(debriefs).values(
            debrief_id=did, supporter_id=ev.supporter_id, contact_id=str(ev.contact_id),
            requested_at=ts(ev.requested_at), completed_on=None, completed_by=None,
            version=ev.originator_version))
    elif isinstance(ev, Debrief.Completed):
        conn.execute(sa.update(debriefs).where(debriefs.c.debrief_id == did).values(
            completed_on=date.fromisoformat(ev.on), completed_by=ev.by,
            version=ev.originator_version))


def apply(conn: Connection, ev: Any) -> None:
    oid = str(ev.originator_id)
    if isinstance(ev, Supporter.Event):
        _apply_supporter(conn, ev, oid)
    elif isinstance(ev, Shift.Event):
        _apply_shift(conn, ev, oid)
    elif isinstance(ev, Bag.Event):
        _apply_bag(conn, ev, oid)
    elif isinstance(ev, Debrief.Event):
        _apply_debrief(conn, ev, oid)


# -------------------------------------------------------------------------- queries


def supporter_ids(engine: Engine, active: bool | None, limit: int, cursor: str | None
                  ) -> tuple[list[str], str | None]:
    """Oldest registration first, keyset-paged on (registered_at, supporter_id)."""
    q = sa.select(supporters.c.supporter_id, supporters.c.registered_at)
    if active is not None:
        q = q.where(supporters.c.active.is_(active))
    if cursor:
        at, sid = decode_cursor(cursor, "supporters", (instant_part, id_part))
        q = q.where(sa.tuple_(supporters.c.registered_at, supporters.c.supporter_id)
                    > sa.tuple_(_at(at), sa.literal(sid)))
    q = q.order_by(supporters.c.registered_at, supporters.c.supporter_id).limit(limit + 1)
    with engine.connect() as conn:
        rows, next_cursor = page(list(conn.execute(q)), limit, "supporters",
                                  lambda r: (r.registered_at, r.supporter_id))
    return [r.supporter_id for r in rows], next_cursor


def active_supporter_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r for (r,) in conn.execute(sa.select(supporters.c.supporter_id)
                                           .where(supporters.c.active.is_(True)))]


def shift_row(row: Any, people: Sequence[Any]) -> dict[str, Any]:
    """A shift as the API shows it, from its row and its assignment rows."""
    return {
        "id": row.shift_id, "slot": row.slot, "starts_at": from_ts(row.starts_at),
        "ends_at": from_ts(row.ends_at), "required": row.required,
        "assignments": [p.supporter_id for p in people],
        "checked_in": [p.supporter_id for p in people if p.checked_in_at is not None],
        "coverage": row.coverage, "version": row.version,
    }


def _with_people(conn: Connection, rows: list[Any]) -> list[dict[str, Any]]:
    ids = [r.shift_id for r in rows]
    people: dict[str, list[Any]] = {i: [] for i in ids}
    if ids:
        for p in conn.execute(sa.select(assignments).where(assignments.c.shift_id.in_(ids))
                              .order_by(assignments.c.supporter_id)):
            people[p.shift_id].append(p)
    return [shift_row(r, people[r.shift_id]) for r in rows]


def shifts_between(engine: Engine, start: datetime, end: datetime, *, gaps_only: bool,
                   limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Shifts overlapping [start, end), earliest first, keyset-paged on (starts_at, id);
    ``gaps_only``: those not covered."""
    kind = "coverage" if gaps_only else "shifts"
    q = sa.select(shifts).where(shifts.c.starts_at < _at(end), shifts.c.ends_at > _at(start))
    if gaps_only:
        q = q.where(shifts.c.coverage != "covered")
    if cursor:
        at, sid = decode_cursor(cursor, kind, (instant_part, id_part))
        q = q.where(sa.tuple_(shifts.c.starts_at, shifts.c.shift_id)
                    > sa.tuple_(_at(at), sa.literal(sid)))
    q = q.order_by(shifts.c.starts_at, shifts.c.shift_id).limit(limit + 1)
    with engine.connect() as conn:
        rows, next_cursor = page(list(conn.execute(q)), limit, kind,
                                  lambda r: (r.starts_at, r.shift_id))
        return _with_people(conn, rows), next_cursor


def shifts_at(engine: Engine, at: datetime) -> list[dict[str, Any]]:
    """The shifts on at a moment (started, not ended), earliest first."""
    q = (sa.select(shifts).where(shifts.c.starts_at <= _at(at), shifts.c.ends_at > _at(at))
         .order_by(shifts.c.starts_at, shifts.c.shift_id))
    with engine.connect() as conn:
        return _with_people(conn, list(conn.execute(q)))


def shifts_of_supporter(engine: Engine, supporter_id: str, start: datetime,
                        end: datetime) -> list[tuple[str, datetime, datetime]]:
    """(id, starts_at, ends_at) of the shifts a supporter is assigned to that start
    before ``end`` and end after ``start``."""
    q = (sa.select(shifts.c.shift_id, shifts.c.starts_at, shifts.c.ends_at)
         .join(assignments, assignments.c.shift_id == shifts.c.shift_id)
         .where(assignments.c.supporter_id == supporter_id,
                shifts.c.starts_at < _at(end), shifts.c.ends_at > _at(start)))
    with engine.connect() as conn:
        return [(r.shift_id, from_ts(r.starts_at), from_ts(r.ends_at))  # type: ignore[misc]
                for r in conn.execute(q)]


def future_shifts_of(engine: Engine, supporter_id: str, after: datetime) -> list[str]:
    """The shifts a supporter is assigned to that start after a moment."""
    q = (sa.select(shifts.c.shift_id)
         .join(assignments, assignments.c.shift_id == shifts.c.shift_id)
         .where(assignments.c.supporter_id == supporter_id, shifts.c.starts_at > _at(after))
         .order_by(shifts.c.starts_at))
    with engine.connect() as conn:
        return [r for (r,) in conn.execute(q)]


def started_shifts(engine: Engine, started_before: datetime, ended_after: datetime
                   ) -> list[str]:
    """Shifts that started before one moment and end after another, with something
    still to record by the clock (uncovered, or the bag not handed over)."""
    q = (sa.select(shifts.c.shift_id)
         .where(shifts.c.starts_at < _at(started_before), shifts.c.ends_at > _at(ended_after),
                sa.or_(shifts.c.uncovered.is_(False), shifts.c.bag_not_handed_over.is_(False)))
         .order_by(shifts.c.starts_at))
    with engine.connect() as conn:
        return [r for (r,) in conn.execute(q)]


def holders_at(engine: Engine, at: datetime) -> set[str]:
    """Who held each bag at a moment: the receiver of its last handover at or before it,
    else whoever registered it (if it was registered by then)."""
    with engine.connect() as conn:
        held = {r.bag_id: r.registered_by for r in conn.execute(
            sa.select(bags.c.bag_id, bags.c.registered_by)
            .where(bags.c.registered_at <= _at(at)))}
        for r in conn.execute(sa.select(handovers).where(handovers.c.at <= _at(at))
                              .order_by(handovers.c.bag_id, handovers.c.at, handovers.c.n)):
            held[r.bag_id] = r.to_supporter_id
    return set(held.values())


def bag_rows(engine: Engine, limit: int, cursor: str | None
             ) -> tuple[list[dict[str, Any]], str | None]:
    """Every bag, oldest first, keyset-paged on (registered_at, bag_id)."""
    q = sa.select(bags)
    if cursor:
        at, bid = decode_cursor(cursor, "bags", (instant_part, id_part))
        q = q.where(sa.tuple_(bags.c.registered_at, bags.c.bag_id)
                    > sa.tuple_(_at(at), sa.literal(bid)))
    q = q.order_by(bags.c.registered_at, bags.c.bag_id).limit(limit + 1)
    with engine.connect() as conn:
        rows, next_cursor = page(list(conn.execute(q)), limit, "bags",
                                  lambda r: (r.registered_at, r.bag_id))
    return [{"id": r.bag_id, "label": r.label, "holder": r.holder, "version": r.version}
            for r in rows], next_cursor


def debrief_rows(engine: Engine, *, status: str | None, supporter_id: str | None,
                 limit: int, cursor: str | None) -> tuple[list[Any], str | None]:
    """Oldest request first, keyset-paged on (requested_at, debrief_id)."""
    q = sa.select(debriefs)
    if status == "open":
        q = q.where(debriefs.c.completed_on.is_(None))
    elif status == "complete":
        q = q.where(debriefs.c.completed_on.is_not(None))
    if supporter_id is not None:
        q = q.where(debriefs.c.supporter_id == supporter_id)
    if cursor:
        at, did = decode_cursor(cursor, "debriefs", (instant_part, id_part))
        q = q.where(sa.tuple_(debriefs.c.requested_at, debriefs.c.debrief_id)
                    > sa.tuple_(_at(at), sa.literal(did)))
    q = q.order_by(debriefs.c.requested_at, debriefs.c.debrief_id).limit(limit + 1)
    with engine.connect() as conn:
        return page(list(conn.execute(q)), limit, "debriefs",
                     lambda r: (r.requested_at, r.debrief_id))
