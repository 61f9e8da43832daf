"""The base of every service's eventsourcing ``Application``.

- Persistence comes from the environment built by ``shared.eventstore.store`` (never an
  ``if`` here).
- The recorder is a process recorder, so a service that reacts to another's events can
  record the library's tracking record in the same transaction as its new events. On
  PostgreSQL its retries end with the pool timeout: with the database gone a command
  fails within it, never after minutes.
- After a local save it calls its listeners (its read models' projectors, the relay's
  wake-up) once the events are committed. From then on the answer is the stored
  result: a listener that fails is logged (its error type only) and never turns the
  command into an error; the read model catches up at the next read.
- It presents its notification log as integration events (for the relay and for
  ``GET /<service>/events``), mapped by the service's ``public_events.py``.
- The composition root hands it its adapters (``Adapters``: engine, settings, keys,
  phone index, SMS provider, call placer) and its read models; it builds none itself.
- ``LocalProjector`` keeps a read model of its own log (a ``Projection`` of
  ``shared.eventstore.projection``, which re-exports it) in step with every save.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MethodType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    InterfaceError,
    Notification,
    OperationalError,
    ProcessRecorder,
    Recording,
    Tracking,
)
from sqlalchemy.engine import Engine

from shared.calls import CallPlacer
from shared.config import Settings
from shared.eventstore.log_reader import LogReader
from shared.kernel import NotKnown
from shared.logging import get_logger
from shared.messaging.envelope import IntegrationEvent
from shared.privacy import KeyStore, PhoneIndex
from shared.sms import SmsProvider

if TYPE_CHECKING:
    from shared.eventstore.projection import Projection

A = TypeVar("A")
log = get_logger("eventstore")

# The library's recorder methods it retries on a lost or refused connection.
RETRIED = ("insert_events", "select_events", "select_notifications", "max_notification_id",
           "insert_tracking", "max_tracking_id", "has_tracking_id")


RETRY_WAIT_S = 0.2


def _within(deadline_s: float, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` retried on a connection error while the first call is under
    ``deadline_s`` old (one attempt that waited the whole pool timeout is the last)."""

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        while True:
            try:
                return func(*args, **kwargs)
            except (InterfaceError, OperationalError):
                if time.monotonic() - started + RETRY_WAIT_S >= deadline_s:
                    raise
                time.sleep(RETRY_WAIT_S)

    return call


class ReadModelReset(Exception):  # a signal, not a failure
    """The read tables were missing: they were made afresh and their tracking forgotten.
    Whoever feeds the projection replays its events from the start."""


class Public:
    """A public view of a domain event."""

    __slots__ = ("data", "schema_version", "type")

    def __init__(self, type: str, data: dict[str, Any] | None = None, schema_version: int = 1):
        self.type = type
        self.data = data or {}
        self.schema_version = schema_version


def _default_public(event: Any) -> Public:
    # An event a service has not described publicly still takes its place in the chain,
    # with its name and no data: consumers see every position, and nothing private leaks.
    aggregate = type(event).__qualname__.split(".")[0]
    name = type(event).__name__
    return Public(name if name.startswith(aggregate) else aggregate + name)


@dataclass
class Adapters:
    """What the composition root builds for a service: its SQL engine (the same database
    as its events), its settings, and the adapters its module asks for."""

    engine: Engine
    settings: Settings
    keys: KeyStore | None = None
    phones: PhoneIndex | None = None
    sms: SmsProvider | None = None
    calls: CallPlacer | None = None


