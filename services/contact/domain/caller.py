"""A caller: someone who calls or texts the line, known by a pseudonymous
``caller_ref``. Their alias and number arrive sealed (encrypted with their own key);
erasure destroys that key, and the coded history stays. No I/O here.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from eventsourcing.domain import event

from services.contact.domain.codes import AGE_BANDS, GENDERS
from shared.kernel import (
    Aggregate,
    InvalidCommand,
    NotPermitted,
    RuleBroken,
    one_of,
    require_sealed,
)


@dataclass(frozen=True)
class NewCaller:
    """A caller to register, as a supporter or a referrer gives them (plaintext: the
    application seals the alias and phone before the domain sees them)."""

    alias: str | None = None
    phone: str | None = None
    gender: str | None = None
    age_band: str | None = None
    consent_to_keep_history: bool = False
    consent_to_text: bool = False


class RevealGrounds:
    """Why a caller's number may be shown (recorded with each reveal)."""

    CONSENT_TO_TEXT = "consent_to_text"
    REFERRAL_ACCEPTED = "referral_accepted"
    CALL_BACK_OPEN = "call_back_open"


CALLER_NAMESPACE = uuid.UUID("0b7f8b8e-4f2a-4b8e-9d3c-6a1f2e5d7c90")
_REF_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U


def new_caller_ref() -> str:
    return "C-" + "".join(secrets.choice(_REF_ALPHABET) for _ in range(8))


def caller_id_for(caller_ref: str) -> uuid.UUID:
    return uuid.uuid5(CALLER_NAMESPACE, caller_ref.upper())


