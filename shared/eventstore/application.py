"""The base of every service's eventsourcing ``Application``.

- Persistence comes from the environment built by ``shared.eventstore.store`` (never an
  ``if`` here).
- The recorder is a process recorder, so a service that reacts to another's events can
  record the library's tracking record in the same transaction as its new events.
- After a local save it calls its listeners (the relay's wake-up), so the relay
  publishes at once instead of at its next poll.
- It presents its notification log as integration events (for the relay and for
  ``GET /<service>/events``), mapped by the service's ``public_events.py``.
- The composition root hands it its adapters (``Adapters``: engine, settings, keys,
  phone index, SMS provider) and its read models; it builds none itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Notification, ProcessRecorder, Recording, Tracking
from sqlalchemy.engine import Engine

from shared.config import Settings
from shared.kernel import NotKnown
from shared.messaging.envelope import IntegrationEvent, envelope_id
from shared.privacy import KeyStore, PhoneIndex
from shared.sms import SmsProvider

A = TypeVar("A")


class LocalProjectorLike(Protocol):
    """What the application needs of a projector (``shared.eventstore.projection``)."""

    @property
    def name(self) -> str: ...

    def saved(self, recordings: Sequence[Recording[UUID]]) -> None: ...

    def catch_up(self) -> int: ...


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
        self.projectors: dict[str, LocalProjectorLike] = {}
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

    def attach_projector(self, projector: LocalProjectorLike) -> None:
        """A read model of this service's own events: kept up to date after each save."""
        self.projectors[projector.name] = projector
        self.add_save_listener(projector.saved)

    def read_model(self, name: str) -> Engine:
        """The engine of a read model of this service's own events, brought up to date
        first: whoever reads sees every write acknowledged before it (read-your-writes)."""
        self.projectors[name].catch_up()
        return self.engine

    def construct_recorder(self) -> ProcessRecorder:  # type: ignore[override]
        return self.factory.process_recorder()

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
        for listener in list(self._save_listeners):
            listener(recordings)

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

    def to_integration_event(self, notification: Notification, previous: int) -> IntegrationEvent:
        domain_event = self.mapper.to_domain_event(notification)
        public = self.public_event(domain_event) or _default_public(domain_event)
        meta: dict[str, Any] = getattr(domain_event, "meta", None) or {}
        occurred_at: datetime = getattr(domain_event, "timestamp", None) or datetime.now(UTC)
        return IntegrationEvent(
            id=envelope_id(self.service, notification.id),
            service=self.service,
            notification_id=notification.id,
            previous_notification_id=previous,
            aggregate_type=type(domain_event).__qualname__.split(".")[0],
            aggregate_id=domain_event.originator_id,
            aggregate_version=domain_event.originator_version,
            type=public.type,
            occurred_at=occurred_at,
            actor=str(meta.get("actor", "system")),
            correlation_id=meta.get("correlation_id"),
            causation_id=meta.get("causation_id"),
            schema_version=public.schema_version,
            data=public.data,
        )

    def integration_events(self, after: int, limit: int) -> list[IntegrationEvent]:
        """Up to ``limit`` integration events after position ``after``, chained."""
        notifications = self.select_notifications(after, limit)
        if not notifications:
            return []
        previous = self.previous_notification_id(notifications[0].id)
        out = []
        for n in notifications:
            out.append(self.to_integration_event(n, previous))
            previous = n.id
        return out
