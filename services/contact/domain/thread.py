"""What a text conversation does besides being a contact: take the caller's messages
and send replies, be claimed, released and handed over, and reopen for a caller who
texts again soon after it closed. The commands live here; the older events
(``MessageReceived``, ``MessageSent``, ``Reopened``) stay on ``Contact``, whose stored
topics name them; the claim's events (``Claimed``, ``Released``, ``HandedOver``) are
this module's. No I/O here.

A claim says who is answering a thread now: at most one claimant, who counts among
its handlers (``supporter_ids``) so that they see its free text like a named
supporter. Closing a thread ends its claim; a reopened thread is unclaimed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from services.contact.domain.caller import Caller
from services.contact.domain.codes import Channel
from services.contact.domain.rota import OnShiftWindow, Rota, supporter_key
from services.contact.domain.values import record_time
from shared.kernel import (
    Aggregate,
    Conflicting,
    InvalidCommand,
    NotPermitted,
    RuleBroken,
    require_sealed,
)

UNCLAIMED, OPEN, CLOSED = "unclaimed", "open", "closed"  # a thread's status


# ------------------------------------------------------------------------ events


class Claimed(Aggregate.Event):
    """``by`` took the thread. ``handler``: they join its ``supporter_ids`` (a
    supporter; not the coordinator, who sees every thread's free text anyway)."""

    by: str
    handler: bool
    meta: dict[str, str]

    def apply(self, aggregate: Any) -> None:
        aggregate.claimed_by = self.by
        if self.handler and self.by not in aggregate.supporter_ids:
            aggregate.supporter_ids.append(self.by)


class Released(Aggregate.Event):
    """The claim of ``claimant`` ended: released by them or the coordinator, or the
    thread closed (``meta`` says who acted)."""

    claimant: str
    meta: dict[str, str]

    def apply(self, aggregate: Any) -> None:
        aggregate.claimed_by = None


class HandedOver(Aggregate.Event):
    """The thread passed from ``claimant`` (None: it was unclaimed) to ``to``, a
    supporter on shift, who joins its ``supporter_ids``."""

    claimant: str | None
    to: str
    meta: dict[str, str]

    def apply(self, aggregate: Any) -> None:
        aggregate.claimed_by = self.to
        if self.to not in aggregate.supporter_ids:
            aggregate.supporter_ids.append(self.to)


class TextThreadCommands:
    """Mixed into ``Contact``: the commands of a text conversation."""

    claimed_by: str | None = None  # set by the claim's events; none before any

    if TYPE_CHECKING:
        id: uuid.UUID
        channel: str
        caller_id: uuid.UUID | None
        messages: list[dict[str, Any]]
        supporter_ids: list[str]
        started_at: datetime
        closed: bool

        def trigger_event(self, event_class: Any, **kwargs: Any) -> None: ...

        def _reopened(self) -> None: ...

        def _message_received(self, *, body: str | None, at: datetime) -> None: ...

        def _message_sent(self, *, body: str | None, at: datetime,
                          provider_ref: str) -> None: ...

    def receive_message(self, *, body: str, at: datetime, now: datetime | None = None) -> None:
        if self.channel != Channel.TEXT:
            raise RuleBroken("only a text conversation takes messages")
        self._message_received(body=require_sealed("body", body),
                               at=record_time("at", at, now or datetime.now(UTC)))

    def check_can_send_message(self, caller: Caller | None) -> None:
        """Texts go only to a known caller who consented to them and was not erased. The
        application asks this before the provider sends anything; ``send_message`` asks
        it again."""
        if self.channel != Channel.TEXT:
            raise RuleBroken("only a text conversation can be replied to by text")
        if self.caller_id is None or caller is None or caller.id != self.caller_id:
            raise RuleBroken("this text conversation has no known caller to reply to")
        if not caller.may_receive_texts:
            raise RuleBroken("the caller has not consented to receiving texts")

    def send_message(self, *, body: str, at: datetime, provider_ref: str,
                     caller: Caller | None, now: datetime | None = None) -> None:
        self.check_can_send_message(caller)
        self._message_sent(body=require_sealed("body", body),
                           at=record_time("at", at, now or datetime.now(UTC)),
                           provider_ref=provider_ref)

    # -- status, claims ------------------------------------------------------------------
    @property
    def status(self) -> str:
        """``closed``; ``open`` (claimed, not closed); ``unclaimed`` (neither)."""
        if self.closed:
            return CLOSED
        return OPEN if self.claimed_by is not None else UNCLAIMED

    def _check_text_thread(self) -> None:
        if self.channel != Channel.TEXT:
            raise RuleBroken("only a text conversation can be claimed, released or "
                             "handed over")

    def _check_not_closed(self, doing: str) -> None:
        if self.closed:
            raise RuleBroken(f"the text conversation is closed: it cannot be {doing}")

    def claim(self, *, by: str, handler: bool) -> bool:
        """``by`` takes the thread (whoever may answer threads: the application asks).
        Claiming what ``by`` already holds records nothing (False); held by another is
        Conflicting, naming them. ``handler``: ``by`` is a supporter, who joins the
        thread's ``supporter_ids``."""
        self._check_text_thread()
        self._check_not_closed("claimed")
        if self.claimed_by == by:
            return False
        if self.claimed_by is not None:
            raise Conflicting(f"This text conversation is taken: claimed by "
                              f"{self.claimed_by}.")
        self.trigger_event(Claimed, by=by, handler=handler)
        return True

    def release(self, *, by: str, coordinator: bool) -> bool:
        """The claimant, or the coordinator, gives the thread up. The coordinator
        releasing an unclaimed thread records nothing (False)."""
        self._check_text_thread()
        self._check_not_closed("released (closing ended its claim)")
        if self.claimed_by != by and not coordinator:
            raise NotPermitted("Only the claimant of this text conversation or the "
                               "coordinator may release it.")
        if self.claimed_by is None:
            return False
        self.trigger_event(Released, claimant=self.claimed_by)
        return True

    def hand_over(self, *, to: str, by: str, coordinator: bool, rota: Rota,
                  window: OnShiftWindow, now: datetime) -> bool:
        """The claimant, or the coordinator (also of an unclaimed thread), passes the
        thread to ``to``: a supporter on shift at ``now`` on the ``rota``. Handing it to
        whoever holds it records nothing (False)."""
        self._check_text_thread()
        self._check_not_closed("handed over")
        if not coordinator and self.claimed_by != by:
            raise NotPermitted("Only the claimant of this text conversation or the "
                               "coordinator may hand it over.")
        key = supporter_key(to)
        if key is None:
            raise InvalidCommand("to", "is not a supporter id (the UUID the shift service "
                                 "gave the supporter)")
        if not rota.on_shift(key, now, window):
            raise InvalidCommand("to", "is not a supporter on shift now (assigned to a "
                                 f"shift on the rota, {window.describe()})")
        if self.claimed_by == key:
            return False
        self.trigger_event(HandedOver, claimant=self.claimed_by, to=key)
        return True

    def end_claim(self) -> None:
        """Closing ends the claim (``Contact.close``)."""
        if self.claimed_by is not None:
            self.trigger_event(Released, claimant=self.claimed_by)

    # -- reopening -------------------------------------------------------------------------
    def last_message_at(self) -> datetime:
        """When the caller or a supporter last wrote (its start, before any message)."""
        return max((m["at"] for m in self.messages), default=self.started_at)

    def reopens_for(self, at: datetime, window: timedelta) -> bool:
        """A closed text thread whose last message is at most ``window`` before ``at``:
        the caller texting again then continues it (``reopen_for_text``)."""
        return (self.channel == Channel.TEXT and self.closed and window > timedelta(0)
                and at - self.last_message_at() <= window)

    def reopen_for_text(self, *, at: datetime, window: timedelta) -> None:
        """Reopen (``Contact.Reopened``), unclaimed (closing ended the claim), for a new
        text from the caller within ``window`` of the last message."""
        if not self.reopens_for(at, window):
            raise RuleBroken("only a closed text conversation whose last message is "
                             "recent reopens for a new text")
        self._reopened()
