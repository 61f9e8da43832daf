"""A contact: one call or text conversation, with its risk trail, escalations,
follow-ups and messages. Free text arrives sealed. No I/O here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from eventsourcing.domain import event

from services.contact.domain.caller import Caller
from services.contact.domain.codes import (
    CALL_BACK_WITHIN,
    CALLER_IS,
    CHANNELS,
    DEFAULT_SKEW,
    DIRECTIONS,
    ESCALATION_KINDS,
    ISSUES,
    RISK_LEVELS,
    Channel,
    Direction,
    FollowUpKind,
    RiskLevel,
)
from services.contact.domain.corrections import CorrectionCommands
from services.contact.domain.ringback import RingBackCommands
from services.contact.domain.rota import NO_ROTA, Rota
from services.contact.domain.thread import TextThreadCommands
from services.contact.domain.values import FollowUp, Meta, actor_of, contact_times, record_time
from shared.kernel import (
    Aggregate,
    InvalidCommand,
    NotKnown,
    RuleBroken,
    one_of,
    require_codes,
    require_sealed,
)


class Contact(CorrectionCommands, TextThreadCommands, RingBackCommands, Aggregate):
    """One call or text conversation, with its risk trail, escalations and follow-ups."""

    @classmethod
    def log(cls, *, channel: str, started_at: datetime, issues: list[str],
            direction: str = "inbound", ended_at: datetime | None = None,
            caller: Caller | None = None, shift_id: uuid.UUID | None = None,
            supporter_ids: list[str] | None = None, caller_is: str | None = None,
            summary: str | None = None, signposted_to: list[str] | None = None,
            follow_up: FollowUp | None = None, distressing: bool = False,
            answered: bool = True, phone: str | None = None, number_known: bool = False,
            responds_to: uuid.UUID | None = None, referral_id: uuid.UUID | None = None,
            now: datetime | None = None, skew: timedelta = DEFAULT_SKEW,
            id: uuid.UUID | None = None, rota: Rota = NO_ROTA) -> Contact:
        """``supporter_ids`` name active supporters of the ``rota``; ``shift_id``, when
        not given, is the rota's shift on at ``started_at``. ``responds_to`` is the
        missed call this one answers; ``referral_id`` the referral it first contacts."""
        now = now or datetime.now(UTC)
        if caller is not None:
            caller.check_can_be_named()
        one_of("channel", channel, CHANNELS)
        one_of("direction", direction, DIRECTIONS)
        if not answered and channel != Channel.PHONE:
            raise InvalidCommand("answered", "only a phone call can be missed")
        started, ended = contact_times(started_at, ended_at, now, skew)
        codes = require_codes("issues", issues, ISSUES, at_least=1 if answered else 0)
        supporters = rota.supporters_named(supporter_ids)
        scheduled = follow_up.scheduled(now) if follow_up is not None else None
        if not answered and number_known and scheduled is None:
            scheduled = {"kind": FollowUpKind.CALL_BACK.value,
                         "due_by": started + CALL_BACK_WITHIN, "what": None}
        contact = cls._create(
            cls.Logged,
            id=id or uuid.uuid4(),
            channel=channel,
            direction=direction,
            started_at=started,
            ended_at=ended,
            issues=codes,
            caller_id=caller.id if caller else None,
            caller_ref=caller.caller_ref if caller else None,
            age_band=caller.age_band if caller else None,
            gender=caller.gender if caller else None,
            shift_id=shift_id if shift_id is not None else rota.shift_at(started),
            supporter_ids=supporters,
            caller_is=one_of("caller_is", caller_is, CALLER_IS, optional=True),
            summary=require_sealed("summary", summary),
            signposted_to=[str(s) for s in (signposted_to or [])],
            answered=answered,
            phone=require_sealed("phone", phone),
            responds_to=responds_to,
            referral_id=referral_id,
        )
        if scheduled is not None:
            contact._follow_up_scheduled(n=1, **scheduled)
        if distressing:
            contact._debrief_requested(supporter_ids=supporters)
        return contact

    @classmethod
    def open_text_thread(cls, *, caller_id: uuid.UUID, caller_ref: str, age_band: str | None,
                         gender: str | None, started_at: datetime, rota: Rota = NO_ROTA,
                         now: datetime | None = None) -> Contact:
        """A text conversation started by a caller's message (the SMS webhook): it is
        the shift's on at its start, and routed to the supporters on call then."""
        started = record_time("started_at", started_at, now or datetime.now(UTC))
        return cls._create(
            cls.Logged, channel=Channel.TEXT.value, direction=Direction.INBOUND.value,
            started_at=started, ended_at=None, issues=[], caller_id=caller_id,
            caller_ref=caller_ref, age_band=age_band, gender=gender,
            shift_id=rota.shift_at(started), supporter_ids=rota.on_call(started),
            caller_is=None, summary=None, signposted_to=[], answered=True, phone=None,
            responds_to=None, referral_id=None)

    class Logged(Aggregate.Created):
        channel: str
        direction: str
        started_at: datetime
        ended_at: datetime | None
        issues: list[str]
        caller_id: uuid.UUID | None
        caller_ref: str | None
        age_band: str | None
        gender: str | None
        shift_id: uuid.UUID | None
        supporter_ids: list[str]
        caller_is: str | None
        summary: str | None
        signposted_to: list[str]
        answered: bool
        phone: str | None
        meta: dict[str, str]
        # Absent from events stored before issue 9 (the aggregate defaults them too).
        responds_to: uuid.UUID | None = None
        referral_id: uuid.UUID | None = None

    def __init__(self, *, channel: str, direction: str, started_at: datetime,
                 ended_at: datetime | None, issues: list[str], caller_id: uuid.UUID | None,
                 caller_ref: str | None, age_band: str | None, gender: str | None,
                 shift_id: uuid.UUID | None, supporter_ids: list[str], caller_is: str | None,
                 summary: str | None, signposted_to: list[str], answered: bool,
                 phone: str | None, meta: dict[str, str],
                 responds_to: uuid.UUID | None = None,
                 referral_id: uuid.UUID | None = None) -> None:
        self.channel = channel
        self.direction = direction
        self.started_at = started_at
        self.ended_at = ended_at
        self.issues = list(issues)
        self.caller_id = caller_id
        self.caller_ref = caller_ref
        self.age_band = age_band
        self.gender = gender
        self.shift_id = shift_id
        self.supporter_ids = list(supporter_ids)
        self.caller_is = caller_is
        self.summary = summary
        self.signposted_to = list(signposted_to)
        self.answered = answered
        self.phone = phone
        self.responds_to = responds_to
        self.referral_id = referral_id
        self.logged_by = meta.get("actor", "")
        self.corrections = 0
        self.risk_trail: list[dict[str, Any]] = []
        self.escalations: list[dict[str, Any]] = []
        self.follow_ups: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.debrief_requested = False
        self.closed = False
        self.no_escalation_reason: str | None = None

    # -- corrections (the command: corrections.py) ------------------------------------
    class Corrected(Aggregate.Event):
        issues: list[str] | None
        ended_at: datetime | None
        reason: str
        summary: str | None  # these three: absent from events stored before they existed
        caller_is: str | None
        signposted_to: list[str] | None
        meta: dict[str, str]

    @event(Corrected)
    def _corrected(self, *, issues: list[str] | None, ended_at: datetime | None,
                   reason: str, summary: str | None = None, caller_is: str | None = None,
                   signposted_to: list[str] | None = None) -> None:
        for name, value in (("issues", issues), ("signposted_to", signposted_to)):
            if value is not None:
                setattr(self, name, list(value))
        for name, scalar in (("ended_at", ended_at), ("summary", summary),
                             ("caller_is", caller_is)):
            if scalar is not None:
                setattr(self, name, scalar)
        self.corrections += 1

    # -- risk ----------------------------------------------------------------------------
    @property
    def risk_level(self) -> str | None:
        return self.risk_trail[-1]["level"] if self.risk_trail else None

    def assess_risk(self, *, level: str, factors: str | None, protective_factors: str | None,
                    decision: str, reasoning: str | None,
                    now: datetime | None = None) -> int:
        """Add a risk assessment; earlier ones are never changed: the new one supersedes.
        The closing rule holds whatever the order: an ``immediate`` assessment of a contact
        closed without an escalation or a reason for none is recorded (never refused for
        coming late) and reopens it (``Reopened``) until it closes by the rule again."""
        one_of("level", level, RISK_LEVELS)
        if decision is None:
            raise InvalidCommand("decision", "a risk assessment records its decision")
        n = len(self.risk_trail) + 1
        self._risk_assessed(
            n=n, level=level, factors=require_sealed("factors", factors),
            protective_factors=require_sealed("protective_factors", protective_factors),
            decision=require_sealed("decision", decision),
            reasoning=require_sealed("reasoning", reasoning),
            supersedes=n - 1 if n > 1 else None, at=now or datetime.now(UTC),
        )
        if self.closed and self._needs_escalation(self.no_escalation_reason):
            self._reopened()
        return n

    class RiskAssessed(Aggregate.Event):
        n: int
        level: str
        factors: str | None
        protective_factors: str | None
        decision: str | None
        reasoning: str | None
        supersedes: int | None
        at: datetime
        meta: dict[str, str]

    @event(RiskAssessed)
    def _risk_assessed(self, meta: Meta = None, *, n: int, level: str, factors: str | None,
                       protective_factors: str | None, decision: str | None,
                       reasoning: str | None, supersedes: int | None, at: datetime) -> None:
        self.risk_trail.append({
            "n": n, "level": level, "factors": factors, "protective_factors": protective_factors,
            "decision": decision, "reasoning": reasoning, "supersedes": supersedes,
            "assessed_by": actor_of(meta), "assessed_at": at,
        })

    class Reopened(Aggregate.Event):
        meta: dict[str, str]

    @event(Reopened)
    def _reopened(self) -> None:
        self.closed = False

    # -- escalations ---------------------------------------------------------------------
    def escalate(self, *, kind: str, reason: str, reference: str | None,
                 now: datetime | None = None) -> int:
        one_of("kind", kind, ESCALATION_KINDS)
        n = len(self.escalations) + 1
        self._escalated(n=n, kind=kind, reason=require_sealed("reason", reason),
                        reference=require_sealed("reference", reference),
                        at=now or datetime.now(UTC))
        return n

    class Escalated(Aggregate.Event):
        n: int
        kind: str
        reason: str | None
        reference: str | None
        at: datetime
        meta: dict[str, str]

    @event(Escalated)
    def _escalated(self, meta: Meta = None, *, n: int, kind: str, reason: str | None,
                   reference: str | None, at: datetime) -> None:
        self.escalations.append({"n": n, "kind": kind, "reason": reason, "reference": reference,
                                 "escalated_by": actor_of(meta), "escalated_at": at})

    # -- closing -------------------------------------------------------------------------
    def close(self, *, no_escalation_reason: str | None) -> None:
        """At immediate risk, a contact closes only with an escalation or a recorded
        reason for none; a text conversation only once its issues are set, like a call.
        Closing ends a text conversation's claim."""
        if self.closed:
            raise RuleBroken("the contact is already closed")
        if self.channel == Channel.TEXT and not self.issues:
            raise InvalidCommand("issues", "set the thread's issues (PATCH "
                                 "/contact/contacts/{id}) before closing it")
        if self._needs_escalation(no_escalation_reason):
            raise RuleBroken("the contact is at immediate risk: record an escalation, or the "
                             "reason for none (no_escalation_reason), before closing it")
        self.end_claim()
        self._closed(no_escalation_reason=require_sealed("no_escalation_reason",
                                                         no_escalation_reason))

    def _needs_escalation(self, no_escalation_reason: str | None) -> bool:
        return (self.risk_level == RiskLevel.IMMEDIATE and not self.escalations
                and no_escalation_reason is None)

    class Closed(Aggregate.Event):
        no_escalation_reason: str | None
        meta: dict[str, str]

    @event(Closed)
    def _closed(self, *, no_escalation_reason: str | None) -> None:
        self.closed = True
        self.no_escalation_reason = no_escalation_reason

    # -- follow-ups and debriefs ---------------------------------------------------------
    class FollowUpScheduled(Aggregate.Event):
        n: int
        kind: str
        due_by: datetime
        what: str | None
        meta: dict[str, str]

    @event(FollowUpScheduled)
    def _follow_up_scheduled(self, *, n: int, kind: str, due_by: datetime,
                             what: str | None) -> None:
        self.follow_ups.append({"n": n, "kind": kind, "due_by": due_by, "what": what,
                                "completed_at": None, "outcome": None})

    def complete_follow_up(self, *, n: int, outcome: str | None,
                           now: datetime | None = None) -> None:
        if not 1 <= n <= len(self.follow_ups):
            raise NotKnown(f"no follow-up {n} on this contact")
        if self.follow_ups[n - 1]["completed_at"] is not None:
            raise RuleBroken(f"follow-up {n} is already complete")
        self._follow_up_completed(n=n, outcome=require_sealed("outcome", outcome),
                                  at=now or datetime.now(UTC))

    class FollowUpCompleted(Aggregate.Event):
        n: int
        outcome: str | None
        at: datetime
        meta: dict[str, str]

    @event(FollowUpCompleted)
    def _follow_up_completed(self, *, n: int, outcome: str | None, at: datetime) -> None:
        self.follow_ups[n - 1]["completed_at"] = at
        self.follow_ups[n - 1]["outcome"] = outcome

    class DebriefRequested(Aggregate.Event):
        supporter_ids: list[str]
        meta: dict[str, str]

    @event(DebriefRequested)
    def _debrief_requested(self, *, supporter_ids: list[str]) -> None:
        self.debrief_requested = True

    # -- text messages -------------------------------------------------------------------
    class MessageReceived(Aggregate.Event):
        body: str | None
        at: datetime
        meta: dict[str, str]

    @event(MessageReceived)
    def _message_received(self, *, body: str | None, at: datetime) -> None:
        self.messages.append({"direction": "inbound", "body": body, "at": at,
                              "by": None, "provider_ref": None})

    class MessageSent(Aggregate.Event):
        body: str | None
        at: datetime
        provider_ref: str
        meta: dict[str, str]

    @event(MessageSent)
    def _message_sent(self, meta: Meta = None, *, body: str | None, at: datetime,
                      provider_ref: str) -> None:
        self.messages.append({"direction": "outbound", "body": body, "at": at,
                              "by": actor_of(meta), "provider_ref": provider_ref})
