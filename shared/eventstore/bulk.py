"""Rows written by the driver's ``executemany``: the cost of SQLAlchemy's
``conn.execute(insert, [dict, ...])`` without its work per row (compiling the
parameters of each row, a dict per row). A read model's page path (a rebuild's pages,
a consumer's batch) writes its tables, its tracking and its chain hashes this way.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect


@dataclass(frozen=True)
class Many:
    """A statement run by the driver's ``executemany`` over rows of values in the order
    of ``columns``, each value bound as its column binds it: what ``conn.execute`` does
    with a list of rows, without its cost per row. An INSERT; with ``keys``, an UPDATE
    of the other columns of the row whose last ``keys`` columns match."""

    table: sa.Table
    columns: tuple[str, ...]
    keys: int = 0

    def run(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        sql, binds = _prepared(self, conn.dialect)
        if binds:
            rows = [tuple(bind(v) if bind is not None else v for bind, v in zip(
                binds, row, strict=True)) for row in rows]
        conn.exec_driver_sql(sql, rows)


@functools.cache
def _prepared(many: Many, dialect: Dialect) -> tuple[str, list[Any] | None]:
    q, mark = dialect.identifier_preparer.quote, "?" if dialect.paramstyle == "qmark" else "%s"
    name, cols = q(many.table.name), [q(c) for c in many.columns]
    if many.keys:
        sets, keys = cols[:-many.keys], cols[-many.keys:]
        sql = (f"UPDATE {name} SET {', '.join(f'{c} = {mark}' for c in sets)} "  # noqa: S608
               f"WHERE {' AND '.join(f'{c} = {mark}' for c in keys)}")
    else:
        sql = (f"INSERT INTO {name} ({', '.join(cols)}) "  # noqa: S608
               f"VALUES ({', '.join([mark] * len(cols))})")
    binds = [_bind(many.table.c[c].type, dialect) for c in many.columns]
    return sql, binds if any(b is not None for b in binds) else None


_SQLITE_DATETIME = ("%(year)04d-%(month)02d-%(day)02d "
                    "%(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d")


def _bind(type_: Any, dialect: Dialect) -> Any:
    """The column type's bind processor; SQLite's for a time (its text, written field
    by field in Python) as one ``isoformat``, giving the same text."""
    impl = type_.dialect_impl(dialect)
    slow = impl.bind_processor(dialect)
    if dialect.name != "sqlite" or getattr(impl, "_storage_format", None) != _SQLITE_DATETIME:
        return slow

    def fast(value: Any) -> Any:
        if type(value) is datetime:
            return value.isoformat(" ", "microseconds")[:26]
        return slow(value)
    return fast


@dataclass(frozen=True)
class Keyed:
    """``SELECT columns FROM table WHERE key IN (...)`` run by the driver, in IN lists
    of at most ``CHUNK`` keys, each value read back as its column reads it: the rows a
    page's unit of work needs, without SQLAlchemy's work per key (an expanding
    parameter is compiled afresh for each list)."""

    table: sa.Table
    columns: tuple[str, ...]
    key: str
    CHUNK = 2_000  # keys per IN list: under both databases' limits on parameters

    def rows(self, conn: Connection, keys: Any) -> list[tuple[Any, ...]]:
        ordered = sorted(set(keys))
        if not ordered:
            return []
        select, procs = _select(self, conn.dialect)
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        out: list[tuple[Any, ...]] = []
        for i in range(0, len(ordered), self.CHUNK):
            part = ordered[i:i + self.CHUNK]
            got = conn.exec_driver_sql(f"{select} ({', '.join([mark] * len(part))})",
                                       tuple(part)).fetchall()
            out += [tuple(r) for r in got] if procs is None else [
                tuple(p(v) if p is not None else v for p, v in zip(procs, row, strict=True))
                for row in got]
        return out


@functools.cache
def _select(keyed: Keyed, dialect: Dialect) -> tuple[str, list[Any] | None]:
    q = dialect.identifier_preparer.quote
    sql = (f"SELECT {', '.join(q(c) for c in keyed.columns)} "  # noqa: S608
           f"FROM {q(keyed.table.name)} WHERE {q(keyed.key)} IN")
    procs = [keyed.table.c[c].type.dialect_impl(dialect).result_processor(dialect, None)
             for c in keyed.columns]
    return sql, procs if any(p is not None for p in procs) else None


def id_ranges(column: Any, ids: list[int], *, chunk: int = 500) -> list[Any]:
    """Conditions on ``column`` that together select every one of ``ids`` (sorted,
    distinct): one range when they are no more than half sparse, as a page of a log is
    (the caller keeps only the ids it asked for), else IN lists of ``chunk``."""
    if not ids:
        return []
    if ids[-1] - ids[0] < 2 * len(ids):
        return [column.between(ids[0], ids[-1])]
    return [column.in_(ids[i:i + chunk]) for i in range(0, len(ids), chunk)]
