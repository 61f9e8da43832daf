"""A service's own SQL read tables, kept in step with its notification log.

Event-sourced aggregates cannot be listed or searched; a service that needs lists
(contacts by caller, follow-ups due, the directory by need) projects its own events
into tables. The projector applies each event and advances its position in one
transaction. It runs after every local save, before the command answers (under load
many saves share one transaction), and readers call ``catch_up()`` before they query,
so a client always reads its own writes, even those made by another process. It catches
up at start after a crash, and its tables can be dropped and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from eventsourcing.persistence import Recording
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from shared.application import ServiceApplication

projector_metadata = sa.MetaData()

local_tracking = sa.Table(
    "local_projection_position",
    projector_metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("notification_id", sa.BigInteger, nullable=False),
)

read_model_schema = sa.Table(
    "read_model_schema",
    projector_metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
)

Apply = Callable[[Connection, Any, int], None]


class _Moved(Exception):
    """The recorded position is not where this process left it."""


def fingerprint(metadata: sa.MetaData) -> str:
    """What the code expects the read tables to look like."""
    shape = [
        (t.name, [(c.name, str(c.type), bool(c.nullable), bool(c.primary_key)) for c in t.c])
        for t in metadata.sorted_tables
    ]
    return hashlib.sha256(json.dumps(shape).encode()).hexdigest()


def ensure_read_tables(engine: Engine, name: str, metadata: sa.MetaData) -> bool:
    """Create the read tables. If one is missing, or they were made by another version
    of the code (their shape changed), drop them all and make them afresh. Returns True
    when they were (re)made empty: the caller then replays its events into them."""
    projector_metadata.create_all(engine)
    expected = fingerprint(metadata)
    inspector = sa.inspect(engine)
    complete = all(inspector.has_table(t.name) for t in metadata.sorted_tables)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(read_model_schema.c.fingerprint)
                              .where(read_model_schema.c.name == name)).scalar()
    if complete and stored == expected:
        return False
    metadata.drop_all(engine)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.delete(read_model_schema).where(read_model_schema.c.name == name))
        conn.execute(sa.insert(read_model_schema).values(name=name, fingerprint=expected))
    return True


class LocalProjector:
    def __init__(self, app: ServiceApplication, engine: Engine, name: str,
                 metadata: sa.MetaData, apply: Apply, batch_size: int = 500) -> None:
        self.app = app
        self.engine = engine
        self.name = name
        self.metadata = metadata
        self.apply = apply
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._known = 0  # highest position this process has seen committed
        if ensure_read_tables(engine, name, metadata):
            with engine.begin() as conn:  # replay everything into the fresh tables
                conn.execute(sa.delete(local_tracking).where(local_tracking.c.name == name))

    def position(self, conn: Connection | None = None) -> int:
        stmt = sa.select(local_tracking.c.notification_id).where(local_tracking.c.name == self.name)
        if conn is not None:
            return int(conn.execute(stmt).scalar() or 0)
        with self.engine.connect() as c:
            return int(c.execute(stmt).scalar() or 0)

    def saved(self, recordings: Sequence[Recording[UUID]]) -> None:
        """After a local save, return once its events are projected. Savers queue on the
        lock; the first through projects everything saved so far in one transaction, and
        the others find their events already done (measured: cheaper than a background
        thread, which only adds switching under the GIL)."""
        if not recordings:
            return
        target = max(r.notification.id for r in recordings)
        if self._known >= target:
            return
        with self._lock:
            if self._known >= target:
                return
            ids = [r.notification.id for r in recordings]
            known = self._known
            if known and ids == list(range(known + 1, known + 1 + len(ids))):
                # The very next events: apply them as saved, without reading them back.
                try:
                    with self.engine.begin() as conn:
                        for r in recordings:
                            self.apply(conn, r.domain_event, r.notification.id)
                        moved = conn.execute(
                            sa.update(local_tracking)
                            .where(local_tracking.c.name == self.name,
                                   local_tracking.c.notification_id == known)
                            .values(notification_id=ids[-1])
                        ).rowcount
                        if moved != 1:  # another process moved it: read the log instead
                            raise _Moved
                    self._known = ids[-1]
                    return
                except (_Moved, IntegrityError):
                    pass
        self.catch_up()

    def _set_position(self, conn: Connection, notification_id: int) -> None:
        updated = conn.execute(
            sa.update(local_tracking).where(local_tracking.c.name == self.name)
            .values(notification_id=notification_id)
        ).rowcount
        if not updated:
            conn.execute(sa.insert(local_tracking).values(name=self.name,
                                                          notification_id=notification_id))

    def catch_up(self) -> int:
        """Apply every event after the recorded position. Returns how many."""
        applied = 0
        with self._lock:  # the only writer of this projection in the process
            while True:
                # Read the events before taking the write transaction: on SQLite, holding
                # the write lock while waiting for an event-store connection deadlocks
                # with savers that hold a connection and wait for the write lock.
                position = self.position()
                self._known = max(self._known, position)
                batch = self.app.select_notifications(position, self.batch_size)
                if not batch:
                    return applied
                with self.engine.begin() as conn:
                    for notification in batch:
                        self.apply(conn, self.app.mapper.to_domain_event(notification),
                                   notification.id)
                    self._set_position(conn, batch[-1].id)
                self._known = batch[-1].id
                applied += len(batch)

    def rebuild(self) -> int:
        with self._lock:
            self.metadata.drop_all(self.engine)
            self.metadata.create_all(self.engine)
            with self.engine.begin() as conn:
                conn.execute(sa.delete(local_tracking).where(local_tracking.c.name == self.name))
            self._known = 0
        return self.catch_up()
