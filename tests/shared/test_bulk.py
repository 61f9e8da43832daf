"""``shared.eventstore.bulk``: rows written and read by the driver come out as
SQLAlchemy's own statements give them, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import sqlalchemy as sa

from shared.config import Settings
from shared.eventstore import bulk
from shared.eventstore.bulk import Keyed, Many
from shared.eventstore.store import create_engine

metadata = sa.MetaData()
things = sa.Table(
    "bulk_things", metadata,
    sa.Column("thing_id", sa.String(36), primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("flag", sa.Boolean, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("label", sa.String(40), nullable=True),
)
INSERT = Many(things, ("thing_id", "n", "flag", "at", "label"))
UPDATE = Many(things, ("n", "label", "thing_id"), keys=1)
BY_ID = Keyed(things, ("thing_id", "n", "flag", "at", "label"), "thing_id")


def _times(rnd: random.Random) -> list[datetime | None]:
    base = datetime(2025, 3, 30, 0, 59, 59, 999_999, tzinfo=UTC)
    out: list[datetime | None] = [None, base, base.replace(microsecond=0),
                                  datetime(1999, 12, 31, 23, 59, tzinfo=UTC)]
    out += [base + timedelta(seconds=rnd.randrange(10**8), microseconds=rnd.randrange(10**6))
            for _ in range(200)]
    return out


def test_rows_written_and_read_by_the_driver_are_sqlalchemys(settings: Settings) -> None:
    engine = create_engine(settings, "contact")
    metadata.create_all(engine)
    rnd = random.Random(3)
    rows = [(f"t{i:05d}", i, i % 3 == 0, at, None if i % 4 else f"label {i}")
            for i, at in enumerate(_times(rnd))]
    with engine.begin() as conn:
        INSERT.run(conn, rows[::2])
        conn.execute(sa.insert(things), [dict(zip(INSERT.columns, r, strict=True))
                                         for r in rows[1::2]])
        UPDATE.run(conn, [(r[1] + 1000, "updated", r[0]) for r in rows[:10]])
    with engine.connect() as conn:
        expected = {r.thing_id: tuple(r) for r in conn.execute(sa.select(things))}
        got = BY_ID.rows(conn, [r[0] for r in rows] + ["missing"])
    assert len(got) == len(rows)
    assert {r[0]: r for r in got} == expected
    # what was written by the driver reads back as what was given
    for thing_id, n, flag, at, label in rows[10::2]:
        assert expected[thing_id][1:3] == (n, flag)
        assert expected[thing_id][4] == label
        read = expected[thing_id][3]
        assert (read.replace(tzinfo=UTC) if read is not None and read.tzinfo is None
                else read) == at
    assert expected["t00000"][1] == 1000 and expected["t00000"][4] == "updated"
    metadata.drop_all(engine)
    engine.dispose()


def test_a_time_is_bound_as_sqlalchemy_binds_it_on_sqlite() -> None:
    """The shortcut for SQLite's text of a time gives SQLAlchemy's text, whatever the
    zone (its fields are written as they are) and for a date."""
    engine = sa.create_engine("sqlite://")
    column = sa.DateTime(timezone=True)
    fast = bulk._bind(column, engine.dialect)
    slow = column.dialect_impl(engine.dialect).bind_processor(engine.dialect)
    rnd = random.Random(8)
    plus_five = timezone(timedelta(hours=5, minutes=30))
    values: list[object] = [None, datetime(2026, 1, 1).date(), datetime(5, 1, 2, 3, 4, 5)]
    for at in _times(rnd):
        values += [at, at.astimezone(plus_five) if at else None,
                   at.replace(tzinfo=None) if at else None]
    assert fast is not slow
    for value in values:
        assert fast(value) == slow(value), value


def test_id_ranges_select_every_id_asked_for_in_one_range_when_dense() -> None:
    engine = sa.create_engine("sqlite://")
    table = sa.Table("bulk_ids", sa.MetaData(), sa.Column("n", sa.Integer, primary_key=True))
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(table), [{"n": n} for n in range(1, 5001)])
        for ids, parts in (([], 0), (list(range(10, 20)), 1), ([3, 5, 9, 12], 1),
                           (list(range(1, 4000, 7)), 2), ([1, 2500, 4999], 1)):
            wheres = bulk.id_ranges(table.c.n, ids, chunk=300)
            assert len(wheres) == parts, ids
            got = {n for where in wheres
                   for n in conn.execute(sa.select(table.c.n).where(where)).scalars()}
            assert set(ids) <= got
            if parts > 1:
                assert got == set(ids)  # IN lists: exactly those
