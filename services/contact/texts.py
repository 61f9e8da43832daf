"""Text conversations: the contact service's texts use cases.

A text conversation is a Contact with channel=text and a thread of messages. The SMS
provider's webhook brings messages in (``receive``); supporters reply through the
provider chosen by settings (``reply``). Bodies and numbers are sealed with the
caller's key before anything is stored, and never logged. Texting the line in is
opting in to replies in that conversation: a new caller registered from an inbound
text has ``consent_to_text`` true (and ``consent_to_keep_history`` false); a known
caller's recorded consent is left as it is (a supporter records a change with
PATCH /contact/callers/{ref}). A text that opens a conversation is routed to the
supporters on call when it arrives (the rota's shift on then: they are its
``supporter_ids``); the coordinator, and a supporter on shift, read and answer threads.

The inbox (``inbox.py``, a read model of these events) lists the threads, newest
message first. A supporter on shift (or the coordinator) claims a thread to answer it,
and releases it or hands it over to another supporter on shift; closing ends the claim.
A caller who texts again within ``SOLIDARITY_TEXT_REOPEN_WINDOW_H`` hours of a closed
thread's last message continues it (reopened, unclaimed); later, a new thread opens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from services.contact import inbox, rota
from services.contact import read_model as views
from services.contact.domain import Caller, Contact, NewCaller
from shared.kernel import Conflicting, InvalidCommand, NotKnown, RuleBroken, acting
from shared.privacy import normalise_uk_phone
from shared.sms import AlreadyTaken, InboundLedger, SmsProvider, SmsSender
from shared.web.auth import Role

if TYPE_CHECKING:
    from services.contact.app import ContactApplication
    from shared.web.auth import Principal

SMS_ACTOR = "sms-provider"  # `actor` of what the provider's webhook records
THREADS = "read and answer text conversations"
TEXT_SAVE_ATTEMPTS = 5


class Texts:
    """The texts use cases of one contact application."""

    sender: SmsSender  # replaceable (tests put a refusing provider here)

    def __init__(self, app: ContactApplication, provider: SmsProvider) -> None:
        self.app = app
        self.sender = provider.sender
        self.auth_token = provider.auth_token
        self.inbound = InboundLedger(app.engine)
        self._lock = threading.Lock()  # one inbound text at a time finds its thread

    def receive(self, *, message_sid: str, from_number: str, body: str,
                     correlation_id: str | None = None) -> tuple[UUID, bool]:
        """An inbound text from the provider's webhook: find or register the caller by
        the number's keyed hash, append to their open text conversation or open one.
        Returns (contact id, replayed?): a MessageSid taken before creates nothing."""
        try:
            number = normalise_uk_phone(from_number)
        except InvalidCommand:
            raise InvalidCommand("From", "is not a UK phone number") from None
        try:
            self.inbound.reserve(message_sid)
        except AlreadyTaken as taken:
            if taken.contact_id is None:
                raise Conflicting("This message is being recorded by another request; "
                               "try again shortly.") from None
            return UUID(taken.contact_id), True
        try:
            with self._lock, acting(SMS_ACTOR, correlation_id):
                contact = self._append_inbound(number, body)
        except BaseException:
            self.inbound.release(message_sid)
            raise
        self.inbound.done(message_sid, str(contact.id))
        return contact.id, False

    def _caller_for_number(self, number: str) -> Caller:
        for _ in range(2):
            subject = self.app.phones.find(number)
            if subject is not None:
                known: object = self.app.repository.get(UUID(subject))
                assert isinstance(known, Caller)
                if not known.erased:
                    return known
            try:
                return self.app.register_caller(
                    NewCaller(phone=number, consent_to_text=True,
                              consent_to_keep_history=False))
            except Conflicting:
                continue  # registered by another request meanwhile: find them
        raise Conflicting("This number is being registered by another request; try again.")

    @property
    def reopen_window(self) -> timedelta:
        return timedelta(hours=self.app.settings.text_reopen_window_h)

    def open_thread_of(self, caller_id: UUID, at: datetime) -> Contact | None:
        """The caller's latest text conversation if it is not closed, or closed with its
        last message within the reopen window before ``at`` (then reopened here,
        unsaved); None if a new one must open."""
        for row in views.contacts_of_caller(self.app._views(), caller_id):  # newest first
            if row.channel == "text":
                contact = self.app.get_contact(UUID(row.contact_id))
                if not contact.closed:
                    return contact
                if contact.reopens_for(at, self.reopen_window):
                    contact.reopen_for_text(at=at, window=self.reopen_window)
                    return contact
                return None
        return None

    def _append_inbound(self, number: str, body: str) -> Contact:
        caller = self._caller_for_number(number)
        now = datetime.now(UTC)
        sealed = self.app._seal(caller.id, body)
        assert sealed is not None
        for attempt in range(TEXT_SAVE_ATTEMPTS):
            contact = self.open_thread_of(caller.id, now)
            if contact is None:
                contact = Contact.open_text_thread(
                    caller_id=caller.id, caller_ref=caller.caller_ref,
                    age_band=caller.age_band, gender=caller.gender, started_at=now,
                    rota=rota.on_call(self.app._rota(), now))
            contact.receive_message(body=sealed, at=now)
            try:
                self.app.save(contact)
                return contact
            except IntegrityError:  # a reply was saved meanwhile: reload and append again
                if attempt + 1 == TEXT_SAVE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _text_caller(self, contact: Contact) -> Caller | None:
        if contact.caller_id is None:
            return None
        return self.app.load(contact.caller_id, Caller, "caller")

    def reply(self, contact_id: UUID, *, body: str,
              principal: Principal) -> tuple[Contact, int]:
        """Send a reply through the SMS adapter and record it (MessageSent with the
        provider's reference). Refused, before anything is sent, unless whoever replies
        is on shift (or the coordinator), and the caller consented to texts and is not
        erased. Returns the contact and the message's n."""
        self.app.check_on_shift(principal, THREADS)
        contact = self.app.get_contact(contact_id)
        caller = self._text_caller(contact)
        contact.check_can_send_message(caller)
        assert caller is not None
        number = self.app.keys.open(caller.phone)
        if number is None:
            raise RuleBroken("the caller has no phone number to text")
        ref = self.sender.send(number, body)
        # The text has gone: record it, even if the conversation changed meanwhile.
        now = datetime.now(UTC)
        sealed = self.app._seal(caller.id, body)
        assert sealed is not None
        for attempt in range(TEXT_SAVE_ATTEMPTS):
            contact.send_message(body=sealed, at=now, provider_ref=ref,
                                 caller=caller)
            try:
                self.app.save(contact)
                return contact, len(contact.messages)
            except IntegrityError:
                if attempt + 1 == TEXT_SAVE_ATTEMPTS:
                    raise
                contact = self.app.get_contact(contact_id)
        raise AssertionError("unreachable")

    def thread(self, contact_id: UUID, principal: Principal) -> tuple[Contact, bool]:
        """A text conversation (its messages sealed; the API's presenter opens them) and
        whether a reply may be sent: the caller consented to texts and is not erased.
        Only for the coordinator and the supporters on shift."""
        self.app.check_on_shift(principal, THREADS)
        return self.stored_thread(contact_id)

    def stored_thread(self, contact_id: UUID) -> tuple[Contact, bool]:
        """``thread`` for whoever was already let in (a retried reply's first answer)."""
        contact = self._text_contact(contact_id)
        return contact, self.can_reply(contact)

    def can_reply(self, contact: Contact) -> bool:
        """The caller consented to texts and is not erased."""
        caller = self._text_caller(contact)
        return caller is not None and caller.may_receive_texts

    # -- the inbox and claims ---------------------------------------------------------------
    def inbox(self, principal: Principal, *, status: str | None, limit: int,
              cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """The text conversations, newest message first (``inbox.py``): for the
        coordinator and the supporters on shift."""
        self.app.check_on_shift(principal, THREADS)
        return inbox.list_threads(self.app._views(), status=status,
                                  limit=limit, cursor=cursor)

    def _changing(self, contact_id: UUID, change: Callable[[Contact], bool]) -> Contact:
        """Load the thread, ``change`` it and save what it recorded. A write that saved
        first (another claim, a text) is reloaded and the change asked again: the domain
        then answers for the new state (taken by whoever won: 409)."""
        for attempt in range(TEXT_SAVE_ATTEMPTS):
            contact = self._text_contact(contact_id)
            if not change(contact):
                return contact  # nothing new to record
            try:
                self.app.save(contact)
                return contact
            except IntegrityError:
                if attempt + 1 == TEXT_SAVE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _text_contact(self, contact_id: UUID) -> Contact:
        contact = self.app.get_contact(contact_id)
        if contact.channel != "text":
            raise NotKnown("No such text conversation.")
        return contact

    def claim(self, contact_id: UUID, principal: Principal) -> Contact:
        """A supporter on shift, or the coordinator, takes the thread; a supporter
        joins its handlers. Already theirs: nothing recorded."""
        self.app.check_on_shift(principal, THREADS)
        return self._changing(contact_id, lambda c: c.claim(
            by=principal.sub, handler=principal.role == Role.SUPPORTER))

    def release(self, contact_id: UUID, principal: Principal) -> Contact:
        """The claimant (on shift or not: a shift ending is when a thread is given up)
        or the coordinator gives the thread up."""
        return self._changing(contact_id, lambda c: c.release(
            by=principal.sub, coordinator=principal.role == Role.COORDINATOR))

    def hand_over(self, contact_id: UUID, to: str, principal: Principal) -> Contact:
        """The claimant (on shift or not) or the coordinator passes the thread to
        ``to``, who must be a supporter on shift now (the domain's rule, on the rota)."""
        now = datetime.now(UTC)
        window = self.app.on_shift_window
        known = rota.of_supporter(self.app._rota(), to, now, window)
        return self._changing(contact_id, lambda c: c.hand_over(
            to=to, by=principal.sub, coordinator=principal.role == Role.COORDINATOR,
            rota=known, window=window, now=now))
