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
    no tables of its own, so nothing to remake (``generation`` never changes).

    Most upstream events want no reaction (the shift service reacts to one type of the
    contact service's many). Those are only counted as seen, and their position is
    written now and then (every ``track_every``) or with the next reaction, never one
    write each: after a crash the consumer replays the unwritten ones from the source
    log, and they change nothing. A reaction is always written with its own tracking."""

    generation = 0

    def __init__(self, app: ServiceApplication, reactions: Reactions,
                 track_every: int = 500) -> None:
        self.app = app
        self.reactions = reactions
        self.name = reactions.name
        self.track_every = track_every
        self._seen: dict[str, int] = {}  # the highest position seen, written or not
        # Per upstream: how many seen events are not written yet, and the last of them.
        self._unwritten: dict[str, tuple[int, IntegrationEvent]] = {}

    def last_applied(self, upstream: str) -> int:
        stored = int(self.app.process_recorder.max_tracking_id(upstream) or 0)
        return max(stored, self._seen.get(upstream, 0))

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
            if not self._write(event, *changed):
                return False
        self._seen_up_to(event)
        return True

    def apply_events(self, events: Sequence[IntegrationEvent],
                     generation: int | None = None) -> Outcome:
        """A consumer's batch (one upstream, in order)."""
        outcome = Outcome()
        for upstream in {e.service for e in events} - set(self._seen):
            self._seen[upstream] = self.last_applied(upstream)  # what was written before
        for event in events:
            wanted = (event.service, event.type) in self.reactions.handlers
            if wanted:
                applied = self.apply(event)
            else:
                applied = event.notification_id > self._seen.get(event.service, 0)
                if applied:
                    count, _ = self._unwritten.get(event.service, (0, event))
                    self._unwritten[event.service] = (count + 1, event)
                    self._seen_up_to(event)
            (outcome.applied if applied else outcome.duplicates).append(event.notification_id)
        for count, last in list(self._unwritten.values()):
            if count >= self.track_every:
                self._write(last)
        return outcome

    def _seen_up_to(self, event: IntegrationEvent) -> None:
        self._seen[event.service] = max(self._seen.get(event.service, 0),
                                        event.notification_id)

    def _write(self, event: IntegrationEvent, *changed: Any) -> bool:
        """Save ``changed`` with the tracking of ``event``; False if it was saved before.
        Any events seen but not yet written are covered by it (a later position)."""
        tracking = Tracking(application_name=event.service,
                            notification_id=event.notification_id)
        try:
            self.app.save_with_tracking(tracking, *changed)
        except IntegrityError:
            if self.app.process_recorder.has_tracking_id(event.service, event.notification_id):
                return False
            raise
        pending = self._unwritten.get(event.service)
        if pending is not None and pending[1].notification_id <= event.notification_id:
            del self._unwritten[event.service]
        return True
