"""Erasure that leaves no byte behind: ``shred`` destroys a subject's key (and, in the
same transaction, whatever ``also`` deletes: the phone index's hashes) so that it is in
no byte of the store.

``KeyStore.erase`` alone deletes the row; on SQLite a deleted row's bytes stay in the
page (and in the write-ahead log) until overwritten, so a copy of the file would still
hold the wrapped key. Here the delete runs with ``secure_delete`` on (SQLite zeroes
what it deletes), then the log is checkpointed into the file and truncated. PostgreSQL
keeps a deleted row's bytes until vacuum (see docs/privacy.md); they are keys wrapped by
the master key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection, Engine

from shared.logging import get_logger
from shared.privacy.keys import KeyStore

log = get_logger("privacy.shred")


def _pragma(conn: Connection, sql: str) -> Any:
    """A PRAGMA on the connection's own SQLite connection, outside any transaction."""
    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.execute(sql)
    try:
        return cursor.fetchone()
    finally:
        cursor.close()


def shred(engine: Engine, keys: KeyStore, subject_id: str,
          also: Callable[[Connection], object] | None = None) -> bool:
    """Destroy the subject's key and leave its tombstone (``KeyStore.erase``), with
    ``also`` in the same transaction; True if there was a key."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:  # a setting of this connection, made outside its transaction
            before = _pragma(conn, "PRAGMA secure_delete")
            _pragma(conn, "PRAGMA secure_delete = ON")
        try:
            had_key = keys.erase(subject_id, conn)
            if also is not None:
                also(conn)
            conn.commit()
        finally:
            if sqlite:
                conn.rollback()  # nothing is left to roll back after the commit
                _pragma(conn, f"PRAGMA secure_delete = {int(bool(before and before[0]))}")
    # Once more now the deletion is committed: a key another thread opened (and cached)
    # just before the commit is dropped too, and nothing can cache it again.
    keys.erase(subject_id)
    if sqlite:
        with engine.connect() as conn:
            busy = _pragma(conn, "PRAGMA wal_checkpoint(TRUNCATE)")
        if busy is not None and busy[0]:
            # A reader held the log: the next checkpoint writes the zeroed page over it.
            log.warning("erasure_checkpoint_busy")
    return had_key