class ServiceApplication(Application[UUID]):
    """One per service. Subclasses set ``service``; the module gives the public-event
    mapping, the composition root the adapters (``bind``) and read models."""

    service: ClassVar[str] = ""
    log_section_size = 5000
    clock_skew = timedelta(minutes=5)

    def __init__(self, env: dict[str, str] | None = None, *,
                 public_events: Callable[[Any], Public | None] | None = None) -> None:
        self._save_listeners: list[Callable[[list[Recording[UUID]]], object]] = []
        self._public_events = public_events
        self.projectors: dict[str, LocalProjector] = {}
        self.chain_hashes: Callable[[list[int]], dict[int, bytes]] | None = None  # by system
        super().__init__(env)

    def public_event(self, event: Any) -> Public | None:
        """The public view of one of this service's domain events (public_events.py)."""
        return self._public_events(event) if self._public_events is not None else None

    def bind(self, adapters: Adapters) -> None:
        """Take the adapters. A service that needs some checks it has them here."""
        self.adapters = adapters
        self.engine = adapters.engine
        self.settings = adapters.settings
        self.clock_skew = timedelta(seconds=adapters.settings.clock_skew_s)

    def tick(self, now: datetime) -> None:
        """Work due by the clock (a shift that started uncovered, a debrief overdue),
        run by the composition root every ``SOLIDARITY_TICK_INTERVAL_S`` as the service
        itself. Nothing by default."""

    def attach_projector(self, projector: LocalProjector) -> None:
        """A read model of this service's own events: kept up to date after each save."""
        self.projectors[projector.name] = projector
        self.add_save_listener(projector.saved)

    def read_model(self, name: str) -> Engine:
        """The engine of a read model of this service's own events, brought up to date
        first: whoever reads sees every write acknowledged before it (read-your-writes)."""
        self.projectors[name].catch_up()
        return self.engine

    def construct_recorder(self) -> ProcessRecorder:  # type: ignore[override]
        recorder = self.factory.process_recorder()
        # The library retries a failed PostgreSQL call ten times, each waiting up to the
        # pool's timeout: with the database gone a command would hang for minutes. Its
        # retries are kept, bounded by the one timeout (POSTGRES_CONNECT_TIMEOUT).
        deadline = self.env.get("POSTGRES_CONNECT_TIMEOUT")
        if deadline:
            for name in RETRIED:
                method = getattr(type(recorder), name, None)
                inner = getattr(method, "__wrapped__", None)
                if inner is not None:
                    setattr(recorder, name, MethodType(_within(float(deadline), inner), recorder))
        return recorder

    @property
    def process_recorder(self) -> ProcessRecorder:
        assert isinstance(self.recorder, ProcessRecorder)
        return self.recorder

    # -- loading ---------------------------------------------------------------
    def load(self, aggregate_id: UUID, cls: type[A], what: str) -> A:
        """The aggregate of that type, or a 404 problem naming what was looked for."""
        try:
            found: object = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotKnown(f"No such {what}.") from None
        if not isinstance(found, cls):
            raise NotKnown(f"No such {what}.")
        return found

    # -- saving ----------------------------------------------------------------
    def add_save_listener(self, listener: Callable[[list[Recording[UUID]]], object]) -> None:
        self._save_listeners.append(listener)

    def remove_save_listener(
        self, listener: Callable[[list[Recording[UUID]]], object]
    ) -> None:
        if listener in self._save_listeners:
            self._save_listeners.remove(listener)

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        recordings = super().save(*objs, **kwargs)
        self._saved(recordings)
        return recordings

    def save_with_tracking(
        self, tracking: Tracking, *objs: Aggregate | None
    ) -> list[Recording[UUID]]:
        """Save new events and the tracking of the upstream event that caused them,
        in one transaction: a redelivered upstream event fails on the tracking row."""
        processing = ProcessingEvent[UUID](tracking=tracking)
        processing.collect_events(*objs)
        recordings = self._record(processing)
        self._saved(recordings)
        return recordings

    def _saved(self, recordings: list[Recording[UUID]]) -> None:
        """After the commit: the events are stored, so nothing here may fail the command
        (a projector racing another process, a dropped table, an event its tables cannot
        hold). Logged without values; the read model catches up at the next read."""
        for listener in list(self._save_listeners):
            try:
                listener(recordings)
            except Exception as e:
                with contextlib.suppress(Exception):  # not even a broken log stream
                    log.warning("after_save_failed", service=self.service,
                                listener=getattr(listener, "__qualname__", "listener"),
                                error_type=type(e).__name__)

    # -- the notification log as integration events ------------------------------
    def max_notification_id(self) -> int:
        return self.recorder.max_notification_id() or 0

    def select_notifications(self, after: int, limit: int) -> Sequence[Notification]:
        return self.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )

    def previous_notification_id(self, before: int) -> int:
        """The position of the last notification before ``before`` (0 if none)."""
        if before <= 1:
            return 0
        # Notification ids may have gaps (a rolled-back insert on PostgreSQL): look back
        # in growing windows rather than assume ``before - 1`` exists.
        window = 16
        start = before - 1
        while True:
            low = max(0, start - window)
            found = self.recorder.select_notifications(
                start=low, stop=before - 1, limit=window + 1, inclusive_of_start=False
            )
            if found:
                return found[-1].id
            if low == 0:
                return 0
            start, window = low, window * 4

    @functools.cached_property
    def log_reader(self) -> LogReader:
        return LogReader(self, lambda event: self.public_event(event) or _default_public(event))

    def to_integration_event(self, notification: Notification, previous: int,
                             chain_hash: bytes | None = None) -> IntegrationEvent:
        return self.log_reader.from_notification(notification, previous, chain_hash)

    def integration_events(self, after: int, limit: int) -> list[IntegrationEvent]:
        """Up to ``limit`` integration events after position ``after``, chained (one
        query where it can: ``shared.eventstore.log_reader``)."""
        return self.log_reader.page(after, limit)


