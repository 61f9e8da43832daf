"""Reactions: a service that answers other services' events with events of its own
(the shift service opens a debrief when the contact service publishes
``DebriefRequested``).

A ``Reactions`` names the handlers, by (upstream service, integration event type). A
handler gets the application and the event and returns the aggregates it changed; the
``Reactor`` saves their new events together with the library's tracking record of the
upstream event in ONE transaction (``ServiceApplication.save_with_tracking``). So a
redelivered or duplicated event changes nothing (its tracking row exists), and an event
no handler wants is still tracked, so the chain of notification ids stays whole. The
``Reactor`` is fed by the platform's consumers (``shared.messaging.consumer``): it has
the same three methods as a read model's ``Projection``.

Who acts in a reaction is the service itself (``service:<name>``), in answer to the
upstream event (its id as causation, its correlation id kept).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import IntegrityError, Tracking

from shared.eventstore.application import ServiceApplication
from shared.kernel import DomainError, acting
from shared.logging import get_logger
from shared.messaging.envelope import IntegrationEvent

log = get_logger("reactions")

Handler = Callable[[Any, IntegrationEvent], Sequence[Any]]


@dataclass(frozen=True)
class Reactions:
    """A service's reactions to other services' integration events."""

    name: str
    handlers: Mapping[tuple[str, str], Handler] = field(default_factory=dict)

    @property
    def subscriptions(self) -> tuple[str, ...]:
        out: list[str] = []
        for service, _ in self.handlers:
            if service not in out:
                out.append(service)
        return tuple(out)


@dataclass
class Outcome:
    """What a batch came to (the consumer's ``Outcome``)."""

    applied: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


class Reactor:
    """Applies upstream events to one application, exactly once, through its tracking.
    It has the consumer's side of a read model (``shared.messaging.consumer.Projection``):
    no tables of its own, so nothing to remake (``generation`` never changes)."""

    generation = 0

    def __init__(self, app: ServiceApplication, reactions: Reactions) -> None:
        self.app = app
        self.reactions = reactions
        self.name = reactions.name

    def last_applied(self, upstream: str) -> int:
        return int(self.app.process_recorder.max_tracking_id(upstream) or 0)

    def check_tables(self) -> bool:
        return False

    def apply(self, event: IntegrationEvent) -> bool:
        """React and record the tracking in one transaction; False (nothing changed) if
        this event was applied before."""
        handler = self.reactions.handlers.get((event.service, event.type))
        with acting(f"service:{self.app.service}", event.correlation_id, str(event.id)):
            changed: list[Any] = []
            if handler is not None:
                try:
                    changed = list(handler(self.app, event))
                except DomainError as e:
                    # A rule refused the reaction: it is recorded as seen (tracked), never
                    # retried for ever; the log names the event and the rule's type only.
                    log.warning("reaction_refused", upstream=event.service, type=event.type,
                                notification_id=event.notification_id,
                                error_type=type(e).__name__)
            tracking = Tracking(application_name=event.service,
                                notification_id=event.notification_id)
            try:
                self.app.save_with_tracking(tracking, *changed)
            except IntegrityError:
                if self.app.process_recorder.has_tracking_id(event.service,
                                                             event.notification_id):
                    return False
                raise
        return True

    def apply_events(self, events: Sequence[IntegrationEvent],
                     generation: int | None = None) -> Outcome:
        """One event at a time, each in its own transaction with its tracking."""
        outcome = Outcome()
        for event in events:
            (outcome.applied if self.apply(event) else outcome.duplicates).append(
                event.notification_id)
        return outcome
