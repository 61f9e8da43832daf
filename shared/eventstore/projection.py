"""Read models: SQL tables kept in step with event logs, one mechanism for all.

A service declares its read models (``ReadModel``: a name, its tables and how to apply
an event). A ``Projection`` keeps one of them:

- It applies events and records (projection, upstream service, notification id) in
  ``projection_tracking`` in the same transaction, under a unique key: a redelivered
  or duplicated event changes nothing (exactly-once effect).
- An event it cannot apply (a value its columns cannot hold, a field its ``apply``
  cannot read) is set aside: tracked, so it is not retried forever, and recorded in
  ``projection_failures`` (its type and a message without values) for health to show;
  the events after it are applied. A failure of the database itself (connection lost,
  locked) is not the event's fault: it is raised, and the event applied later.
- Its tables are made at start; when one is missing, or they were made by another
  version of the code (their shape changed), they are dropped, made afresh and
  replayed. A table dropped while running is found the same way at the next apply or
  catch-up (``ReadModelReset``: whoever feeds it replays). ``drop()`` is the one
  drop-and-rebuild path.

What feeds it: a read model of the service's own events follows its notification
log (``LocalProjector``: after every local save, and before every read, so a client
reads its own writes); a read model of other services' events is fed by consumers of
their streams (``shared.messaging.consumer``), which backfill from their logs.

The tables every read model shares, and how its own are made at start, are in
``shared.eventstore.tracking`` (re-exported here).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from shared.eventstore.application import LocalProjector as LocalProjector  # re-exported
from shared.eventstore.application import ReadModelReset
from shared.eventstore.bulk import Many
from shared.eventstore.store import describe, is_data_error, lock_ddl
from shared.eventstore.tracking import MECHANISM as MECHANISM
from shared.eventstore.tracking import ensure_read_tables as ensure_read_tables
from shared.eventstore.tracking import fingerprint as fingerprint
from shared.eventstore.tracking import projection_failures as projection_failures
from shared.eventstore.tracking import projection_metadata as projection_metadata
from shared.eventstore.tracking import projection_tracking as projection_tracking
from shared.eventstore.tracking import read_model_schema as read_model_schema
from shared.logging import get_logger
from shared.messaging.envelope import IntegrationEvent

log = get_logger("projection")
TRACK = Many(projection_tracking, ("projection", "upstream", "notification_id"))

Apply = Callable[[Connection, Any], None]
ApplyPage = Callable[[Connection, Sequence[Any]], None]


@dataclass(frozen=True)
class ReadModel:
    """A service's read model. ``apply`` gets a connection inside the projection's
    transaction and one event: a domain event of the service's own log when
    ``subscriptions`` is empty, else an ``IntegrationEvent`` from those services.

    ``apply_page``, if given, applies several events (in order, in that transaction)
    as one unit of work, with exactly the effect of ``apply`` on each in turn: a page of
    two or more is given to it, a single event always to ``apply`` (so an event applied
    on its own after a page failed is applied as it always was)."""

    name: str
    metadata: sa.MetaData
    apply: Apply
    subscriptions: tuple[str, ...] = ()
    apply_page: ApplyPage | None = None

    @property
    def is_local(self) -> bool:
        return not self.subscriptions


@dataclass
class Outcome:
    """What became of a batch: each notification id applied now, seen before, or set
    aside (recorded in ``projection_failures``). All three are tracked."""

    applied: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)  # SQLite: naive


class Projection:
    """One read model's tables and tracking in one database."""

    def __init__(self, engine: Engine, model: ReadModel) -> None:
        self.engine = engine
        self.model = model
        self.name = model.name
        self.tables = sorted({t.name for t in model.metadata.sorted_tables}
                             | {t.name for t in projection_metadata.sorted_tables})
        self.rebuilt_at_start = ensure_read_tables(engine, model.name, model.metadata)
        self.remade = 0  # times its tables were found missing while running
        self.generation = 0  # bumped when it is remade: a feeder's view of it is stale
        self._lock = threading.RLock()
        self.listeners: list[Callable[[], None]] = []  # see ``changed``

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

    # -- its tables ----------------------------------------------------------------------
    def _present(self, conn: Connection) -> bool:
        if conn.dialect.name == "sqlite":
            q = "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN :names"
        else:
            q = ("SELECT tablename FROM pg_catalog.pg_tables "
                 "WHERE schemaname = current_schema() AND tablename IN :names")
        stmt = sa.text(q).bindparams(sa.bindparam("names", expanding=True))
        return len(conn.execute(stmt, {"names": self.tables}).all()) == len(self.tables)

    def position(self, upstream: str) -> int | None:
        """``last_applied``, or None when a table is missing (then ``repair``)."""
        with self.engine.connect() as conn:
            return self._last(conn, upstream) if self._present(conn) else None

    def check_tables(self) -> bool:
        """Remake the tables if one is missing; True if they were (then replay)."""
        with self.engine.connect() as conn:
            if self._present(conn):
                return False
        return self.repair()

    def repair(self) -> bool:
        with self._lock:
            remade = ensure_read_tables(self.engine, self.name, self.model.metadata)
            if remade:
                self.remade += 1
                self.generation += 1
                log.warning("read_model_remade", projection=self.name)
            return remade

    # -- applying ------------------------------------------------------------------------
    def apply_in(self, conn: Connection, upstream: str, items: Sequence[tuple[int, Any]]) -> None:
        """Apply (notification id, event) pairs inside the caller's transaction, with their
        tracking rows (one statement; IntegrityError if any was applied before)."""
        if not items:
            return
        TRACK.run(conn, [(self.name, upstream, n) for n, _ in items])
        self._apply_events(conn, items)

    def apply_after(self, conn: Connection, upstream: str, after: int,
                    items: Sequence[tuple[int, Any]]) -> bool:
        """``apply_in``, only if ``after`` is still tracked (the tables were not remade by
        another process since): one statement for the check and the tracking rows.
        False, and nothing done, if it is not."""
        values = ", ".join(f"(:n{i})" for i in range(len(items)))  # placeholders only
        stmt = sa.text(
            "INSERT INTO projection_tracking (projection, upstream, notification_id) "  # noqa: S608
            f"SELECT :p, :u, column1 FROM (VALUES {values}) AS v WHERE EXISTS ("
            "SELECT 1 FROM projection_tracking WHERE projection = :p AND upstream = :u "
            "AND notification_id = :after)")
        params = {"p": self.name, "u": upstream, "after": after,
                  **{f"n{i}": n for i, (n, _) in enumerate(items)}}
        if conn.execute(stmt, params).rowcount != len(items):
            return False
        self._apply_events(conn, items)
        return True

    def _apply_events(self, conn: Connection, items: Sequence[tuple[int, Any]]) -> None:
        """The events' effect, in order: a page as one unit of work (``apply_page``), a
        single event (or every event, without it) by ``apply``."""
        if self.model.apply_page is not None and len(items) > 1:
            self.model.apply_page(conn, [event for _, event in items])
            return
        for _, event in items:
            self.model.apply(conn, event)

    def _in_one(self, upstream: str, items: Sequence[tuple[int, Any]]) -> None:
        with self.engine.begin() as conn:
            self.apply_in(conn, upstream, items)
        self.changed()

    def changed(self) -> None:
        """Tell each listener (on this thread) a commit changed its tables; none may fail it."""
        for listener in tuple(self.listeners):
            with contextlib.suppress(Exception):
                listener()

    def _unless_data_error(self, e: BaseException) -> None:
        """Return if the event is at fault; else raise: ``ReadModelReset`` when the tables
        were gone (made afresh now), the database's own error otherwise."""
        if is_data_error(e):
            return
        with self.engine.connect() as conn:
            present = self._present(conn)
        if not present and self.repair():
            raise ReadModelReset(self.name) from e
        raise e

    def apply_batch(self, upstream: str, items: Sequence[tuple[int, Any]]) -> list[int]:
        """Apply (notification id, event) pairs; return the ids applied now."""
        return self.apply_outcome(upstream, items).applied

    def apply_outcome(self, upstream: str, items: Sequence[tuple[int, Any]],
                      generation: int | None = None) -> Outcome:
        """Apply the pairs in one transaction; if that fails because of an event, apply
        them one by one: each is applied, found applied before, or set aside. With
        ``generation``, raise ``ReadModelReset`` if the tables were remade since."""
        out = Outcome()
        if not items:
            return out
        with self._lock:
            if generation is not None and generation != self.generation:
                raise ReadModelReset(self.name)
            try:
                self._in_one(upstream, items)
                out.applied = [n for n, _ in items]
                return out
            except Exception as e:  # sorted out just below
                self._unless_data_error(e)
            seen = self._tracked(upstream, [n for n, _ in items])
            out.duplicates = [n for n, _ in items if n in seen]
            rest = [(n, ev) for n, ev in items if n not in seen]
            if seen and rest:  # another feeder got there first: the rest may be fine
                try:
                    self._in_one(upstream, rest)
                    out.applied = [n for n, _ in rest]
                    return out
                except Exception as e:
                    self._unless_data_error(e)
            for n, event in rest:
                getattr(out, self._apply_one(upstream, n, event)).append(n)
            return out

    def _tracked(self, upstream: str, ids: list[int]) -> set[int]:
        with self.engine.connect() as conn:
            return set(conn.execute(
                sa.select(projection_tracking.c.notification_id).where(
                    projection_tracking.c.projection == self.name,
                    projection_tracking.c.upstream == upstream,
                    projection_tracking.c.notification_id.in_(ids))).scalars())

    def _apply_one(self, upstream: str, notification_id: int, event: Any) -> str:
        try:
            self._in_one(upstream, [(notification_id, event)])
            return "applied"
        except Exception as e:
            self._unless_data_error(e)
            if isinstance(e, sa_exc.IntegrityError) and self._tracked(upstream,
                                                                      [notification_id]):
                return "duplicates"
            return self.set_aside(upstream, notification_id, e)

    def set_aside(self, upstream: str, notification_id: int, e: BaseException) -> str:
        """Track an event that cannot be applied and record why (no values)."""
        error_type, message = describe(e)
        log.warning("projection_event_set_aside", projection=self.name, upstream=upstream,
                    notification_id=notification_id, error_type=error_type)
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(projection_tracking).values(
                    projection=self.name, upstream=upstream, notification_id=notification_id))
                conn.execute(sa.insert(projection_failures).values(
                    projection=self.name, upstream=upstream, notification_id=notification_id,
                    error_type=error_type, message=message, at=datetime.now(UTC)))
        except sa_exc.IntegrityError:
            return "duplicates"  # another process tracked it meanwhile
        return "failed"

    # -- as a consumer's projection (integration events from the bus) -------------------
    def apply(self, event: IntegrationEvent) -> bool:
        """Apply the event and record its tracking in one transaction. False (and nothing
        changed) if it was applied before, or set aside."""
        return bool(self.apply_outcome(event.service, [(event.notification_id, event)]).applied)

    def apply_events(self, events: Sequence[IntegrationEvent],
                     generation: int | None = None) -> Outcome:
        """Apply several of one upstream (a consumer's batch), each with its tracking."""
        if not events:
            return Outcome()
        return self.apply_outcome(events[0].service,
                                  [(e.notification_id, e) for e in events], generation)

    def apply_many(self, events: list[IntegrationEvent]) -> list[IntegrationEvent]:
        """Apply several; return those applied now (neither seen before nor set aside)."""
        applied = set(self.apply_events(events).applied)
        return [e for e in events if e.notification_id in applied]

    # -- what health shows -----------------------------------------------------------------
    def failures(self, limit: int = 20) -> list[dict[str, Any]]:
        """The events set aside, latest first."""
        t = projection_failures
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.upstream, t.c.notification_id, t.c.error_type, t.c.message, t.c.at)
                .where(t.c.projection == self.name)
                .order_by(t.c.at.desc(), t.c.notification_id.desc()).limit(limit)).mappings()
            return [{**r, "at": _utc(r["at"]).isoformat()} for r in rows]

    def status(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            present = self._present(conn)
            failed = int(conn.execute(
                sa.select(sa.func.count()).select_from(projection_failures)
                .where(projection_failures.c.projection == self.name)).scalar() or 0
            ) if present else 0
        return {"status": ("ok" if not failed else "failures") if present else "missing",
                "failed": failed, "failures": self.failures() if failed else [],
                "remade_while_running": self.remade}

    # -- drop and rebuild ----------------------------------------------------------------
    def drop(self) -> None:
        """Empty the read model: its tables made afresh, its tracking and failures
        forgotten, so whatever feeds it replays every event."""
        with self._lock, self.engine.begin() as conn:
            self.generation += 1
            lock_ddl(conn)
            projection_metadata.create_all(conn)
            self.model.metadata.drop_all(conn)
            self.model.metadata.create_all(conn)
            for table in (projection_tracking, projection_failures):
                conn.execute(sa.delete(table).where(table.c.projection == self.name))
        self.changed()

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
