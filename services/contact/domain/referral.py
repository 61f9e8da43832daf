"""A referral into the line from another organisation (a GP, a crisis team), or a
self-referral. It needs the person's consent to be contacted. A partner refers with the
person's details, never by ``caller_ref``; who referred them (``referrer_organisation``,
a GP practice) is personal data about them and arrives sealed. Accepting a referral
opens a follow-up: make first contact by a due time; the first contact logged for it
(``FirstContactMade``) completes it. No I/O here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from eventsourcing.domain import event

from services.contact.domain.caller import Caller
from services.contact.domain.codes import DEFAULT_SKEW, REFERRAL_SOURCES
from services.contact.domain.values import Meta, actor_of, record_time
from shared.kernel import (
    Aggregate,
    InvalidCommand,
    RuleBroken,
    one_of,
    require_aware,
    require_not_future,
    require_sealed,
)

FIRST_CONTACT = "first_contact"  # the kind of the follow-up an accepted referral opens
FIRST_CONTACT_WITHIN = timedelta(days=7)  # the default of its due time (a setting)
STATUSES = ("received", "accepted", "declined", "contacted")


def check_consent_to_contact(consent_to_contact: bool) -> None:
    """Nobody is referred in without their consent to be contacted."""
    if consent_to_contact is not True:
        raise InvalidCommand("consent_to_contact",
                             "a referral needs the person's consent to be contacted")


def check_referrer_may_name_caller(*, by_partner: bool, names_caller: bool) -> None:
    """A partner refers with the person's details, never by ``caller_ref``: a partner
    must learn nothing of who calls the line, and the answer to a reference (known,
    unknown, erased) would tell them. One answer whatever the value; the coordinator
    may name a caller."""
    if by_partner and names_caller:
        raise InvalidCommand("caller_ref", "a partner refers with the person's details "
                                           "(caller), not a caller_ref")


class Referral(Aggregate):
    """A referral into the service from another organisation, or a self-referral."""

    @classmethod
    def receive(cls, *, received_at: datetime, source: str, referrer_organisation: str | None,
                caller: Caller, reason: str | None, consent_to_contact: bool,
                now: datetime | None = None, skew: timedelta = DEFAULT_SKEW) -> Referral:
        check_consent_to_contact(consent_to_contact)
        caller.check_can_be_named()
        now = now or datetime.now(UTC)
        received = record_time("received_at", received_at, now)
        require_not_future("received_at", received, now, skew)
        one_of("source", source, REFERRAL_SOURCES)
        return cls._create(
            cls.Received, received_at=received, source=source,
            referrer_organisation=require_sealed("referrer_organisation", referrer_organisation),
            caller_id=caller.id,
            caller_ref=caller.caller_ref, reason=require_sealed("reason", reason),
        )

    class Received(Aggregate.Created):
        received_at: datetime
        source: str
        referrer_organisation: str | None
        caller_id: uuid.UUID
        caller_ref: str
        reason: str | None
        meta: dict[str, str]

    def __init__(self, *, received_at: datetime, source: str, referrer_organisation: str | None,
                 caller_id: uuid.UUID, caller_ref: str, reason: str | None,
                 meta: Meta = None) -> None:
        self.referred_by = actor_of(meta) or None  # who referred: a partner reads its own
        self.received_at = received_at
        self.source = source
        self.referrer_organisation = referrer_organisation
        self.caller_id = caller_id
        self.caller_ref = caller_ref
        self.reason = reason
        self.status = "received"
        self.outcome_reason: str | None = None
        self.decided_by: str | None = None
        self.first_contact_due_by: datetime | None = None
        self.first_contact: dict[str, object] | None = None

    def decide(self, *, accept: bool, reason: str, now: datetime | None = None,
               first_contact_within: timedelta = FIRST_CONTACT_WITHIN) -> None:
        """Accept (opening the first-contact follow-up, due ``first_contact_within`` of
        now) or decline, once."""
        if self.status != "received":
            raise RuleBroken(f"the referral was already {self.status}")
        if accept:
            due = require_aware("now", now or datetime.now(UTC)) + first_contact_within
            self._accepted(reason=require_sealed("reason", reason), first_contact_due_by=due)
        else:
            self._declined(reason=require_sealed("reason", reason))

    class Accepted(Aggregate.Event):
        reason: str | None
        first_contact_due_by: datetime | None  # absent from events stored before it existed
        meta: dict[str, str]

    @event(Accepted)
    def _accepted(self, meta: Meta = None, *, reason: str | None,
                  first_contact_due_by: datetime | None = None) -> None:
        self.status = "accepted"
        self.outcome_reason = reason
        self.decided_by = actor_of(meta) or None
        self.first_contact_due_by = first_contact_due_by

    class Declined(Aggregate.Event):
        reason: str | None
        meta: dict[str, str]

    @event(Declined)
    def _declined(self, meta: Meta = None, *, reason: str | None) -> None:
        self.status = "declined"
        self.outcome_reason = reason
        self.decided_by = actor_of(meta) or None

    # -- first contact ---------------------------------------------------------------
    def check_first_contact(self, *, caller_id: uuid.UUID | None, answered: bool) -> None:
        """May a contact with this caller (``None``: the referral's) be logged as this
        referral's first contact? Only an answered one, with the referred person, of a
        referral accepted (or already contacted: that contact stays its first)."""
        if self.status not in ("accepted", "contacted"):
            raise InvalidCommand("referral_id", f"the referral is {self.status}, not accepted")
        if caller_id is not None and caller_id != self.caller_id:
            raise InvalidCommand("referral_id", "the referral is of another caller")
        if not answered:
            raise InvalidCommand("referral_id", "a missed call makes no first contact")

    def make_first_contact(self, *, contact_id: uuid.UUID, at: datetime) -> bool:
        """Record the contact that made first contact; False (nothing recorded) when an
        earlier one already did."""
        if self.status == "contacted":
            return False
        if self.status != "accepted":
            raise InvalidCommand("referral_id", f"the referral is {self.status}, not accepted")
        self._first_contact_made(contact_id=contact_id, at=require_aware("at", at))
        return True

    class FirstContactMade(Aggregate.Event):
        contact_id: uuid.UUID
        at: datetime
        meta: dict[str, str]

    @event(FirstContactMade)
    def _first_contact_made(self, *, contact_id: uuid.UUID, at: datetime) -> None:
        self.status = "contacted"
        self.first_contact = {"contact_id": contact_id, "at": at}
