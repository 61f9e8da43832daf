"""Referrals: the contact service's referral use cases.

Partners (a GP system, a crisis team) and the coordinator refer someone in, with their
consent to be contacted; the coordinator works the queue and accepts or declines each,
with a reason.

A partner must learn nothing about who else calls the line. So a partner refers with
the person's details, never by ``caller_ref`` (the domain's rule,
``check_referrer_may_name_caller``), and a person whose number is already a caller's
*is* that caller: the referral is matched to them inside, with the same answer as for
someone new (no 409 "already known"). Whatever the referrer says about a known caller
(alias, consents, age band) is not written over their record: it is theirs. The
referrer's organisation (a GP practice tied to a person) is sealed with the caller's
key, like the reason, so erasure reaches it.

Accepting a referral opens its first-contact follow-up, due
``SOLIDARITY_REFERRAL_FIRST_CONTACT_DAYS`` after; a contact logged with its
``referral_id`` completes it in the same transaction (``for_contact``). A partner reads
the status of the referrals it made, and only those (``made_by``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from services.contact import read_model as views
from services.contact.domain import (
    Caller,
    NewCaller,
    Referral,
    check_consent_to_contact,
    check_referrer_may_name_caller,
)
from shared.kernel import Conflicting, InvalidCommand, NotKnown, check_expected_version
from shared.privacy import normalise_uk_phone

if TYPE_CHECKING:
    from services.contact.app import ContactApplication

REGISTER_ATTEMPTS = 2


class Referrals:
    """The referral use cases of one contact application."""

    def __init__(self, app: ContactApplication) -> None:
        self.app = app

    def receive(self, *, received_at: datetime | None, source: str,
                referrer_organisation: str | None, caller_ref: str | None,
                new_caller: NewCaller | None, reason: str | None, consent_to_contact: bool,
                by_partner: bool = False) -> Referral:
        """Refer the caller named by ``caller_ref`` (not a partner), or a person by their
        details: the known caller with that number, else a new caller, registered in the
        same transaction as the referral."""
        check_referrer_may_name_caller(by_partner=by_partner,
                                       names_caller=caller_ref is not None)
        check_consent_to_contact(consent_to_contact)  # before a new caller is registered
        if (caller_ref is None) == (new_caller is None):
            raise InvalidCommand("caller_ref", "give either caller_ref or a new caller")

        def referral_for(caller: Caller) -> Referral:
            caller.check_can_be_named()  # before anything is sealed with their key
            return Referral.receive(
                received_at=received_at or datetime.now(UTC), source=source,
                referrer_organisation=self.app._seal(caller.id, referrer_organisation),
                caller=caller, reason=self.app._seal(caller.id, reason),
                consent_to_contact=consent_to_contact, skew=self.app.clock_skew,
            )

        def of_known(caller: Caller) -> Referral:
            referral = referral_for(caller)
            self.app.save(referral)
            return referral

        if caller_ref is not None:
            return of_known(self.app._named_caller(caller_ref))
        new = new_caller or NewCaller()
        number = normalise_uk_phone(new.phone) if new.phone is not None else None
        made: list[Referral] = []

        def with_new_caller(caller: Caller) -> list[Any]:
            made.append(referral_for(caller))
            return [caller, made[-1]]

        for _ in range(REGISTER_ATTEMPTS):
            known = self.app._caller_with_number(number) if number is not None else None
            if known is not None:
                return of_known(known)
            try:
                self.app._registering(new, with_new_caller)
                return made[-1]
            except Conflicting:
                continue  # the number was registered meanwhile: refer that caller
        raise Conflicting("This number is being registered by another request; try again.")

    def get(self, referral_id: UUID) -> Referral:
        return self.app.load(referral_id, Referral, "referral")

    def decide(self, referral_id: UUID, *, accept: bool, reason: str,
               expected_version: int | None) -> Referral:
        referral = self.get(referral_id)
        check_expected_version(referral.version, expected_version)
        days = self.app.settings.referral_first_contact_days
        referral.decide(accept=accept, reason=self.app._seal(referral.caller_id, reason) or "",
                        first_contact_within=timedelta(days=days))
        self.app.save(referral)
        return referral

    def queue(self, status: str | None, limit: int, cursor: str | None = None,
              referred_by: str | None = None) -> tuple[list[Referral], str | None]:
        """The referrals (oldest first), by status if given, only those ``referred_by``
        someone if given, and the next page's cursor."""
        ids, next_cursor = views.referral_ids(self.app._views(), status, limit, cursor,
                                              referred_by=referred_by)
        return [self.get(rid) for rid in ids], next_cursor

    def made_by(self, referral_id: UUID, referrer: str) -> Referral:
        """A referral ``referrer`` made; any other is not found, as if it did not exist."""
        referral = self.get(referral_id)
        if referral.referred_by != referrer:
            raise NotKnown("No such referral.")
        return referral

    def for_contact(self, referral_id: UUID, caller: Caller | None, *, answered: bool
                    ) -> tuple[Referral, Caller]:
        """The referral a contact being logged names, checked (unknown is bad input), and
        the contact's caller: the one it names, else the referred person."""
        try:
            referral = self.get(referral_id)
        except NotKnown:
            raise InvalidCommand("referral_id", "no referral has this id") from None
        referral.check_first_contact(caller_id=caller.id if caller is not None else None,
                                     answered=answered)
        if caller is None:
            caller = self.app.load(referral.caller_id, Caller, "caller")
        return referral, caller
