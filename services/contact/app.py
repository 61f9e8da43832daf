"""The contact service's application: the only place that loads and saves its aggregates.

It seals personal data before the domain sees it (``shared.privacy``), keeps the phone
lookup index, and projects its own events into read tables (``services.contact.views``)
for lists and searches.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.persistence import IntegrityError
from sqlalchemy.engine import Engine

from services.contact import views
from services.contact.domain import (
    Caller,
    Contact,
    DirectoryEntry,
    Referral,
    caller_id_for,
    is_open,
    new_caller_ref,
)
from services.contact.handlers import public_event
from services.contact.sms import (
    AlreadyTaken,
    InboundLedger,
    OutboxSmsSender,
    SmsSender,
    TwilioSmsSender,
)
from shared.application import Public, ServiceApplication, check_expected_version, command_meta
from shared.auth import Principal, Role
from shared.domain import InvalidCommand, RuleBroken
from shared.privacy import KeyStore, PhoneIndex, normalise_uk_phone
from shared.problems import Conflict, Forbidden, NotFound
from shared.projector import LocalProjector
from shared.settings import Settings

LONDON = ZoneInfo("Europe/London")
ON_SHIFT_WINDOW = timedelta(hours=12)


@dataclass
class NewCaller:
    alias: str | None = None
    phone: str | None = None
    gender: str | None = None
    age_band: str | None = None
    consent_to_keep_history: bool = False
    consent_to_text: bool = False


class ContactApplication(ServiceApplication):
    service = "contact"
    name = "contact"

    keys: KeyStore
    phones: PhoneIndex
    projector: LocalProjector

    def bind(self, engine: Engine, settings: Settings) -> None:
        super().bind(engine, settings)
        self.keys = KeyStore(engine, settings.effective_master_key)
        self.phones = PhoneIndex(engine, settings.effective_master_key)
        self.projector = LocalProjector(self, engine, "contact-views", views.metadata,
                                        views.apply)
        self.projector.catch_up()
        self.add_save_listener(self.projector.saved)
        self._bind_texts(settings)

    def _views(self) -> Engine:
        """The engine of the read tables, brought up to date first: whoever reads a list
        sees every write that was acknowledged before it (read-your-writes)."""
        self.projector.catch_up()
        return self.engine

    def public_event(self, event: object) -> Public | None:
        return public_event(event)

    def _seal(self, subject: UUID | str, value: str | None) -> str | None:
        return self.keys.seal(str(subject), value)

    # -------------------------------------------------------------------- callers
    def register_caller(self, new: NewCaller, meta: dict[str, str]) -> Caller:
        return self._registering(new, meta, lambda caller: [caller])

    def _registering(self, new: NewCaller, meta: dict[str, str],
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
                raise Conflict("A caller with this phone number is already known; "
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
                meta=meta,
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
        except NotFound:
            raise InvalidCommand("caller_ref", "no caller has this reference") from None

    def lookup_caller(self, phone: str) -> Caller:
        try:
            subject = self.phones.find(phone)
        except InvalidCommand as e:
            raise e.at("query") from None
        if subject is None:
            raise NotFound("No known caller has this number.")
        found: object = self.repository.get(UUID(subject))
        assert isinstance(found, Caller)
        caller = found
        if caller.erased:
            raise NotFound("No known caller has this number.")
        return caller

    def caller_view(self, caller: Caller) -> dict[str, Any]:
        return {
            "caller_ref": caller.caller_ref,
            "alias": self.keys.reveal(caller.alias),
            "has_phone": caller.phone is not None,
            "gender": caller.gender,
            "age_band": caller.age_band,
            "consent_to_keep_history": caller.consent_to_keep_history,
            "consent_to_text": caller.consent_to_text,
            "erased": caller.erased,
            "version": caller.version,
        }

    def change_consent(self, caller_ref: str, *, consent_to_keep_history: bool | None,
                       consent_to_text: bool | None, meta: dict[str, str],
                       expected_version: int | None) -> Caller:
        caller = self.get_caller(caller_ref)
        check_expected_version(caller.version, expected_version)
        caller.change_consent(consent_to_keep_history=consent_to_keep_history,
                              consent_to_text=consent_to_text, meta=meta)
        self.save(caller)
        return caller

    def may_read_history(self, principal: Principal) -> bool:
        """The coordinator, or a supporter on shift. Until the shift service publishes its
        rota, 'on shift' means: named on a contact that started in the last 12 hours."""
        if principal.role == Role.COORDINATOR:
            return True
        if principal.role != Role.SUPPORTER:
            return False
        since = datetime.now(UTC) - ON_SHIFT_WINDOW
        return views.supporter_active_since(self._views(), principal.sub, since)

    def caller_history(self, caller_ref: str, *, purpose: str, principal: Principal,
                       meta: dict[str, str]) -> list[dict[str, Any]]:
        if not self.may_read_history(principal):
            raise Forbidden("Only the coordinator or a supporter on shift may read a "
                            "caller's history.")
        caller = self.get_caller(caller_ref)
        if not caller.consent_to_keep_history:
            raise Forbidden("The caller has not consented to keeping their history.")
        sealed = None if caller.erased else self._seal(caller.id, purpose)
        caller.read_history(purpose=sealed, meta=meta)
        self.save(caller)  # the read itself is recorded before anything is shown
        rows = views.contacts_of_caller(self._views(), caller.id)
        return [self.contact_row_view(r, include_summary=True) for r in rows]

    def erase_caller(self, caller_ref: str, meta: dict[str, str]) -> Caller:
        """Record the erasure, then destroy the key and the phone hashes. Idempotent: if a
        crash fell between the two, asking again finishes the shredding."""
        caller = self.get_caller(caller_ref)
        if not caller.erased:
            caller.erase(meta=meta)
            self.save(caller)  # a lost race is a 409 here, before anything is destroyed
        with self.engine.begin() as conn:
            self.keys.erase(str(caller.id), conn)
            self.phones.erase_subject(str(caller.id), conn)
        return caller

    # ------------------------------------------------------------------- contacts
    def log_contact(self, *, channel: str, started_at: datetime, issues: list[str],
                    meta: dict[str, str], direction: str = "inbound",
                    ended_at: datetime | None = None, caller_ref: str | None = None,
                    shift_id: UUID | None = None, supporter_ids: Sequence[str] = (),
                    caller_is: str | None = None, summary: str | None = None,
                    signposted_to: Sequence[UUID] = (), follow_up_by: datetime | None = None,
                    follow_up_what: str | None = None, distressing: bool = False,
                    answered: bool = True, phone: str | None = None) -> Contact:
        contact_id = uuid.uuid4()
        caller: Caller | None = None
        if caller_ref is not None:
            caller = self._named_caller(caller_ref)
        number: str | None = None
        if phone is not None:
            number = normalise_uk_phone(phone)
            if caller is None:
                known = self.phones.find(number)
                if known is not None:
                    candidate: object = self.repository.get(UUID(known))
                    assert isinstance(candidate, Caller)
                    caller = None if candidate.erased else candidate
        if caller is not None and caller.erased:
            raise InvalidCommand("caller_ref", "this caller's personal data was erased")
        unknown = (views.missing_directory_entries(self._views(), list(signposted_to))
                   if signposted_to else [])
        if unknown:
            raise InvalidCommand("signposted_to", f"no directory entry {unknown[0]}")
        subject = caller.id if caller is not None else contact_id
        contact = Contact.log(
            id=contact_id, channel=channel, direction=direction, started_at=started_at,
            ended_at=ended_at, issues=issues, caller_id=caller.id if caller else None,
            caller_ref=caller.caller_ref if caller else None,
            age_band=caller.age_band if caller else None,
            gender=caller.gender if caller else None, shift_id=shift_id,
            supporter_ids=list(supporter_ids), caller_is=caller_is,
            summary=self._seal(subject, summary),
            signposted_to=[str(s) for s in signposted_to], follow_up_by=follow_up_by,
            follow_up_what=self._seal(subject, follow_up_what), distressing=distressing,
            answered=answered, phone=self._seal(subject, number),
            number_known=number is not None or (caller is not None and caller.phone is not None),
            meta=meta, skew=self.clock_skew,
        )
        self.save(contact)
        return contact

    def get_contact(self, contact_id: UUID) -> Contact:
        return self.load(contact_id, Contact, "contact")

    def _subject(self, contact: Contact) -> UUID:
        return contact.caller_id or contact.id

    def _mutate(self, contact_id: UUID, expected_version: int | None) -> Contact:
        contact = self.get_contact(contact_id)
        check_expected_version(contact.version, expected_version)
        return contact

    def correct_contact(self, contact_id: UUID, *, reason: str, meta: dict[str, str],
                        issues: list[str] | None, ended_at: datetime | None,
                        expected_version: int | None = None) -> Contact:
        contact = self._mutate(contact_id, expected_version)
        sealed = self._seal(self._subject(contact), reason.strip()) if reason.strip() else reason
        contact.correct(reason=sealed or "", issues=issues, ended_at=ended_at, meta=meta,
                        skew=self.clock_skew)
        # A concurrent save of the same contact makes this raise IntegrityError: a 409.
        self.save(contact)
        return contact

    def assess_risk(self, contact_id: UUID, *, level: str, factors: str | None,
                    protective_factors: str | None, decision: str, reasoning: str | None,
                    meta: dict[str, str], expected_version: int | None = None) -> Contact:
        contact = self._mutate(contact_id, expected_version)
        s = self._subject(contact)
        contact.assess_risk(level=level, factors=self._seal(s, factors),
                            protective_factors=self._seal(s, protective_factors),
                            decision=self._seal(s, decision) or "",
                            reasoning=self._seal(s, reasoning), meta=meta)
        self.save(contact)
        return contact

    def escalate(self, contact_id: UUID, *, kind: str, reason: str, reference: str | None,
                 meta: dict[str, str], expected_version: int | None = None) -> Contact:
        contact = self._mutate(contact_id, expected_version)
        s = self._subject(contact)
        contact.escalate(kind=kind, reason=self._seal(s, reason) or "",
                         reference=self._seal(s, reference), meta=meta)
        self.save(contact)
        return contact

    def close_contact(self, contact_id: UUID, *, no_escalation_reason: str | None,
                      meta: dict[str, str], expected_version: int | None = None) -> Contact:
        contact = self._mutate(contact_id, expected_version)
        contact.close(no_escalation_reason=self._seal(self._subject(contact),
                                                      no_escalation_reason), meta=meta)
        self.save(contact)
        return contact

    def complete_follow_up(self, contact_id: UUID, n: int, *, outcome: str | None,
                           meta: dict[str, str],
                           expected_version: int | None = None) -> Contact:
        contact = self._mutate(contact_id, expected_version)
        try:
            contact.complete_follow_up(n=n, outcome=self._seal(self._subject(contact), outcome),
                                       meta=meta)
        except LookupError as e:
            raise NotFound(str(e)) from None
        self.save(contact)
        return contact

    def contact_view(self, contact: Contact, *, include_personal: bool) -> dict[str, Any]:
        reveal = self.keys.reveal if include_personal else (lambda _t: None)
        return {
            "id": contact.id,
            "channel": contact.channel,
            "direction": contact.direction,
            "answered": contact.answered,
            "caller_ref": contact.caller_ref,
            "shift_id": contact.shift_id,
            "supporter_ids": contact.supporter_ids,
            "started_at": contact.started_at,
            "ended_at": contact.ended_at,
            "issues": contact.issues,
            "caller_is": contact.caller_is,
            "signposted_to": contact.signposted_to,
            "summary": reveal(contact.summary),
            "risk_level": contact.risk_level,
            "risk_trail": [
                {**{k: v for k, v in r.items() if k not in {"factors", "protective_factors",
                                                            "decision", "reasoning"}},
                 "factors": reveal(r["factors"]),
                 "protective_factors": reveal(r["protective_factors"]),
                 "decision": reveal(r["decision"]), "reasoning": reveal(r["reasoning"])}
                for r in contact.risk_trail
            ],
            "escalations": [
                {**{k: v for k, v in e.items() if k not in {"reason", "reference"}},
                 "reason": reveal(e["reason"]), "reference": reveal(e["reference"])}
                for e in contact.escalations
            ],
            "follow_ups": [
                {**{k: v for k, v in f.items() if k not in {"what", "outcome"}},
                 "what": reveal(f["what"]), "outcome": reveal(f["outcome"])}
                for f in contact.follow_ups
            ],
            "distressing": contact.debrief_requested,
            "closed": contact.closed,
            "logged_by": contact.logged_by,
            "corrections": contact.corrections,
            "version": contact.version,
        }

    def sees_personal(self, principal: Principal, supporter_ids: Sequence[str]) -> bool:
        """Who sees summaries and other free text: the coordinator, and the supporters
        who handled the contact. Auditors see coded fields only."""
        if principal.role == Role.COORDINATOR:
            return True
        return principal.role == Role.SUPPORTER and principal.sub in supporter_ids

    def contact_row_view(self, row: Any, *, include_summary: bool) -> dict[str, Any]:
        return views.row_to_dict(row, self.keys.reveal if include_summary else None)

    def list_contacts(self, principal: Principal, *, caller_ref: str | None,
                      start: datetime | None, end: datetime | None, limit: int,
                      cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        caller_id = caller_id_for(caller_ref) if caller_ref else None
        rows, next_cursor = views.list_contacts(self._views(), caller_id=caller_id, start=start,
                                                end=end, limit=limit, cursor=cursor)
        return [
            self.contact_row_view(
                r, include_summary=self.sees_personal(principal, views.supporters_of(r))
            )
            for r in rows
        ], next_cursor

    def follow_ups_due(self, due_before: datetime, limit: int, cursor: str | None = None
                       ) -> tuple[list[dict[str, Any]], str | None]:
        return views.follow_ups_due(self._views(), due_before, limit, cursor)

    # ------------------------------------------------------------------- referrals
    def receive_referral(self, *, received_at: datetime | None, source: str,
                         referrer_organisation: str | None, caller_ref: str | None,
                         new_caller: NewCaller | None, reason: str | None,
                         consent_to_contact: bool, meta: dict[str, str]) -> Referral:
        if consent_to_contact is not True:
            raise InvalidCommand("consent_to_contact",
                                 "a referral needs the person's consent to be contacted")
        if (caller_ref is None) == (new_caller is None):
            raise InvalidCommand("caller_ref", "give either caller_ref or a new caller")
        def referral_for(caller: Caller) -> Referral:
            if caller.erased:
                raise InvalidCommand("caller_ref", "this caller's personal data was erased")
            return Referral.receive(
                received_at=received_at or datetime.now(UTC), source=source,
                referrer_organisation=referrer_organisation, caller_id=caller.id,
                caller_ref=caller.caller_ref, reason=self._seal(caller.id, reason),
                consent_to_contact=consent_to_contact, meta=meta, skew=self.clock_skew,
            )

        if caller_ref is not None:
            referral = referral_for(self._named_caller(caller_ref))
            self.save(referral)
            return referral
        made: list[Referral] = []

        def both(caller: Caller) -> list[Any]:
            made.append(referral_for(caller))
            return [caller, made[0]]

        self._registering(new_caller or NewCaller(), meta, both)
        return made[0]

    def get_referral(self, referral_id: UUID) -> Referral:
        return self.load(referral_id, Referral, "referral")

    def decide_referral(self, referral_id: UUID, *, accept: bool, reason: str,
                        meta: dict[str, str], expected_version: int | None) -> Referral:
        referral = self.get_referral(referral_id)
        check_expected_version(referral.version, expected_version)
        referral.decide(accept=accept, reason=self._seal(referral.caller_id, reason) or "",
                        meta=meta)
        self.save(referral)
        return referral

    def referral_view(self, referral: Referral) -> dict[str, Any]:
        return {
            "id": referral.id,
            "received_at": referral.received_at,
            "source": referral.source,
            "referrer_organisation": referral.referrer_organisation,
            "caller_ref": referral.caller_ref,
            "reason": self.keys.reveal(referral.reason),
            "status": referral.status,
            "outcome_reason": self.keys.reveal(referral.outcome_reason),
            "decided_by": referral.decided_by,
            "version": referral.version,
        }

    def list_referrals(self, status: str | None, limit: int, cursor: str | None = None
                       ) -> tuple[list[Referral], str | None]:
        ids, next_cursor = views.referral_ids(self._views(), status, limit, cursor)
        return [self.load(rid, Referral, "referral") for rid in ids], next_cursor

    # ------------------------------------------------------------------- directory
    def add_directory_entry(self, fields: dict[str, Any], meta: dict[str, str]) -> DirectoryEntry:
        entry = DirectoryEntry.add(**fields, meta=meta)
        self.save(entry)
        return entry

    def get_directory_entry(self, entry_id: UUID) -> DirectoryEntry:
        entry = self.load(entry_id, DirectoryEntry, "directory entry")
        if entry.removed:
            raise NotFound("No such directory entry.")
        return entry

    def update_directory_entry(self, entry_id: UUID, fields: dict[str, Any],
                               meta: dict[str, str],
                               expected_version: int | None) -> DirectoryEntry:
        entry = self.get_directory_entry(entry_id)
        check_expected_version(entry.version, expected_version)
        entry.update(**fields, meta=meta)
        self.save(entry)
        return entry

    def remove_directory_entry(self, entry_id: UUID, meta: dict[str, str],
                               expected_version: int | None) -> None:
        entry = self.get_directory_entry(entry_id)
        check_expected_version(entry.version, expected_version)
        entry.remove(meta=meta)
        self.save(entry)

    def search_directory(self, need: str | None, open_at: datetime | None, limit: int,
                         cursor: str | None = None
                         ) -> tuple[list[dict[str, Any]], str | None]:
        entries = views.directory(self._views(), need)
        if open_at is not None:
            local = open_at.astimezone(LONDON)
            entries = [e for e in entries if is_open(e["opening_hours"], local)]
        return views.page_by_name(entries, limit, cursor)

    # =========================================================================== texts
    # A text conversation is a Contact with channel=text and a thread of messages. The
    # SMS provider's webhook brings messages in (``receive_text``); supporters reply
    # through the ``SmsSender`` adapter chosen by settings (``reply_text``). Bodies and
    # numbers are sealed with the caller's key before anything is stored, and never
    # logged. Texting the line in is opting in to replies in that conversation: a new
    # caller registered from an inbound text has ``consent_to_text`` true (and
    # ``consent_to_keep_history`` false); a known caller's recorded consent is left as
    # it is (a supporter records a change with PATCH /contact/callers/{ref}).

    SMS_ACTOR = "sms-provider"  # `actor` of what the provider's webhook records
    TEXT_SAVE_ATTEMPTS = 5

    sms_sender: SmsSender
    sms_auth_token: str
    inbound_texts: InboundLedger

    def _bind_texts(self, settings: Settings) -> None:
        self.inbound_texts = InboundLedger(self.engine)
        self._texts_lock = threading.Lock()  # one inbound text at a time finds its thread
        if settings.sms_provider == "twilio":
            if not (settings.sms_auth_token and settings.sms_account_sid
                    and settings.sms_from_number):
                raise ValueError("sms_provider=twilio needs SOLIDARITY_SMS_AUTH_TOKEN, "
                                 "SOLIDARITY_SMS_ACCOUNT_SID and SOLIDARITY_SMS_FROM_NUMBER")
            self.sms_auth_token = settings.sms_auth_token
            self.sms_sender = TwilioSmsSender(settings.sms_account_sid,
                                              settings.sms_auth_token, settings.sms_from_number)
        else:
            self.sms_auth_token = settings.sms_auth_token or settings.secret("sms-auth-token")
            self.sms_sender = OutboxSmsSender(self.engine, self.keys, self.phones.find)

    def receive_text(self, *, message_sid: str, from_number: str, body: str,
                     correlation_id: str | None = None) -> tuple[UUID, bool]:
        """An inbound text from the provider's webhook: find or register the caller by
        the number's keyed hash, append to their open text conversation or open one.
        Returns (contact id, replayed?): a MessageSid taken before creates nothing."""
        try:
            number = normalise_uk_phone(from_number)
        except InvalidCommand:
            raise InvalidCommand("From", "is not a UK phone number") from None
        try:
            self.inbound_texts.reserve(message_sid)
        except AlreadyTaken as taken:
            if taken.contact_id is None:
                raise Conflict("This message is being recorded by another request; "
                               "try again shortly.") from None
            return UUID(taken.contact_id), True
        try:
            with self._texts_lock:
                contact = self._append_inbound_text(
                    number, body, command_meta(self.SMS_ACTOR, correlation_id))
        except BaseException:
            self.inbound_texts.release(message_sid)
            raise
        self.inbound_texts.done(message_sid, str(contact.id))
        return contact.id, False

    def _caller_for_number(self, number: str, meta: dict[str, str]) -> Caller:
        for _ in range(2):
            subject = self.phones.find(number)
            if subject is not None:
                known: object = self.repository.get(UUID(subject))
                assert isinstance(known, Caller)
                if not known.erased:
                    return known
            try:
                return self.register_caller(
                    NewCaller(phone=number, consent_to_text=True,
                              consent_to_keep_history=False), meta)
            except Conflict:
                continue  # registered by another request meanwhile: find them
        raise Conflict("This number is being registered by another request; try again.")

    def open_text_thread_of(self, caller_id: UUID) -> Contact | None:
        """The caller's latest text conversation that is not closed, if any."""
        for row in views.contacts_of_caller(self._views(), caller_id):  # newest first
            if row.channel == "text" and not row.closed:
                return self.get_contact(UUID(row.contact_id))
        return None

    def _append_inbound_text(self, number: str, body: str, meta: dict[str, str]) -> Contact:
        caller = self._caller_for_number(number, meta)
        now = datetime.now(UTC)
        sealed = self._seal(caller.id, body)
        assert sealed is not None
        for attempt in range(self.TEXT_SAVE_ATTEMPTS):
            contact = self.open_text_thread_of(caller.id)
            if contact is None:
                contact = Contact.open_text_thread(
                    caller_id=caller.id, caller_ref=caller.caller_ref,
                    age_band=caller.age_band, gender=caller.gender, started_at=now, meta=meta)
            contact.receive_message(body=sealed, at=now, meta=meta)
            try:
                self.save(contact)
                return contact
            except IntegrityError:  # a reply was saved meanwhile: reload and append again
                if attempt + 1 == self.TEXT_SAVE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _text_caller(self, contact: Contact) -> Caller | None:
        if contact.caller_id is None:
            return None
        return self.load(contact.caller_id, Caller, "caller")

    def reply_text(self, contact_id: UUID, *, body: str,
                   meta: dict[str, str]) -> tuple[Contact, int]:
        """Send a reply through the SMS adapter and record it (MessageSent with the
        provider's reference). Refused, before anything is sent, unless the caller
        consented to texts and is not erased. Returns the contact and the message's n."""
        contact = self.get_contact(contact_id)
        caller = self._text_caller(contact)
        consents = caller is not None and caller.consent_to_text and not caller.erased
        contact.check_can_send_message(caller_consents=consents)
        assert caller is not None
        number = self.keys.open(caller.phone)
        if number is None:
            raise RuleBroken("the caller has no phone number to text")
        ref = self.sms_sender.send(number, body)
        # The text has gone: record it, even if the conversation changed meanwhile.
        now = datetime.now(UTC)
        sealed = self._seal(caller.id, body)
        assert sealed is not None
        for attempt in range(self.TEXT_SAVE_ATTEMPTS):
            contact.send_message(body=sealed, at=now, provider_ref=ref,
                                 caller_consents=consents, meta=meta)
            try:
                self.save(contact)
                return contact, len(contact.messages)
            except IntegrityError:
                if attempt + 1 == self.TEXT_SAVE_ATTEMPTS:
                    raise
                contact = self.get_contact(contact_id)
        raise AssertionError("unreachable")

    def text_thread(self, contact_id: UUID) -> dict[str, Any]:
        """A text conversation's messages in order, bodies opened (``[erased]`` after
        erasure). Outbound messages say whether they went to the provider or, in
        embedded mode, only to the outbox."""
        contact = self.get_contact(contact_id)
        if contact.channel != "text":
            raise NotFound("No such text conversation.")
        caller = self._text_caller(contact)
        return {
            "contact_id": contact.id,
            "caller_ref": contact.caller_ref,
            "started_at": contact.started_at,
            "closed": contact.closed,
            "can_reply": caller is not None and caller.consent_to_text and not caller.erased,
            "messages": [
                {
                    "n": n,
                    "direction": m["direction"],
                    "at": m["at"],
                    "body": self.keys.reveal(m["body"]),
                    "by": m["by"],
                    "provider_ref": m["provider_ref"],
                    "delivery": None if m["direction"] == "inbound"
                    else "outbox" if str(m["provider_ref"]).startswith("outbox-")
                    else "provider",
                }
                for n, m in enumerate(contact.messages, start=1)
            ],
            "version": contact.version,
        }
