"""Reactions: another service's event answered with events of one's own, exactly once,
on SQLite and PostgreSQL (the tracking row and the new events commit together)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.config import Settings
from shared.eventstore.application import Adapters, ServiceApplication
from shared.eventstore.reactions import Reactions, Reactor
from shared.eventstore.store import create_engine, eventsourcing_env
from shared.kernel import Aggregate, RuleBroken
from shared.messaging.envelope import IntegrationEvent


class Note(Aggregate):
    """A stand-in for what a reaction makes (the shift service's debrief)."""

    @classmethod
    def open(cls, about: str) -> Note:
        return cls._create(cls.Opened, id=uuid.uuid5(uuid.NAMESPACE_URL, about), about=about)

    class Opened(Aggregate.Created):
        about: str
        meta: dict[str, str]

    def __init__(self, *, about: str) -> None:
        self.about = about


class Notes(ServiceApplication):
    service = "shift"  # any service's schema will do: the test owns its store
    name = "notes"


def _opened(app: Any, ev: IntegrationEvent) -> list[Note]:
    return [Note.open(str(ev.data["contact_id"]))]


def _refused(app: Any, ev: IntegrationEvent) -> list[Note]:
    raise RuleBroken("this reaction is refused by a rule")


REACTIONS = Reactions("notes", {("contact", "DebriefRequested"): _opened,
                                ("contact", "Refused"): _refused})


@pytest.fixture
def app(settings: Settings) -> Iterator[Notes]:
    engine = create_engine(settings, "shift")
    notes = Notes(env=eventsourcing_env(settings, "shift"))
    notes.bind(Adapters(engine=engine, settings=settings))
    try:
        yield notes
    finally:
        notes.close()
        engine.dispose()


def _upstream(n: int, type_: str = "DebriefRequested") -> IntegrationEvent:
    return IntegrationEvent(
        id=uuid.uuid4(), service="contact", notification_id=n,
        previous_notification_id=n - 1, aggregate_type="Contact",
        aggregate_id=uuid.uuid4(), aggregate_version=1, type=type_,
        occurred_at=datetime.now(UTC), actor="sup-1", correlation_id=str(uuid.uuid4()),
        causation_id=None, schema_version=1, data={"contact_id": f"contact-{n}"},
    )


def test_a_reaction_saves_its_events_with_the_tracking_once(app: Notes) -> None:
    reactor = Reactor(app, REACTIONS)
    assert reactor.last_applied("contact") == 0
    first = _upstream(1)
    assert reactor.apply(first) is True
    assert reactor.apply(first) is False  # redelivered: nothing changes
    assert reactor.last_applied("contact") == 1
    events = app.integration_events(0, 10)
    assert [e.type for e in events] == ["NoteOpened"]
    assert events[0].actor == "service:shift"
    assert events[0].causation_id == str(first.id)
    assert events[0].correlation_id == first.correlation_id


def test_an_event_no_handler_wants_is_tracked_and_a_refused_one_is_not_retried(
        app: Notes) -> None:
    reactor = Reactor(app, REACTIONS)
    outcome = reactor.apply_events([_upstream(1, "ContactLogged"), _upstream(2, "Refused"),
                                    _upstream(3)])
    assert outcome.applied == [1, 2, 3] and outcome.duplicates == []
    assert reactor.last_applied("contact") == 3
    assert [e.type for e in app.integration_events(0, 10)] == ["NoteOpened"]
    again = reactor.apply_events([_upstream(2, "Refused")])
    assert again.duplicates == [2] and again.applied == []


def test_reactions_name_the_services_they_subscribe_to() -> None:
    assert REACTIONS.subscriptions == ("contact",)


def test_events_no_handler_wants_are_written_now_and_then_and_replay_harmlessly(
        app: Notes) -> None:
    reactor = Reactor(app, REACTIONS, track_every=3)
    reactor.apply_events([_upstream(1, "ContactLogged"), _upstream(2, "ContactLogged")])
    assert reactor.last_applied("contact") == 2  # seen
    assert Reactor(app, REACTIONS).last_applied("contact") == 0  # not written: a restart
    reactor.apply_events([_upstream(3, "ContactLogged")])  # the third: written
    assert Reactor(app, REACTIONS).last_applied("contact") == 3
    reactor.apply_events([_upstream(4, "ContactLogged"), _upstream(5)])  # a reaction writes
    restarted = Reactor(app, REACTIONS, track_every=3)
    assert restarted.last_applied("contact") == 5
    replay = restarted.apply_events([_upstream(4, "ContactLogged"), _upstream(5)])
    assert replay.applied == [] and replay.duplicates == [4, 5]
    assert [e.type for e in app.integration_events(0, 10)] == ["NoteOpened"]
