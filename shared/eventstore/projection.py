"""Read models: SQL tables kept in step with event logs, one mechanism for all.

A service declares its read models (``ReadModel``: a name, its tables and how to apply
an event). A ``Projection`` keeps one of them:

- It applies events and records (projection, upstream service, notification id) in
  ``projection_tracking`` in the same transaction, under a unique key: a redelivered
  or duplicated event changes nothing (exactly-once effect).
- Its tables are made at start; when one is missing, or they were made by another
  version of the code (their shape changed), they are dropped, made afresh and
  replayed. ``drop()`` is the one drop-and-rebuild path.

What feeds it: a read model of the service's own events follows its notification
log (``LocalProjector``: after every local save, and before every read, so a client
reads its own writes); a read model of other services' events is fed by consumers of
their streams (``shared.messaging.consumer``), which backfill from their logs.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from eventsourcing.persistence import Recording
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from shared.eventstore.application import ServiceApplication
from shared.messaging.envelope import IntegrationEvent

projection_metadata = sa.MetaData()

projection_tracking = sa.Table(
    "projection_tracking",
    projection_metadata,
    sa.Column("projection", sa.String(100), primary_key=True),
    sa.Column("upstream", sa.String(50), primary_key=True),
    sa.Column("notification_id", sa.BigInteger, primary_key=True),
)

read_model_schema = sa.Table(
    "read_model_schema",
    projection_metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
)

# Part of every fingerprint: read tables made by an older tracking mechanism are
# remade and replayed at start.
MECHANISM = "projection_tracking/1"

Apply = Callable[[Connection, Any], None]


@dataclass(frozen=True)
class ReadModel:
    """A service's read model. ``apply`` gets a connection inside the projection's
    transaction and one event: a domain event of the service's own log when
    ``subscriptions`` is empty, else an ``IntegrationEvent`` from those services."""

    name: str
    metadata: sa.MetaData
    apply: Apply
    subscriptions: tuple[str, ...] = ()

    @property
    def is_local(self) -> bool:
        return not self.subscriptions


def fingerprint(metadata: sa.MetaData) -> str:
    """What the code expects the read tables to look like."""
    shape = [
        (t.name, [(c.name, str(c.type), bool(c.nullable), bool(c.primary_key)) for c in t.c])
        for t in metadata.sorted_tables
    ]
    return hashlib.sha256(json.dumps([MECHANISM, shape]).encode()).hexdigest()


def ensure_read_tables(engine: Engine, name: str, metadata: sa.MetaData) -> bool:
    """Create the read tables. If one is missing, or they were made by another version
    of the code, drop them all (and their tracking) and make them afresh. Returns True
    when they were (re)made empty: the caller then replays its events into them."""
    projection_metadata.create_all(engine)
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
        conn.execute(sa.delete(projection_tracking)
                     .where(projection_tracking.c.projection == name))
        conn.execute(sa.delete(read_model_schema).where(read_model_schema.c.name == name))
        conn.execute(sa.insert(read_model_schema).values(name=name, fingerprint=expected))
    return True


class Projection:
    """One read model's tables and tracking in one database."""

    def __init__(self, engine: Engine, model: ReadModel) -> None:
        self.engine = engine
        self.model = model
        self.name = model.name
        self.rebuilt_at_start = ensure_read_tables(engine, model.name, model.metadata)

    def last_applied(self, upstream: str) -> int:
        """The highest notification id of ``upstream`` applied so far (0 if none)."""
        with self.engine.connect() as conn:
            return self._last(conn, upstream)

    def _last(self, conn: Connection, upstream: str) -> int:
        value = conn.execute(
            sa.select(sa.func.max(projection_tracking.c.notification_id)).where(
                projection_tracking.c.projection == self.name,
                projection_tracking.c.upstream == upstream,
            )
        ).scalar()
        return int(value or 0)

    def apply_in(self, conn: Connection, upstream: str, items: Sequence[tuple[int, Any]]) -> None:
        """Apply (notification id, event) pairs inside the caller's transaction, with their
        tracking rows (one statement; IntegrityError if any was applied before)."""
        if not items:
            return
        conn.execute(sa.insert(projection_tracking), [
            {"projection": self.name, "upstream": upstream, "notification_id": n}
            for n, _ in items])
        for _, event in items:
            self.model.apply(conn, event)

    def apply_batch(self, upstream: str, items: Sequence[tuple[int, Any]]) -> list[int]:
        """Apply (notification id, event) pairs in one transaction; if any was applied
        before, roll back and apply them one by one, so each is applied exactly once.
        Returns the ids applied now."""
        try:
            with self.engine.begin() as conn:
                self.apply_in(conn, upstream, items)
        except IntegrityError:
            return [n for n, e in items if self._apply_one(upstream, n, e)]
        return [n for n, _ in items]

    def _apply_one(self, upstream: str, notification_id: int, event: Any) -> bool:
        try:
            with self.engine.begin() as conn:
                self.apply_in(conn, upstream, [(notification_id, event)])
        except IntegrityError:
            # The tracking row exists: this event was applied before. Nothing changed.
            with self.engine.connect() as conn:
                seen = conn.execute(
                    sa.select(projection_tracking.c.notification_id).where(
                        projection_tracking.c.projection == self.name,
                        projection_tracking.c.upstream == upstream,
                        projection_tracking.c.notification_id == notification_id,
                    )
                ).first()
            if seen is None:
                raise
            return False
        return True

    # -- as a consumer's projection (integration events from the bus) -------------------
    def apply(self, event: IntegrationEvent) -> bool:
        """Apply the event and record its tracking in one transaction. False (and nothing
        changed) if it was applied before."""
        return self._apply_one(event.service, event.notification_id, event)

    def apply_many(self, events: list[IntegrationEvent]) -> list[IntegrationEvent]:
        """Apply several, each with its tracking; return those applied (not seen before).
        Events of one upstream at a time (a consumer's batch)."""
        if not events:
            return []
        applied = set(self.apply_batch(events[0].service,
                                       [(e.notification_id, e) for e in events]))
        return [e for e in events if e.notification_id in applied]

    # -- drop and rebuild ----------------------------------------------------------------
    def drop(self) -> None:
        """Empty the read model: its tables made afresh and its tracking forgotten, so
        whatever feeds it replays every event."""
        self.model.metadata.drop_all(self.engine)
        self.model.metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            conn.execute(sa.delete(projection_tracking)
                         .where(projection_tracking.c.projection == self.name))

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, and the tracking, in a stable order (for checks)."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        with self.engine.connect() as conn:
            for table in self.model.metadata.sorted_tables:
                cols = list(table.c)
                out[table.name] = [tuple(r) for r in conn.execute(sa.select(table).order_by(*cols))]
            out["projection_tracking"] = [
                tuple(r) for r in conn.execute(
                    sa.select(projection_tracking.c.upstream, projection_tracking.c.notification_id)
                    .where(projection_tracking.c.projection == self.name)
                    .order_by(projection_tracking.c.upstream,
                              projection_tracking.c.notification_id))
            ]
        return out