class LocalProjector:
    """Keeps a read model of the service's own events in step with its log.

    It runs after every local save, before the command answers (under load many saves
    share one transaction), and readers call ``catch_up()`` before they query, so a
    client always reads its own writes, even those made by another process. It catches
    up at start after a crash, and remakes and replays tables dropped while running.
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
                # The very next events: apply them as saved, without reading them back,
                # if what this process last applied is still tracked (not remade since by
                # another process). Anything else (another process applied them first, an
                # event the tables cannot hold, a table gone) is sorted out by catch_up.
                try:
                    with self.projection.engine.begin() as conn:
                        if self.projection.apply_after(
                                conn, self.upstream, known,
                                [(r.notification.id, r.domain_event) for r in recordings]):
                            self._known = ids[-1]
                            return
                except Exception:  # noqa: S110
                    pass
        self.catch_up()

    def catch_up(self) -> int:
        """Apply every event after the last one applied. Returns how many."""
        applied = 0
        resets = 0
        with self._lock:  # the only writer of this projection in the process
            while True:
                # Read the events before taking the write transaction: on SQLite, holding
                # the write lock while waiting for an event-store connection deadlocks
                # with savers that hold a connection and wait for the write lock.
                position = self.projection.position(self.upstream)
                if position is None:  # a table dropped while running: remake, replay
                    self.projection.repair()
                    position = self.projection.last_applied(self.upstream)
                    self._known = 0
                self._known = max(self._known, position)
                batch = self.app.select_notifications(position, self.batch_size)
                if not batch:
                    return applied
                try:
                    outcome = self.projection.apply_outcome(self.upstream, self._decoded(batch))
                except ReadModelReset:
                    resets += 1
                    if resets > 3:
                        raise
                    self._known = 0
                    continue
                self._known = batch[-1].id
                applied += len(outcome.applied)

    def _decoded(self, batch: Sequence[Any]) -> list[tuple[int, Any]]:
        items = []
        for n in batch:
            try:
                items.append((n.id, self.app.mapper.to_domain_event(n)))
            except Exception as e:  # an event this code cannot read
                self.projection.set_aside(self.upstream, n.id, e)
        return items

    def rebuild(self) -> int:
        with self._lock:
            self.projection.drop()
            self._known = 0
        return self.catch_up()
