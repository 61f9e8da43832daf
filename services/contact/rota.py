"""The rota as the contact service knows it: a read model of the shift service's events
(``contact-rota``, fed exactly once by the platform's consumer of the shift stream,
with backfill; ``handlers.py`` applies them), and the reads the application makes of
it for one command, handed to the domain as a ``Rota`` (``domain/rota.py``, where the
rules are).

Tables: the supporters the shift service published (id, role, active, eligible), the
shifts (id, start, end: native UTC times, as in the other read tables) and who is
assigned to which. Ids and times only: nothing personal travels on the bus.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from services.contact.domain import OnShiftWindow, Rota, RotaShift, RotaSupporter, supporter_key
from shared.eventstore.readtables import Instant, from_ts
from shared.eventstore.readtables import at as _at

NAME = "contact-rota"

metadata = sa.MetaData()

supporters = sa.Table(
    "v_rota_supporters",
    metadata,
    sa.Column("supporter_id", sa.String(36), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("eligible", sa.Boolean, nullable=False),
)

shifts = sa.Table(
    "v_rota_shifts",
    metadata,
    sa.Column("shift_id", sa.String(36), primary_key=True),
    sa.Column("starts_at", Instant, nullable=False, index=True),
    sa.Column("ends_at", Instant, nullable=False, index=True),
)

assignments = sa.Table(
    "v_rota_assignments",
    metadata,
    sa.Column("shift_id", sa.String(36), primary_key=True),
    sa.Column("supporter_id", sa.String(36), primary_key=True, index=True),
)


def instant(value: object) -> datetime | None:
    """An aware time in UTC, or None when ``value`` is none (naive, out of range): the
    domain refuses such a time anyway, so no shift is read for it."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return None


# -------------------------------------------------------------------------- reading


def _supporters(conn: Connection, ids: Iterable[str]) -> dict[str, RotaSupporter]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = conn.execute(sa.select(supporters).where(supporters.c.supporter_id.in_(wanted)))
    return {r.supporter_id: RotaSupporter(id=r.supporter_id, role=r.role, active=r.active,
                                          eligible=r.eligible) for r in rows}


def _with_assignments(conn: Connection, rows: Sequence[Any]) -> tuple[RotaShift, ...]:
    ids = [r.shift_id for r in rows]
    assigned: dict[str, list[str]] = {i: [] for i in ids}
    if ids:
        for shift_id, supporter_id in conn.execute(
                sa.select(assignments.c.shift_id, assignments.c.supporter_id)
                .where(assignments.c.shift_id.in_(ids))):
            assigned[shift_id].append(supporter_id)
    out = []
    for r in rows:
        starts, ends = from_ts(r.starts_at), from_ts(r.ends_at)
        assert starts is not None and ends is not None
        out.append(RotaShift(id=UUID(r.shift_id), starts_at=starts, ends_at=ends,
                             supporter_ids=tuple(sorted(assigned[r.shift_id]))))
    return tuple(out)


# Built once: logging a contact asks it every time (the shift on at its start).
_HOLDING = sa.select(shifts).where(shifts.c.starts_at <= sa.bindparam("at", type_=Instant),
                                   shifts.c.ends_at > sa.bindparam("at", type_=Instant))


def _holding(conn: Connection, at: datetime | None) -> tuple[RotaShift, ...]:
    if at is None:
        return ()
    rows = conn.execute(_HOLDING, {"at": at.astimezone(UTC)}).all()
    return _with_assignments(conn, rows)


def for_contact(engine: Engine, supporter_ids: Iterable[object], started_at: object) -> Rota:
    """What logging a contact needs: the supporters it names, the shifts on at its start."""
    keys = [k for k in map(supporter_key, supporter_ids) if k is not None]
    with engine.connect() as conn:
        return Rota(supporters=_supporters(conn, keys),
                    shifts=_holding(conn, instant(started_at)))


def on_call(engine: Engine, at: datetime) -> Rota:
    """What a new text needs: the shifts on at ``at`` and the supporters assigned."""
    with engine.connect() as conn:
        holding = _holding(conn, instant(at))
        named = {sid for shift in holding for sid in shift.supporter_ids}
        return Rota(supporters=_supporters(conn, named), shifts=holding)


def of_supporter(engine: Engine, sub: str, now: datetime, window: OnShiftWindow) -> Rota:
    """What 'on shift' needs: the supporter, and their shifts that may be on at ``now``."""
    key = supporter_key(sub)
    if key is None:  # not an id the shift service gives: on no shift
        return Rota()
    ends_after, starts_by = window.bounds(now)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(shifts).join(assignments, assignments.c.shift_id == shifts.c.shift_id)
            .where(assignments.c.supporter_id == key, shifts.c.ends_at > _at(ends_after),
                   shifts.c.starts_at <= _at(starts_by))).all()
        return Rota(supporters=_supporters(conn, [key]),
                    shifts=_with_assignments(conn, rows))