class LocalProjector:
    """Keeps a read model of the service's own events in step with its log.

    It runs after every local save, before the command answers (under load many saves
    share one transaction), and readers call ``catch_up()`` before they query, so a
    client always reads its own writes, even those made by another process. It catches
    up at start after a crash.
    """

    def __init__(self, app: ServiceApplication, projection: Projection,
                 batch_size: int = 500) -> None:
        self.app = app
        self.projection = projection
        self.upstream = app.service
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._known = 0  # highest position this process has seen applied

    @property
    def name(self) -> str:
        return self.projection.name

    def position(self) -> int:
        return self.projection.last_applied(self.upstream)

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
                # If another process applied them first, a tracking row refuses it.
                try:
                    with self.projection.engine.begin() as conn:
                        self.projection.apply_in(
                            conn, self.upstream,
                            [(r.notification.id, r.domain_event) for r in recordings])
                    self._known = ids[-1]
                    return
                except IntegrityError:
                    pass
        self.catch_up()

    def catch_up(self) -> int:
        """Apply every event after the last one applied. Returns how many."""
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
                with self.projection.engine.begin() as conn:
                    self.projection.apply_in(
                        conn, self.upstream,
                        [(n.id, self.app.mapper.to_domain_event(n)) for n in batch])
                self._known = batch[-1].id
                applied += len(batch)

    def rebuild(self) -> int:
        with self._lock:
            self.projection.drop()
            self._known = 0
        return self.catch_up()