class Caller(Aggregate):
    """Someone who calls or texts, known by a pseudonymous ``caller_ref``."""

    @classmethod
    def register(
        cls,
        *,
        caller_ref: str,
        alias: str | None,
        phone: str | None,
        gender: str | None,
        age_band: str | None,
        consent_to_keep_history: bool,
        consent_to_text: bool,
    ) -> Caller:
        return cls._create(
            cls.Registered,
            id=caller_id_for(caller_ref),
            caller_ref=caller_ref,
            alias=require_sealed("alias", alias),
            phone=require_sealed("phone", phone),
            gender=one_of("gender", gender, GENDERS, optional=True),
            age_band=one_of("age_band", age_band, AGE_BANDS, optional=True),
            consent_to_keep_history=bool(consent_to_keep_history),
            consent_to_text=bool(consent_to_text),
        )

    class Registered(Aggregate.Created):
        caller_ref: str
        alias: str | None
        phone: str | None
        gender: str | None
        age_band: str | None
        consent_to_keep_history: bool
        consent_to_text: bool
        meta: dict[str, str]

    def __init__(self, *, caller_ref: str, alias: str | None, phone: str | None,
                 gender: str | None, age_band: str | None, consent_to_keep_history: bool,
                 consent_to_text: bool) -> None:
        self.caller_ref = caller_ref
        self.alias = alias
        self.phone = phone
        self.gender = gender
        self.age_band = age_band
        self.consent_to_keep_history = consent_to_keep_history
        self.consent_to_text = consent_to_text
        self.erased = False
        self.history_reads = 0
        self.phone_reveals = 0

    def _not_erased(self) -> None:
        if self.erased:
            raise RuleBroken("this caller's personal data was erased")

    def check_can_be_named(self) -> None:
        """A new record (a contact, a referral) may name this caller only while their
        personal data exists: nothing new is tied to an erased person."""
        if self.erased:
            raise InvalidCommand("caller_ref", "this caller's personal data was erased")

    @property
    def has_phone(self) -> bool:
        """A number is kept for them (none once erased: it can no longer be read)."""
        return self.phone is not None and not self.erased

    @property
    def may_receive_texts(self) -> bool:
        """Texts go only to a caller who consented to them and was not erased."""
        return self.consent_to_text and not self.erased

    def change_consent(self, *, consent_to_keep_history: bool | None,
                       consent_to_text: bool | None) -> None:
        self._not_erased()
        if consent_to_keep_history is None and consent_to_text is None:
            raise InvalidCommand("consent_to_text", "name at least one consent to change")
        self._consent_changed(consent_to_keep_history=consent_to_keep_history,
                              consent_to_text=consent_to_text)

    class ConsentChanged(Aggregate.Event):
        consent_to_keep_history: bool | None
        consent_to_text: bool | None
        meta: dict[str, str]

    @event(ConsentChanged)
    def _consent_changed(self, *, consent_to_keep_history: bool | None,
                         consent_to_text: bool | None) -> None:
        if consent_to_keep_history is not None:
            self.consent_to_keep_history = consent_to_keep_history
        if consent_to_text is not None:
            self.consent_to_text = consent_to_text

    def check_history_readable(self) -> None:
        """Only with the caller's consent to keeping their history."""
        if not self.consent_to_keep_history:
            raise NotPermitted("The caller has not consented to keeping their history.")

    def read_history(self, *, purpose: str | None) -> None:
        """Record that someone read this caller's history, and why. After erasure the
        coded history can still be read (the read is still recorded), but no purpose
        can be kept: nothing personal may be stored for an erased caller."""
        self.check_history_readable()
        if self.erased and purpose is not None:
            raise RuleBroken("nothing personal can be recorded for an erased caller")
        self._history_read(purpose=require_sealed("purpose", purpose))

    class HistoryRead(Aggregate.Event):
        purpose: str | None
        meta: dict[str, str]

    @event(HistoryRead)
    def _history_read(self, *, purpose: str | None) -> None:
        self.history_reads += 1

    # -- ringing back ---------------------------------------------------------------------
    def check_phone_revealable(self, *, referral_accepted: bool,
                               call_back_open: bool) -> str:
        """Whether this caller's number may be shown to ring them back, and on what
        grounds: their consent to texts, an accepted referral of theirs (a referral
        carries consent to be contacted), or a missed call of theirs awaiting its
        call-back. Refused for an erased caller (the number is gone), one with no number,
        and one who gave none of those grounds."""
        if self.erased:
            raise RuleBroken("this caller's personal data was erased: their number is gone")
        if self.phone is None:
            raise RuleBroken("no phone number is on record for this caller")
        if self.consent_to_text:
            return RevealGrounds.CONSENT_TO_TEXT
        if referral_accepted:
            return RevealGrounds.REFERRAL_ACCEPTED
        if call_back_open:
            return RevealGrounds.CALL_BACK_OPEN
        raise NotPermitted("The caller has not consented to being contacted: no consent to "
                           "texts, no accepted referral and no missed call awaiting a "
                           "call-back.")

    def reveal_phone(self, *, purpose: str | None, referral_accepted: bool,
                     call_back_open: bool) -> None:
        """Record that someone was shown this caller's number, why, and on what grounds
        (before it is shown). The purpose arrives sealed with the caller's key."""
        grounds = self.check_phone_revealable(referral_accepted=referral_accepted,
                                              call_back_open=call_back_open)
        if purpose is None:
            raise InvalidCommand("purpose", "say why the number is needed")
        self._phone_revealed(purpose=require_sealed("purpose", purpose), grounds=grounds)

    class PhoneRevealed(Aggregate.Event):
        purpose: str | None
        grounds: str
        meta: dict[str, str]

    @event(PhoneRevealed)
    def _phone_revealed(self, *, purpose: str | None, grounds: str) -> None:
        self.phone_reveals += 1

    def erase(self) -> None:
        if self.erased:
            raise RuleBroken("this caller's personal data was already erased")
        self._erased(caller_ref=self.caller_ref)

    class Erased(Aggregate.Event):
        caller_ref: str
        meta: dict[str, str]

    @event(Erased)
    def _erased(self, *, caller_ref: str) -> None:
        self.erased = True
        self.consent_to_text = False
