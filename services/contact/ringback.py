"""Ringing back: the contact service's ring-back use cases.

A caller's number is stored only sealed, and no endpoint shows it on a read. Ringing
someone back is a command with a stated purpose, recorded before the number is shown:

- a caller's number (``caller_phone``), for one who consented to being contacted:
  consent to texts, an accepted referral of theirs, or a missed call of theirs awaiting
  its call-back (``Caller.PhoneRevealed``, with the purpose sealed and the grounds);
- a missed call's number (``contact_phone``), while its call-back follow-up is open, or
  for the coordinator at any time (``NumberRevealed`` on the contact);
- a call-back placed through the call provider (``call_back``): it rings the
  supporter's own phone, then the caller, so nobody sees the caller's number
  (``CallBackPlaced``, without the numbers);
- a contact logged with ``responds_to`` naming a missed call (``answering``) completes
  that call's open call-back follow-up in the same save (``CallBackAnswered``).

Who: the coordinator, or a supporter on shift. The numbers never reach a log line, an
error message or the bus.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import sqlalchemy as sa
from eventsourcing.persistence import IntegrityError

from services.contact import read_model as views
from services.contact.domain import Caller, Contact
from services.contact.domain.codes import FollowUpKind
from services.contact.domain.ringback import called_back_note
from shared.calls import CallPlacer
from shared.kernel import InvalidCommand, NotKnown, RuleBroken
from shared.privacy import normalise_uk_phone
from shared.web.auth import Role

if TYPE_CHECKING:
    from services.contact.app import ContactApplication
    from shared.web.auth import Principal

REVEAL = "see a caller's number to ring them back"
CALL_BACK = "ring a caller back"
ACCEPTED = ("accepted", "contacted")  # a referral accepted (and maybe contacted since)
SAVE_ATTEMPTS = 5


class RingBack:
    """The ring-back use cases of one contact application."""

    placer: CallPlacer  # replaceable (tests put a refusing provider here)

    def __init__(self, app: ContactApplication, placer: CallPlacer) -> None:
        self.app = app
        self.placer = placer

    # ------------------------------------------------------------------- grounds
    def _referral_accepted(self, caller: Caller) -> bool:
        r = views.referrals.c
        with self.app._views().connect() as conn:
            return conn.execute(sa.select(sa.literal(1)).where(
                r.caller_ref == caller.caller_ref, r.status.in_(ACCEPTED)).limit(1)
            ).first() is not None

    def _call_back_open(self, caller: Caller) -> bool:
        f, c = views.follow_ups.c, views.contacts.c
        with self.app._views().connect() as conn:
            return conn.execute(
                sa.select(sa.literal(1)).select_from(
                    views.follow_ups.join(views.contacts, f.contact_id == c.contact_id))
                .where(c.caller_id == str(caller.id), c.answered.is_(False),
                       f.kind == FollowUpKind.CALL_BACK.value, f.completed_at.is_(None))
                .limit(1)).first() is not None

    # ------------------------------------------------------------------- a caller
    def caller_phone(self, caller_ref: str, *, purpose: str, principal: Principal) -> str:
        """The caller's number, the reveal recorded (with its purpose) first."""
        self.app.check_on_shift(principal, REVEAL)
        caller = self.app.get_caller(caller_ref)
        grounds = {"referral_accepted": self._referral_accepted(caller),
                   "call_back_open": self._call_back_open(caller)}
        caller.check_phone_revealable(**grounds)  # before the purpose is sealed
        number = self.app.keys.open(caller.phone)
        if number is None:  # erased meanwhile
            raise RuleBroken("this caller's personal data was erased: their number is gone")
        caller.reveal_phone(purpose=self.app._seal(caller.id, purpose), **grounds)
        self.app.save(caller)
        return number

    # ------------------------------------------------------------- a missed call
    def _caller_of(self, contact: Contact) -> Caller | None:
        if contact.caller_id is None:
            return None
        return self.app.load(contact.caller_id, Caller, "caller")

    def _number_of(self, contact: Contact, caller: Caller | None) -> str:
        """The missed call's own number, else its caller's."""
        sealed = contact.phone if contact.phone is not None else (
            caller.phone if caller is not None else None)
        number = self.app.keys.open(sealed)
        if number is None:
            raise RuleBroken("the caller's personal data was erased: their number is gone")
        return number

    def contact_phone(self, contact_id: UUID, *, purpose: str,
                      principal: Principal) -> str:
        """A missed call's number, the reveal recorded (with its purpose) first."""
        self.app.check_on_shift(principal, REVEAL)
        contact = self.app.get_contact(contact_id)
        caller = self._caller_of(contact)
        any_time = principal.role == Role.COORDINATOR
        contact.check_ring_back(caller=caller, any_time=any_time)  # before sealing
        number = self._number_of(contact, caller)
        contact.reveal_number(purpose=self.app._seal(self.app._subject(contact), purpose),
                              caller=caller, any_time=any_time)
        self.app.save(contact)
        return number

    def call_back(self, contact_id: UUID, *, ring: str,
                  principal: Principal) -> tuple[Contact, int]:
        """Place a call-back through the call provider and record it. Refused, before
        anything is placed, unless whoever asks is on shift (or the coordinator) and the
        missed call may be rung back. A provider's refusal (``CallPlaceError``) records
        nothing. Returns the contact and the call-back's n."""
        self.app.check_on_shift(principal, CALL_BACK)
        try:
            own = normalise_uk_phone(ring)
        except InvalidCommand:
            raise InvalidCommand("ring", "is not a UK phone number") from None
        contact = self.app.get_contact(contact_id)
        caller = self._caller_of(contact)
        contact.check_ring_back(caller=caller, any_time=principal.role == Role.COORDINATOR)
        ref = self.placer.place(own, self._number_of(contact, caller))
        # The call is placed: record it, even if the contact changed meanwhile.
        now = datetime.now(UTC)
        for attempt in range(SAVE_ATTEMPTS):
            n = contact.record_call_back(placed_at=now, provider_ref=ref)
            try:
                self.app.save(contact)
                return contact, n
            except IntegrityError:
                if attempt + 1 == SAVE_ATTEMPTS:
                    raise
                contact = self.app.get_contact(contact_id)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------- responds_to
    def missed_call(self, responds_to: UUID, caller: Caller | None) -> Contact:
        """The missed call a new contact answers (422 on ``responds_to`` otherwise)."""
        try:
            missed = self.app.get_contact(responds_to)
        except NotKnown:
            raise InvalidCommand("responds_to", "no contact has this id") from None
        missed.check_answerable_by(caller.id if caller is not None else None)
        return missed

    def answering(self, missed: Contact, contact: Contact) -> list[Any]:
        """What to save with ``contact``, which ``responds_to`` ``missed``: the missed
        call, its open call-back follow-up completed when ``contact`` got through."""
        if not contact.answered:  # an attempt that did not get through completes nothing
            return []
        if missed.open_call_back is None:
            return []
        subject = str(self.app._subject(missed))
        outcome = (None if self.app.keys.is_erased(subject)  # nothing sealed for the erased
                   else self.app._seal(subject, called_back_note(contact.id)))
        missed.answered_by(contact.id, caller_id=contact.caller_id, outcome=outcome)
        return [missed]
