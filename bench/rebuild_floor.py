"""What this machine can do at best for a rebuild, measured in the same run as the
rebuild itself (``bench.reporting``), with no application code in the way (SQLite only):

- ``read_floor``: select the stored events of the source log with ``sqlite3`` and decode
  each event's JSON with ``orjson``: nothing turned into domain objects or integration
  events, nothing applied. No rebuild reads the log faster than this.
- ``write_floor``: the rows the rebuild wrote (every table of reporting's database:
  read tables with their indexes, tracking, chain hashes, counters), copied into a fresh
  database with the same schema and settings and inserted again with ``sqlite3``'s
  ``executemany``, in as many transactions as the rebuild had pages. No rebuild of this
  read model writes its tables faster than this, whatever computes the rows.

A rebuild in one process does both under one lock (the GIL), so its ceiling is about
1 / (1/read + 1/write); read and written in two processes, it would be the slower of
the two.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

import orjson

PAGE = 5_000


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL"):  # as the services set them
        conn.execute(f"PRAGMA {pragma}")
    return conn


def read_floor(source: Path) -> float:
    """Events per second: the source log selected in pages and each state decoded."""
    conn = _connect(source)
    started, after, n = time.perf_counter(), 0, 0
    try:
        while True:
            rows = conn.execute(
                "SELECT rowid, originator_id, originator_version, topic, state "
                "FROM stored_events WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (after, PAGE)).fetchall()
            for row in rows:
                orjson.loads(row[4])
            n += len(rows)
            if len(rows) < PAGE:
                return n / (time.perf_counter() - started)
            after = rows[-1][0]
    finally:
        conn.close()


def write_floor(rebuilt: Path, events: int) -> float:
    """Events per second: reporting's rows (as the rebuild left them) inserted again
    into an empty copy of its schema, one transaction per page of ``PAGE`` events."""
    src = sqlite3.connect(f"file:{rebuilt}?mode=ro", uri=True)
    try:
        ddl = src.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                          "AND name NOT LIKE 'sqlite_%' ORDER BY type = 'index'").fetchall()
        tables = [name for kind, name, _ in ddl if kind == "table"]
        data = {t: src.execute(f'SELECT * FROM "{t}"').fetchall()
                for t in tables}
    finally:
        src.close()
    pages = max(1, -(-events // PAGE))
    with tempfile.TemporaryDirectory(prefix="solidarity-floor-") as tmp:
        dst = _connect(Path(tmp) / "floor.sqlite")
        try:
            for _, _, sql in ddl:
                dst.execute(sql)
            inserts = {t: 'INSERT INTO "{}" VALUES ({})'.format(
                t, ", ".join("?" * len(data[t][0]))) for t in tables if data[t]}
            started = time.perf_counter()
            for page in range(pages):
                dst.execute("BEGIN")
                for t, sql in inserts.items():
                    rows = data[t]
                    share = -(-len(rows) // pages)
                    dst.executemany(sql, rows[page * share:(page + 1) * share])
                dst.execute("COMMIT")
            return events / (time.perf_counter() - started)
        finally:
            dst.close()
