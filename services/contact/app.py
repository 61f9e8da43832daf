"""The contact service's application: commands and queries, the only place that loads
and saves its aggregates. The rules are the domain's; response shapes are the API's
presenters; text conversations are ``texts.py``, referrals ``referrals.py``.

It seals personal data before the domain sees it (``shared.privacy``), keeps the phone
lookup index, and reads its own read tables (``read_model.py``, kept by the platform's
projector) for lists and searches, and the rota (``rota.py``, fed by the shift
service's events) for what a command needs of it: the domain decides with it who is on
shift, which shift a contact belongs to and who may be named on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from services.contact import read_model as views
from services.contact import rota
from services.contact.domain import (
    Caller,
    Contact,
    DirectoryEntry,
    FollowUp,
    NewCaller,
    OnShiftWindow,
    caller_id_for,
    is_open,
    new_caller_ref,
)
from services.contact.referrals import Referrals
from services.contact.ringback import RingBack
from services.contact.texts import Texts
from shared.eventstore.application import Adapters, ServiceApplication
from shared.kernel import (
    Conflicting,
    InvalidCommand,
    NotKnown,
    NotPermitted,
    check_expected_version,
)
from shared.privacy import KeyStore, PhoneIndex, normalise_uk_phone
from shared.privacy.shred import shred
from shared.web.auth import Principal, Role

VIEWS = "contact-views"
HISTORY = "read a caller's history"
LONDON = ZoneInfo("Europe/London")


class ContactApplication(ServiceApplication):
    service = "contact"
    name = "contact"

    keys: KeyStore
    phones: PhoneIndex
    texts: Texts
    referrals: Referrals
    ring_back: RingBack
    on_shift_window: OnShiftWindow

    def bind(self, adapters: Adapters) -> None:
        super().bind(adapters)
        assert adapters.keys and adapters.phones and adapters.sms, "keys, phones and sms"
        self.keys = adapters.keys
        self.phones = adapters.phones
        self.texts = Texts(self, adapters.sms)
        self.referrals = Referrals(self)
        assert adapters.calls, "calls"
        self.ring_back = RingBack(self, adapters.calls)
        self.on_shift_window = OnShiftWindow(
            before=timedelta(minutes=adapters.settings.on_shift_before_min),
            after=timedelta(minutes=adapters.settings.on_shift_after_min))

    def _views(self) -> Engine:
        """The read tables (``read_model.py``), up to date with every acknowledged write."""
        return self.read_model(VIEWS)

    def _rota(self) -> Engine:
        """The rota's tables (``rota.py``). They are fed by the consumer of the shift
        service's stream, not by this service's saves: nothing to catch up here; they
        are as recent as the last shift event that arrived."""
        return self.engine

    def check_on_shift(self, principal: Principal, doing: str) -> None:
        """The coordinator, or a supporter on shift now (the domain's rule, on the rota);
        NotPermitted otherwise."""
        now = datetime.now(UTC)
        known = rota.of_supporter(self._rota(), principal.sub, now, self.on_shift_window)
        known.check_on_shift(role=principal.role, sub=principal.sub, now=now,
                             window=self.on_shift_window, doing=doing)

    def _seal(self, subject: UUID | str, value: str | None) -> str | None:
        return self.keys.seal(str(subject), value)

    # -------------------------------------------------------------------- callers
    def register_caller(self, new: NewCaller) -> Caller:
        return self._registering(new, lambda caller: [caller])

    def _registering(self, new: NewCaller,
                     with_caller: Callable[[Caller], list[Any]]) -> Caller:
        """Register a caller and save it together with whatever ``with_caller`` builds
        from it, in one transaction: if anything is refused, nothing is stored (the
        phone claim and the new key are released too)."""
        caller_ref = new_caller_ref()
        while caller_id_for(caller_ref) in self.repository:
            caller_ref = new_caller_ref()
        caller_id = caller_id_for(caller_ref)
        phone = normalise_uk_phone(new.phone) if new.phone is not None else None
        if phone is not None:
            holder = self.phones.claim(phone, str(caller_id))
            if holder is not None:
                raise Conflicting("A caller with this phone number is already known; "
                                  "look them up by phone instead.")
        try:
            caller = Caller.register(
                caller_ref=caller_ref,
                alias=self._seal(caller_id, new.alias),
                phone=self._seal(caller_id, phone),
                gender=new.gender,
                age_band=new.age_band,
                consent_to_keep_history=new.consent_to_keep_history,
                consent_to_text=new.consent_to_text,
            )
            self.save(*with_caller(caller))
        except BaseException:
            if phone is not None:
                self.phones.release(phone)
            self.keys.forget_unused(str(caller_id))
            raise
        return caller

    def get_caller(self, caller_ref: str) -> Caller:
        return self.load(caller_id_for(caller_ref), Caller, f"caller {caller_ref}")

    def _named_caller(self, caller_ref: str) -> Caller:
        """A caller named in a request body: unknown is bad input (422), not a 404."""
        try:
            return self.get_caller(caller_ref)
        except NotKnown:
            raise InvalidCommand("caller_ref", "no caller has this reference") from None

    def _caller_with_number(self, number: str) -> Caller | None:
        """The caller whose (normalised) number is in the index, unless erased."""
        subject = self.phones.find(number)
        if subject is None:
            return None
        found: object = self.repository.get(UUID(subject))
        assert isinstance(found, Caller)
        return None if found.erased else found

    def lookup_caller(self, phone: str) -> Caller:
        try:
            subject = self.phones.find(phone)
        except InvalidCommand as e:
            raise e.at("query") from None
        if subject is None:
            raise NotKnown("No known caller has this number.")
        found: object = self.repository.get(UUID(subject))
        assert isinstance(found, Caller)
        caller = found
        if caller.erased:
            raise NotKnown("No known caller has this number.")
        return caller

    def change_consent(self, caller_ref: str, *, consent_to_keep_history: bool | None,
                       consent_to_text: bool | None,
                       expected_version: int | None) -> Caller:
        caller = self.get_caller(caller_ref)
        check_expected_version(caller.version, expected_version)
        caller.change_consent(consent_to_keep_history=consent_to_keep_history,
                              consent_to_text=consent_to_text)
        self.save(caller)
        return caller

    def may_read_history(self, principal: Principal) -> bool:
        """The coordinator, or a supporter on shift (assigned to a shift on the rota that
        is on now, with the window of the settings)."""
        try:
            self.check_on_shift(principal, HISTORY)
        except NotPermitted:
            return False
        return True

    def caller_history(self, caller_ref: str, *, purpose: str,
                       principal: Principal) -> list[Any]:
        """The caller's contacts, newest first, as read-table rows (summaries sealed).
        The read itself is recorded, with its purpose, before anything is shown."""
        self.check_on_shift(principal, HISTORY)
        caller = self.get_caller(caller_ref)
        caller.check_history_readable()  # before the purpose is sealed with their key
        sealed = None if caller.erased else self._seal(caller.id, purpose)
        caller.read_history(purpose=sealed)
        self.save(caller)
        return views.contacts_of_caller(self._views(), caller.id)

    def erase_caller(self, caller_ref: str) -> Caller:
        """Record the erasure, then destroy the key and the phone hashes. Idempotent: if a
        crash fell between the two, asking again finishes the shredding."""
        caller = self.get_caller(caller_ref)
        if not caller.erased:
            caller.erase()
            self.save(caller)  # a lost race is a 409 here, before anything is destroyed
        subject = str(caller.id)
        shred(self.engine, self.keys, subject,
              also=lambda conn: self.phones.erase_subject(subject, conn))
        return caller

    # ------------------------------------------------------------------- contacts
    def log_contact(self, *, channel: str, started_at: datetime, issues: list[str],
                    direction: str = "inbound", ended_at: datetime | None = None,
                    caller_ref: str | None = None, shift_id: UUID | None = None,
                    supporter_ids: Sequence[str | UUID] = (), caller_is: str | None = None,
                    summary: str | None = None, signposted_to: Sequence[UUID] = (),
                    follow_up: FollowUp | None = None, distressing: bool = False,
                    answered: bool = True, phone: str | None = None,
                    responds_to: UUID | None = None,
                    referral_id: UUID | None = None) -> Contact:
        """``referral_id``: an accepted referral it makes first contact on (same save)."""
        contact_id = uuid.uuid4()
        caller: Caller | None = None
        if caller_ref is not None:
            caller = self._named_caller(caller_ref)
        number: str | None = None
        if phone is not None:
            number = normalise_uk_phone(phone)
            if caller is None:
                caller = self._caller_with_number(number)
        referral = None
        if referral_id is not None:
            referral, caller = self.referrals.for_contact(referral_id, caller, answered=answered)
        if caller is not None:
            caller.check_can_be_named()  # before anything is sealed with their key
        missed = (self.ring_back.missed_call(responds_to, caller)
                  if responds_to is not None else None)
        self._check_signposts(signposted_to)
        subject = caller.id if caller is not None else contact_id
        if follow_up is not None and follow_up.needed:
            follow_up = replace(follow_up, what=self._seal(subject, follow_up.what))
        contact = Contact.log(
            id=contact_id, channel=channel, direction=direction, started_at=started_at,
            ended_at=ended_at, issues=issues, caller=caller, shift_id=shift_id,
            supporter_ids=[str(s) for s in supporter_ids], caller_is=caller_is,
            rota=rota.for_contact(self._rota(), supporter_ids, started_at),
            summary=self._seal(subject, summary),
            signposted_to=[str(s) for s in signposted_to], follow_up=follow_up,
            distressing=distressing, answered=answered, phone=self._seal(subject, number),
            number_known=number is not None or (caller is not None and caller.phone is not None),
            responds_to=responds_to, referral_id=referral_id, skew=self.clock_skew,
        )
        first = referral is not None and referral.make_first_contact(
            contact_id=contact.id, at=contact.started_at)
        # The missed call it answers, its call-back completed, in the same save.
        self.save(contact, *(self.ring_back.answering(missed, contact) if missed else []),
                  *([referral] if first else []))
        return contact

    def _check_signposts(self, signposted_to: Sequence[UUID] | None) -> None:
        unknown = (views.missing_directory_entries(self._views(), list(signposted_to))
                   if signposted_to else [])
        if unknown:
            raise InvalidCommand("signposted_to", f"no directory entry {unknown[0]}")

    def get_contact(self, contact_id: UUID) -> Contact:
        return self.load(contact_id, Contact, "contact")

    def _subject(self, contact: Contact) -> UUID:
        return contact.caller_id or contact.id

    def _mutate(self, contact_id: UUID, expected_version: int | None) -> Contact:
        contact = self.get_contact(contact_id)
        check_expected_version(contact.version, expected_version)
        return contact

    def correct_contact(self, contact_id: UUID, *, reason: str,
                        issues: list[str] | None, ended_at: datetime | None,
                        summary: str | None = None, caller_is: str | None = None,
                        signposted_to: Sequence[UUID] | None = None,
                        expected_version: int | None = None) -> Contact:
        self._check_signposts(signposted_to)  # a bad body is 422 whatever If-Match says
        contact = self._mutate(contact_id, expected_version)
        s = self._subject(contact)
        sealed = self._seal(s, reason.strip()) if reason.strip() else reason
        contact.correct(reason=sealed or "", issues=issues, ended_at=ended_at,
                        summary=self._seal(s, summary), caller_is=caller_is,
                        signposted_to=signposted_to, skew=self.clock_skew)
        # A concurrent save of the same contact makes this raise IntegrityError: a 409.
        self.save(contact)
        return contact

    def assess_risk(self, contact_id: UUID, *, level: str, factors: str | None,
                    protective_factors: str | None, decision: str, reasoning: str | None,
                    expected_version: int | None = None) -> Contact:
        contact = self._mutate(contact_id, expected_version)
        s = self._subject(contact)
        contact.assess_risk(level=level, factors=self._seal(s, factors),
                            protective_factors=self._seal(s, protective_factors),
                            decision=self._seal(s, decision) or "",
                            reasoning=self._seal(s, reasoning))
        self.save(contact)
        return contact

    def escalate(self, contact_id: UUID, *, kind: str, reason: str, reference: str | None,
                 expected_version: int | None = None) -> Contact:
        contact = self._mutate(contact_id, expected_version)
        s = self._subject(contact)
        contact.escalate(kind=kind, reason=self._seal(s, reason) or "",
                         reference=self._seal(s, reference))
        self.save(contact)
        return contact

    def close_contact(self, contact_id: UUID, *, no_escalation_reason: str | None,
                      expected_version: int | None = None) -> Contact:
        contact = self._mutate(contact_id, expected_version)
        contact.close(no_escalation_reason=self._seal(self._subject(contact),
                                                      no_escalation_reason))
        self.save(contact)
        return contact

    def complete_follow_up(self, contact_id: UUID, n: int, *, outcome: str | None,
                           expected_version: int | None = None) -> Contact:
        contact = self._mutate(contact_id, expected_version)
        contact.complete_follow_up(n=n, outcome=self._seal(self._subject(contact), outcome))
        self.save(contact)
        return contact

    def sees_personal(self, principal: Principal, supporter_ids: Sequence[str]) -> bool:
        """Who sees summaries and other free text: the coordinator, and the supporters
        who handled the contact. Auditors see coded fields only."""
        if principal.role == Role.COORDINATOR:
            return True
        return principal.role == Role.SUPPORTER and principal.sub in supporter_ids

    def list_contacts(self, *, caller_ref: str | None, start: datetime | None,
                      end: datetime | None, limit: int,
                      cursor: str | None) -> tuple[list[Any], str | None]:
        """Read-table rows, newest first, and the next page's cursor."""
        caller_id = caller_id_for(caller_ref) if caller_ref else None
        return views.list_contacts(self._views(), caller_id=caller_id, start=start, end=end,
                                   limit=limit, cursor=cursor)

    def follow_ups_due(self, due_before: datetime, limit: int, cursor: str | None = None
                       ) -> tuple[list[dict[str, Any]], str | None]:
        return views.follow_ups_due(self._views(), due_before, limit, cursor)

    # ------------------------------------------------------------------- directory
    def add_directory_entry(self, fields: dict[str, Any]) -> DirectoryEntry:
        entry = DirectoryEntry.add(**fields)
        self.save(entry)
        return entry

    def get_directory_entry(self, entry_id: UUID) -> DirectoryEntry:
        entry = self.load(entry_id, DirectoryEntry, "directory entry")
        if entry.removed:
            raise NotKnown("No such directory entry.")
        return entry

    def update_directory_entry(self, entry_id: UUID, fields: dict[str, Any],
                               expected_version: int | None) -> DirectoryEntry:
        entry = self.get_directory_entry(entry_id)
        check_expected_version(entry.version, expected_version)
        entry.update(**fields)
        self.save(entry)
        return entry

    def remove_directory_entry(self, entry_id: UUID,
                               expected_version: int | None) -> None:
        entry = self.get_directory_entry(entry_id)
        check_expected_version(entry.version, expected_version)
        entry.remove()
        self.save(entry)

    def search_directory(self, need: str | None, open_at: datetime | None, limit: int,
                         cursor: str | None = None
                         ) -> tuple[list[dict[str, Any]], str | None]:
        entries = views.directory(self._views(), need)
        if open_at is not None:
            local = open_at.astimezone(LONDON)
            entries = [e for e in entries
                       if is_open(e["opening_hours"], local, open_24_7=e["open_24_7"])]
        return views.page_by_name(entries, limit, cursor)

