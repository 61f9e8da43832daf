"""Ringing a missed call back: showing its number (with a stated purpose, recorded),
placing a call-back through the call provider (recorded, without the numbers), and
the contact that answers it (``responds_to``), which completes its call-back
follow-up. The commands are mixed into ``Contact``; their events are explicit classes
of this module. No I/O here.

Who may: while the missed call's call-back follow-up is open, a supporter on shift
(the application checks "on shift"); the coordinator at any time.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from services.contact.domain.caller import Caller
from services.contact.domain.codes import FollowUpKind
from services.contact.domain.values import record_time
from shared.kernel import Aggregate, InvalidCommand, NotPermitted, RuleBroken, require_sealed


class NumberRevealed(Aggregate.Event):
    """Someone was shown a missed call's number, for ``purpose`` (sealed)."""

    purpose: str | None
    meta: dict[str, str]

    def apply(self, aggregate: Any) -> None:
        aggregate.number_reveals = getattr(aggregate, "number_reveals", 0) + 1


class CallBackPlaced(Aggregate.Event):
    """The call provider took a call-back of this missed call: it rings the supporter's
    own phone, then the caller. Neither number is recorded."""

    n: int
    placed_at: datetime
    provider_ref: str
    meta: dict[str, str]

    def apply(self, aggregate: Any) -> None:
        placed = {"n": self.n, "placed_at": self.placed_at,
                  "placed_by": self.meta.get("actor", ""), "provider_ref": self.provider_ref}
        aggregate.call_backs_placed = [*getattr(aggregate, "call_backs_placed", []), placed]


class CallBackAnswered(Aggregate.Event):
    """Follow-up ``n`` (a call-back) was done by the contact ``contact_id`` (logged with
    ``responds_to`` naming this missed call). Recorded with its ``FollowUpCompleted``."""

    n: int
    contact_id: uuid.UUID
    meta: dict[str, str]

    def apply(self, aggregate: Any) -> None:
        aggregate.follow_ups[self.n - 1]["answered_by"] = self.contact_id


def called_back_note(contact_id: uuid.UUID) -> str:
    """The outcome recorded (sealed) on a call-back follow-up a contact completed."""
    return f"called back: contact {contact_id}"


class RingBackCommands:
    """Mixed into ``Contact``: ringing a missed call back."""

    if TYPE_CHECKING:
        id: uuid.UUID
        answered: bool
        phone: str | None
        caller_id: uuid.UUID | None
        follow_ups: list[dict[str, Any]]

        def trigger_event(self, event_class: Any, **kwargs: Any) -> None: ...

        def complete_follow_up(self, *, n: int, outcome: str | None,
                               now: datetime | None = None) -> None: ...

    @property
    def call_backs(self) -> list[dict[str, Any]]:
        """The call-backs placed, in order (kept by ``CallBackPlaced``)."""
        return list(getattr(self, "call_backs_placed", []))

    @property
    def open_call_back(self) -> int | None:
        """The n of this missed call's call-back follow-up while it is open, else None."""
        if self.answered:
            return None
        for f in self.follow_ups:
            if f["kind"] == FollowUpKind.CALL_BACK and f["completed_at"] is None:
                return int(f["n"])
        return None

    def check_ring_back(self, *, caller: Caller | None, any_time: bool) -> None:
        """Whether this contact's number may be shown, or a call-back placed: a missed
        call whose number is known (its own, or its caller's) and not erased; while its
        call-back follow-up is open, or at any time for the coordinator (``any_time``)."""
        if self.answered:
            raise RuleBroken("only a missed call is rung back: this contact was answered")
        if caller is not None and caller.erased:
            raise RuleBroken("the caller's personal data was erased: their number is gone")
        if self.phone is None and (caller is None or caller.phone is None):
            raise RuleBroken("no number is on record for this missed call")
        if not any_time and self.open_call_back is None:
            raise NotPermitted("This missed call's call-back follow-up is complete: only "
                               "the coordinator may ring it back now.")

    def reveal_number(self, *, purpose: str | None, caller: Caller | None,
                      any_time: bool) -> None:
        """Record that someone was shown the number, and why (before it is shown)."""
        self.check_ring_back(caller=caller, any_time=any_time)
        if purpose is None:
            raise InvalidCommand("purpose", "say why the number is needed")
        self.trigger_event(NumberRevealed, purpose=require_sealed("purpose", purpose))

    def record_call_back(self, *, placed_at: datetime, provider_ref: str,
                         now: datetime | None = None) -> int:
        """Record a call-back the provider took (checked with ``check_ring_back`` before
        it was placed; a call placed is always recorded). Returns its n."""
        if self.answered:
            raise RuleBroken("only a missed call is rung back: this contact was answered")
        if not provider_ref:
            raise InvalidCommand("provider_ref", "a placed call has the provider's reference")
        n = len(self.call_backs) + 1
        self.trigger_event(CallBackPlaced, n=n, provider_ref=provider_ref,
                           placed_at=record_time("placed_at", placed_at,
                                                 now or datetime.now(UTC)))
        return n

    def check_answerable_by(self, caller_id: uuid.UUID | None) -> None:
        """A contact may say it ``responds_to`` this one only if this is a missed call,
        of the same caller when both name one."""
        if self.answered:
            raise InvalidCommand("responds_to", "is not a missed call")
        if caller_id is not None and self.caller_id is not None and caller_id != self.caller_id:
            raise InvalidCommand("responds_to", "is a missed call from another caller")

    def answered_by(self, contact_id: uuid.UUID, *, caller_id: uuid.UUID | None,
                    outcome: str | None, now: datetime | None = None) -> int | None:
        """The contact ``contact_id`` rang this missed call back and got through: its open
        call-back follow-up is completed (with ``outcome``, sealed) and records which
        contact answered it. Returns the follow-up's n, or None if none was open."""
        self.check_answerable_by(caller_id)
        n = self.open_call_back
        if n is None:
            return None
        self.complete_follow_up(n=n, outcome=outcome, now=now)
        self.trigger_event(CallBackAnswered, n=n, contact_id=contact_id)
        return n
