"""A referral into the line from another organisation (a GP, a crisis team), or a
self-referral. It needs the person's consent to be contacted. A partner refers with the
person's details, never by ``caller_ref``; who referred them (``referrer_organisation``,
a GP practice) is personal data about them and arrives sealed. No I/O here.
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
    require_not_future,
    require_sealed,
)


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
                 caller_id: uuid.UUID, caller_ref: str, reason: str | None) -> None:
        self.received_at = received_at
        self.source = source
        self.referrer_organisation = referrer_organisation
        self.caller_id = caller_id
        self.caller_ref = caller_ref
        self.reason = reason
        self.status = "received"
        self.outcome_reason: str | None = None
        self.decided_by: str | None = None

    def decide(self, *, accept: bool, reason: str) -> None:
        if self.status != "received":
            raise RuleBroken(f"the referral was already {self.status}")
        if accept:
            self._accepted(reason=require_sealed("reason", reason))
        else:
            self._declined(reason=require_sealed("reason", reason))

    class Accepted(Aggregate.Event):
        reason: str | None
        meta: dict[str, str]

    @event(Accepted)
    def _accepted(self, meta: Meta = None, *, reason: str | None) -> None:
        self.status = "accepted"
        self.outcome_reason = reason
        self.decided_by = actor_of(meta) or None

    class Declined(Aggregate.Event):
        reason: str | None
        meta: dict[str, str]

    @event(Declined)
    def _declined(self, meta: Meta = None, *, reason: str | None) -> None:
        self.status = "declined"
        self.outcome_reason = reason
        self.decided_by = actor_of(meta) or None
