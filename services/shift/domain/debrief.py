"""A debrief: after a distressing call (``DebriefRequested`` from the contact service),
one for each supporter named, open until a coordinator records it done. Its id comes
from the contact and the supporter, so a redelivered request opens nothing twice.
No I/O here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from eventsourcing.domain import event

from services.shift.domain.codes import DEFAULT_SKEW, EARLIEST, LONDON
from services.shift.domain.values import london_today, person_id, plain_date
from shared.kernel import Aggregate, InvalidCommand, RuleBroken, require_within

DEBRIEF_NAMESPACE = uuid.UUID("9a3e7c1b-2d4f-4e6a-8b0c-1f5d3e7a9c24")


def debrief_id_for(contact_id: uuid.UUID, supporter_id: str) -> uuid.UUID:
    return uuid.uuid5(DEBRIEF_NAMESPACE, f"{contact_id}:{supporter_id}")


def is_overdue(requested_at: datetime, completed: bool, now: datetime,
               after: timedelta) -> bool:
    """The overdue rule: still open more than ``after`` (the setting) after it was
    requested (for a debrief, and for a row of a list of them)."""
    return not completed and now - requested_at > after


class Debrief(Aggregate):
    """A debrief owed to one supporter after one distressing contact."""

    @classmethod
    def open(cls, *, supporter_id: str, contact_id: uuid.UUID,
             requested_at: datetime | None = None, now: datetime | None = None) -> Debrief:
        """Opened for ``supporter_id`` after ``contact_id`` (the id is
        ``debrief_id_for`` both); ``requested_at``, when the contact service asked (its
        event's time; default now), is what ``overdue`` counts from."""
        if not isinstance(contact_id, uuid.UUID):
            raise InvalidCommand("contact_id", "must be a UUID")
        person_id("supporter_id", supporter_id)
        now = now or datetime.now(UTC)
        requested = require_within("requested_at", requested_at or now, EARLIEST,
                                   now + DEFAULT_SKEW)
        return cls._create(cls.Opened, id=debrief_id_for(contact_id, supporter_id),
                           supporter_id=supporter_id, contact_id=contact_id,
                           requested_at=requested)

    class Opened(Aggregate.Created):
        supporter_id: str
        contact_id: uuid.UUID
        requested_at: datetime
        meta: dict[str, str]

    def __init__(self, *, supporter_id: str, contact_id: uuid.UUID,
                 requested_at: datetime) -> None:
        self.supporter_id = supporter_id
        self.contact_id = contact_id
        self.requested_at = requested_at
        self.completed_on: date | None = None
        self.completed_by: str | None = None

    @property
    def status(self) -> str:
        return "open" if self.completed_on is None else "complete"

    def complete(self, *, on: date, by: str, today: date | None = None) -> None:
        """Done ``on`` a date (from the day it was requested, London time, to today)
        ``by`` someone known to the system (their id); once."""
        if self.completed_on is not None:
            raise RuleBroken("the debrief is already complete")
        held = plain_date("on", on, today or london_today(),
                          earliest=self.requested_at.astimezone(LONDON).date())
        self._completed(on=held.isoformat(), by=person_id("by", by),
                        supporter_id=self.supporter_id)

    class Completed(Aggregate.Event):
        on: str
        by: str
        supporter_id: str  # whose debrief: published, so the event says it itself
        meta: dict[str, str]

    @event(Completed)
    def _completed(self, *, on: str, by: str, supporter_id: str) -> None:
        self.completed_on = date.fromisoformat(on)
        self.completed_by = by

    def overdue(self, now: datetime, after: timedelta) -> bool:
        """Still open more than ``after`` (the setting) after it was requested."""
        return is_overdue(self.requested_at, self.completed_on is not None, now, after)
