"""The contact service's aggregates: callers, contacts (calls and texts), referrals and
the service directory. No I/O here.

Personal data (alias, phone, summaries, reasons, message bodies) reaches the domain
already sealed by the application (``shared.privacy``): the aggregates refuse a
personal field that is not a sealed token, so no plaintext can slip into an event.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from eventsourcing.domain import Aggregate, event

from shared.domain import (
    InvalidCommand,
    RuleBroken,
    require_aware,
    require_codes,
    require_not_future,
)
from shared.privacy import is_sealed


class Channel(StrEnum):
    PHONE = "phone"
    TEXT = "text"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class IssueCategory(StrEnum):
    SOCIAL_ISOLATION = "social_isolation"
    SERVICE_INFORMATION = "service_information"
    RELATIONSHIP_BREAKDOWN = "relationship_breakdown"
    BEREAVEMENT = "bereavement"
    SELF_HARM = "self_harm"
    OVERDOSE = "overdose"
    SUICIDAL_THOUGHTS = "suicidal_thoughts"
    PANIC_ATTACK = "panic_attack"
    SUPPORTING_SOMEONE_ELSE = "supporting_someone_else"
    BENEFITS_FINANCE = "benefits_finance"
    HOUSING = "housing"
    ABUSE = "abuse"
    SUBSTANCE_USE = "substance_use"
    PHYSICAL_HEALTH = "physical_health"
    OTHER = "other"


class CallerIs(StrEnum):
    PERSON_IN_CRISIS = "person_in_crisis"
    CARER_FAMILY_FRIEND = "carer_family_friend"
    PROFESSIONAL = "professional"


class Gender(StrEnum):
    FEMALE = "female"
    MALE = "male"
    NON_BINARY = "non_binary"
    OTHER = "other"
    NOT_DISCLOSED = "not_disclosed"


class AgeBand(StrEnum):
    UNDER_18 = "under_18"
    A18_24 = "18_24"
    A25_31 = "25_31"
    A32_40 = "32_40"
    A41_50 = "41_50"
    A51_60 = "51_60"
    A61_PLUS = "61_plus"
    NOT_DISCLOSED = "not_disclosed"


class RiskLevel(StrEnum):
    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    IMMEDIATE = "immediate"


class EscalationKind(StrEnum):
    EMERGENCY_SERVICES = "emergency_services"
    CRISIS_TEAM = "crisis_team"
    SAFEGUARDING_REFERRAL = "safeguarding_referral"
    GP = "gp"
    OTHER = "other"


class ReferralSource(StrEnum):
    SELF = "self"
    GP = "gp"
    CMHT = "cmht"
    A_AND_E = "a_and_e"
    CARER_FAMILY = "carer_family"
    CRISIS_TEAM = "crisis_team"
    VOLUNTARY_SECTOR = "voluntary_sector"
    OTHER = "other"


class FollowUpKind(StrEnum):
    CALL_BACK = "call_back"
    AGREED = "agreed"


def _values(enum: type[StrEnum]) -> frozenset[str]:
    return frozenset(e.value for e in enum)


CHANNELS = _values(Channel)
DIRECTIONS = _values(Direction)
ISSUES = _values(IssueCategory)
CALLER_IS = _values(CallerIs)
GENDERS = _values(Gender)
AGE_BANDS = _values(AgeBand)
RISK_LEVELS = _values(RiskLevel)
ESCALATION_KINDS = _values(EscalationKind)
REFERRAL_SOURCES = _values(ReferralSource)
DEFAULT_SKEW = timedelta(minutes=5)
CALL_BACK_WITHIN = timedelta(hours=1)
CALLER_NAMESPACE = uuid.UUID("0b7f8b8e-4f2a-4b8e-9d3c-6a1f2e5d7c90")
_REF_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U


def _one_of(field: str, value: Any, allowed: frozenset[str], optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if value not in allowed:
        allowed_list = ", ".join(sorted(allowed))
        raise InvalidCommand(field, f"unknown value {value!r}; allowed: {allowed_list}")
    return value


def _sealed(field: str, value: str | None) -> str | None:
    """Personal data must arrive sealed: never plaintext in an event."""
    if value is None:
        return None
    if not is_sealed(value):
        raise InvalidCommand(field, "personal data must be sealed before it is recorded")
    return value


def _times(started_at: datetime, ended_at: datetime | None, now: datetime,
           skew: timedelta) -> tuple[datetime, datetime | None]:
    started = require_aware("started_at", started_at)
    require_not_future("started_at", started, now, skew)
    ended = None
    if ended_at is not None:
        ended = require_aware("ended_at", ended_at)
        require_not_future("ended_at", ended, now, skew)
        if ended < started:
            raise InvalidCommand("ended_at", "is before started_at")
    return started, ended


# ----------------------------------------------------------------------------- callers


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
        meta: dict[str, str],
    ) -> Caller:
        return cls._create(
            cls.Registered,
            id=caller_id_for(caller_ref),
            caller_ref=caller_ref,
            alias=_sealed("alias", alias),
            phone=_sealed("phone", phone),
            gender=_one_of("gender", gender, GENDERS, optional=True),
            age_band=_one_of("age_band", age_band, AGE_BANDS, optional=True),
            consent_to_keep_history=bool(consent_to_keep_history),
            consent_to_text=bool(consent_to_text),
            meta=meta,
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
                 consent_to_text: bool, meta: dict[str, str]) -> None:
        self.caller_ref = caller_ref
        self.alias = alias
        self.phone = phone
        self.gender = gender
        self.age_band = age_band
        self.consent_to_keep_history = consent_to_keep_history
        self.consent_to_text = consent_to_text
        self.erased = False
        self.history_reads = 0

    def _not_erased(self) -> None:
        if self.erased:
            raise RuleBroken("this caller's personal data was erased")

    def change_consent(self, *, consent_to_keep_history: bool | None,
                       consent_to_text: bool | None, meta: dict[str, str]) -> None:
        self._not_erased()
        if consent_to_keep_history is None and consent_to_text is None:
            raise InvalidCommand("consent_to_text", "name at least one consent to change")
        self._consent_changed(consent_to_keep_history=consent_to_keep_history,
                              consent_to_text=consent_to_text, meta=meta)

    class ConsentChanged(Aggregate.Event):
        consent_to_keep_history: bool | None
        consent_to_text: bool | None
        meta: dict[str, str]

    @event(ConsentChanged)
    def _consent_changed(self, *, consent_to_keep_history: bool | None,
                         consent_to_text: bool | None, meta: dict[str, str]) -> None:
        if consent_to_keep_history is not None:
            self.consent_to_keep_history = consent_to_keep_history
        if consent_to_text is not None:
            self.consent_to_text = consent_to_text

    def read_history(self, *, purpose: str | None, meta: dict[str, str]) -> None:
        """Record that someone read this caller's history, and why. After erasure the
        coded history can still be read (the read is still recorded), but no purpose
        can be kept: nothing personal may be stored for an erased caller."""
        if not self.consent_to_keep_history:
            raise RuleBroken("the caller has not consented to keeping their history")
        if self.erased and purpose is not None:
            raise RuleBroken("nothing personal can be recorded for an erased caller")
        self._history_read(purpose=_sealed("purpose", purpose), meta=meta)

    class HistoryRead(Aggregate.Event):
        purpose: str | None
        meta: dict[str, str]

    @event(HistoryRead)
    def _history_read(self, *, purpose: str | None, meta: dict[str, str]) -> None:
        self.history_reads += 1

    def erase(self, *, meta: dict[str, str]) -> None:
        if self.erased:
            raise RuleBroken("this caller's personal data was already erased")
        self._erased(caller_ref=self.caller_ref, meta=meta)

    class Erased(Aggregate.Event):
        caller_ref: str
        meta: dict[str, str]

    @event(Erased)
    def _erased(self, *, caller_ref: str, meta: dict[str, str]) -> None:
        self.erased = True
        self.consent_to_text = False


# ---------------------------------------------------------------------------- contacts


class Contact(Aggregate):
    """One call or text conversation, with its risk trail, escalations and follow-ups."""

    @classmethod
    def log(
        cls,
        *,
        channel: str,
        started_at: datetime,
        issues: list[str],
        meta: dict[str, str],
        direction: str = "inbound",
        ended_at: datetime | None = None,
        caller_id: uuid.UUID | None = None,
        caller_ref: str | None = None,
        age_band: str | None = None,
        gender: str | None = None,
        shift_id: uuid.UUID | None = None,
        supporter_ids: list[str] | None = None,
        caller_is: str | None = None,
        summary: str | None = None,
        signposted_to: list[str] | None = None,
        follow_up_by: datetime | None = None,
        follow_up_what: str | None = None,
        distressing: bool = False,
        answered: bool = True,
        phone: str | None = None,
        number_known: bool = False,
        now: datetime | None = None,
        skew: timedelta = DEFAULT_SKEW,
        id: uuid.UUID | None = None,
    ) -> Contact:
        now = now or datetime.now(UTC)
        _one_of("channel", channel, CHANNELS)
        _one_of("direction", direction, DIRECTIONS)
        if not answered and channel != Channel.PHONE:
            raise InvalidCommand("answered", "only a phone call can be missed")
        started, ended = _times(started_at, ended_at, now, skew)
        codes = require_codes("issues", issues, ISSUES, at_least=1 if answered else 0)
        supporters = _supporters(supporter_ids)
        follow_up: dict[str, Any] | None = None
        if follow_up_by is not None:
            due = require_aware("follow_up.by", follow_up_by)
            follow_up = {"kind": FollowUpKind.AGREED.value, "due_by": due,
                         "what": _sealed("follow_up.what", follow_up_what)}
        elif follow_up_what is not None:
            raise InvalidCommand("follow_up.by", "a follow-up needs a date to be done by")
        if not answered and number_known and follow_up is None:
            follow_up = {"kind": FollowUpKind.CALL_BACK.value,
                         "due_by": started + CALL_BACK_WITHIN, "what": None}
        contact = cls._create(
            cls.Logged,
            id=id or uuid.uuid4(),
            channel=channel,
            direction=direction,
            started_at=started,
            ended_at=ended,
            issues=codes,
            caller_id=caller_id,
            caller_ref=caller_ref,
            age_band=_one_of("age_band", age_band, AGE_BANDS, optional=True),
            gender=_one_of("gender", gender, GENDERS, optional=True),
            shift_id=shift_id,
            supporter_ids=supporters,
            caller_is=_one_of("caller_is", caller_is, CALLER_IS, optional=True),
            summary=_sealed("summary", summary),
            signposted_to=[str(s) for s in (signposted_to or [])],
            answered=answered,
            phone=_sealed("phone", phone),
            meta=meta,
        )
        if follow_up is not None:
            contact._follow_up_scheduled(n=1, kind=follow_up["kind"], due_by=follow_up["due_by"],
                                         what=follow_up["what"], meta=meta)
        if distressing:
            contact._debrief_requested(supporter_ids=supporters, meta=meta)
        return contact

    @classmethod
    def open_text_thread(cls, *, caller_id: uuid.UUID, caller_ref: str, age_band: str | None,
                         gender: str | None, started_at: datetime,
                         meta: dict[str, str]) -> Contact:
        """A text conversation started by a caller's message (the SMS webhook)."""
        return cls._create(
            cls.Logged, channel=Channel.TEXT.value, direction=Direction.INBOUND.value,
            started_at=require_aware("started_at", started_at), ended_at=None, issues=[],
            caller_id=caller_id, caller_ref=caller_ref, age_band=age_band, gender=gender,
            shift_id=None, supporter_ids=[], caller_is=None, summary=None, signposted_to=[],
            answered=True, phone=None, meta=meta,
        )

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

    def __init__(self, *, channel: str, direction: str, started_at: datetime,
                 ended_at: datetime | None, issues: list[str], caller_id: uuid.UUID | None,
                 caller_ref: str | None, age_band: str | None, gender: str | None,
                 shift_id: uuid.UUID | None, supporter_ids: list[str], caller_is: str | None,
                 summary: str | None, signposted_to: list[str], answered: bool,
                 phone: str | None, meta: dict[str, str]) -> None:
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
        self.logged_by = meta.get("actor", "")
        self.corrections = 0
        self.risk_trail: list[dict[str, Any]] = []
        self.escalations: list[dict[str, Any]] = []
        self.follow_ups: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.debrief_requested = False
        self.closed = False
        self.no_escalation_reason: str | None = None

    # -- corrections -------------------------------------------------------------------
    def correct(self, *, reason: str, meta: dict[str, str], issues: list[str] | None = None,
                ended_at: datetime | None = None, now: datetime | None = None,
                skew: timedelta = DEFAULT_SKEW) -> None:
        """Correct what was logged. The original stays in the history."""
        if not reason or not reason.strip():
            raise InvalidCommand("reason", "a correction needs a reason")
        if issues is None and ended_at is None:
            raise InvalidCommand("issues", "name at least one of issues, ended_at to correct")
        codes = require_codes("issues", issues, ISSUES, at_least=1) if issues is not None else None
        ended = None
        if ended_at is not None:
            _, ended = _times(self.started_at, ended_at, now or datetime.now(UTC), skew)
        self._corrected(issues=codes, ended_at=ended, reason=_sealed("reason", reason) or "",
                        meta=meta)

    class Corrected(Aggregate.Event):
        issues: list[str] | None
        ended_at: datetime | None
        reason: str
        meta: dict[str, str]

    @event(Corrected)
    def _corrected(self, *, issues: list[str] | None, ended_at: datetime | None, reason: str,
                   meta: dict[str, str]) -> None:
        if issues is not None:
            self.issues = list(issues)
        if ended_at is not None:
            self.ended_at = ended_at
        self.corrections += 1

    # -- risk ----------------------------------------------------------------------------
    @property
    def risk_level(self) -> str | None:
        return self.risk_trail[-1]["level"] if self.risk_trail else None

    def assess_risk(self, *, level: str, factors: str | None, protective_factors: str | None,
                    decision: str, reasoning: str | None, meta: dict[str, str],
                    now: datetime | None = None) -> int:
        """Add a risk assessment. Earlier ones are never changed: the new one supersedes."""
        _one_of("level", level, RISK_LEVELS)
        if decision is None:
            raise InvalidCommand("decision", "a risk assessment records its decision")
        n = len(self.risk_trail) + 1
        self._risk_assessed(
            n=n, level=level, factors=_sealed("factors", factors),
            protective_factors=_sealed("protective_factors", protective_factors),
            decision=_sealed("decision", decision), reasoning=_sealed("reasoning", reasoning),
            supersedes=n - 1 if n > 1 else None, at=now or datetime.now(UTC), meta=meta,
        )
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
    def _risk_assessed(self, *, n: int, level: str, factors: str | None,
                       protective_factors: str | None, decision: str | None,
                       reasoning: str | None, supersedes: int | None, at: datetime,
                       meta: dict[str, str]) -> None:
        self.risk_trail.append({
            "n": n, "level": level, "factors": factors, "protective_factors": protective_factors,
            "decision": decision, "reasoning": reasoning, "supersedes": supersedes,
            "assessed_by": meta.get("actor", ""), "assessed_at": at,
        })

    # -- escalations ---------------------------------------------------------------------
    def escalate(self, *, kind: str, reason: str, reference: str | None,
                 meta: dict[str, str], now: datetime | None = None) -> int:
        _one_of("kind", kind, ESCALATION_KINDS)
        n = len(self.escalations) + 1
        self._escalated(n=n, kind=kind, reason=_sealed("reason", reason),
                        reference=_sealed("reference", reference), at=now or datetime.now(UTC),
                        meta=meta)
        return n

    class Escalated(Aggregate.Event):
        n: int
        kind: str
        reason: str | None
        reference: str | None
        at: datetime
        meta: dict[str, str]

    @event(Escalated)
    def _escalated(self, *, n: int, kind: str, reason: str | None, reference: str | None,
                   at: datetime, meta: dict[str, str]) -> None:
        self.escalations.append({"n": n, "kind": kind, "reason": reason, "reference": reference,
                                 "escalated_by": meta.get("actor", ""),
                                 "escalated_at": at})

    # -- closing -------------------------------------------------------------------------
    def close(self, *, no_escalation_reason: str | None, meta: dict[str, str]) -> None:
        """At immediate risk, a contact closes only with an escalation or a recorded
        reason for none."""
        if self.closed:
            raise RuleBroken("the contact is already closed")
        if (self.risk_level == RiskLevel.IMMEDIATE and not self.escalations
                and no_escalation_reason is None):
            raise RuleBroken(
                "the contact is at immediate risk: record an escalation, or the reason "
                "for none (no_escalation_reason), before closing it"
            )
        self._closed(no_escalation_reason=_sealed("no_escalation_reason", no_escalation_reason),
                     meta=meta)

    class Closed(Aggregate.Event):
        no_escalation_reason: str | None
        meta: dict[str, str]

    @event(Closed)
    def _closed(self, *, no_escalation_reason: str | None, meta: dict[str, str]) -> None:
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
    def _follow_up_scheduled(self, *, n: int, kind: str, due_by: datetime, what: str | None,
                             meta: dict[str, str]) -> None:
        self.follow_ups.append({"n": n, "kind": kind, "due_by": due_by, "what": what,
                                "completed_at": None, "outcome": None})

    def complete_follow_up(self, *, n: int, outcome: str | None, meta: dict[str, str],
                           now: datetime | None = None) -> None:
        if not 1 <= n <= len(self.follow_ups):
            raise LookupError(f"no follow-up {n} on this contact")
        if self.follow_ups[n - 1]["completed_at"] is not None:
            raise RuleBroken(f"follow-up {n} is already complete")
        self._follow_up_completed(n=n, outcome=_sealed("outcome", outcome),
                                  at=now or datetime.now(UTC), meta=meta)

    class FollowUpCompleted(Aggregate.Event):
        n: int
        outcome: str | None
        at: datetime
        meta: dict[str, str]

    @event(FollowUpCompleted)
    def _follow_up_completed(self, *, n: int, outcome: str | None, at: datetime,
                             meta: dict[str, str]) -> None:
        self.follow_ups[n - 1]["completed_at"] = at
        self.follow_ups[n - 1]["outcome"] = outcome

    class DebriefRequested(Aggregate.Event):
        supporter_ids: list[str]
        meta: dict[str, str]

    @event(DebriefRequested)
    def _debrief_requested(self, *, supporter_ids: list[str], meta: dict[str, str]) -> None:
        self.debrief_requested = True

    # -- text messages -------------------------------------------------------------------
    def receive_message(self, *, body: str, at: datetime, meta: dict[str, str]) -> None:
        if self.channel != Channel.TEXT:
            raise RuleBroken("only a text conversation takes messages")
        self._message_received(body=_sealed("body", body), at=require_aware("at", at), meta=meta)

    class MessageReceived(Aggregate.Event):
        body: str | None
        at: datetime
        meta: dict[str, str]

    @event(MessageReceived)
    def _message_received(self, *, body: str | None, at: datetime, meta: dict[str, str]) -> None:
        self.messages.append({"direction": "inbound", "body": body, "at": at,
                              "by": None, "provider_ref": None})

    def check_can_send_message(self, *, caller_consents: bool) -> None:
        """Texts go only to a known caller who consented to them. The application asks
        this before the provider sends anything; ``send_message`` asks it again."""
        if self.channel != Channel.TEXT:
            raise RuleBroken("only a text conversation can be replied to by text")
        if self.caller_id is None:
            raise RuleBroken("this text conversation has no known caller to reply to")
        if not caller_consents:
            raise RuleBroken("the caller has not consented to receiving texts")

    def send_message(self, *, body: str, at: datetime, provider_ref: str,
                     caller_consents: bool, meta: dict[str, str]) -> None:
        self.check_can_send_message(caller_consents=caller_consents)
        self._message_sent(body=_sealed("body", body), at=require_aware("at", at),
                           provider_ref=provider_ref, meta=meta)

    class MessageSent(Aggregate.Event):
        body: str | None
        at: datetime
        provider_ref: str
        meta: dict[str, str]

    @event(MessageSent)
    def _message_sent(self, *, body: str | None, at: datetime, provider_ref: str,
                      meta: dict[str, str]) -> None:
        self.messages.append({"direction": "outbound", "body": body, "at": at,
                              "by": meta.get("actor"), "provider_ref": provider_ref})


def _supporters(ids: list[str] | None) -> list[str]:
    out: list[str] = []
    for s in ids or []:
        if not isinstance(s, str) or not s.strip() or len(s) > 100:
            raise InvalidCommand("supporter_ids", "each supporter id is a non-empty string")
        if s not in out:
            out.append(s)
    if len(out) > 10:
        raise InvalidCommand("supporter_ids", "at most 10 supporters")
    return out


# --------------------------------------------------------------------------- referrals


class Referral(Aggregate):
    """A referral into the service from another organisation, or a self-referral."""

    @classmethod
    def receive(cls, *, received_at: datetime, source: str, referrer_organisation: str | None,
                caller_id: uuid.UUID, caller_ref: str, reason: str | None,
                consent_to_contact: bool, meta: dict[str, str], now: datetime | None = None,
                skew: timedelta = DEFAULT_SKEW) -> Referral:
        received = require_aware("received_at", received_at)
        require_not_future("received_at", received, now or datetime.now(UTC), skew)
        _one_of("source", source, REFERRAL_SOURCES)
        if consent_to_contact is not True:
            raise InvalidCommand("consent_to_contact",
                                 "a referral needs the person's consent to be contacted")
        return cls._create(
            cls.Received, received_at=received, source=source,
            referrer_organisation=referrer_organisation, caller_id=caller_id,
            caller_ref=caller_ref, reason=_sealed("reason", reason), meta=meta,
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
                 caller_id: uuid.UUID, caller_ref: str, reason: str | None,
                 meta: dict[str, str]) -> None:
        self.received_at = received_at
        self.source = source
        self.referrer_organisation = referrer_organisation
        self.caller_id = caller_id
        self.caller_ref = caller_ref
        self.reason = reason
        self.status = "received"
        self.outcome_reason: str | None = None
        self.decided_by: str | None = None

    def decide(self, *, accept: bool, reason: str, meta: dict[str, str]) -> None:
        if self.status != "received":
            raise RuleBroken(f"the referral was already {self.status}")
        if accept:
            self._accepted(reason=_sealed("reason", reason), meta=meta)
        else:
            self._declined(reason=_sealed("reason", reason), meta=meta)

    class Accepted(Aggregate.Event):
        reason: str | None
        meta: dict[str, str]

    @event(Accepted)
    def _accepted(self, *, reason: str | None, meta: dict[str, str]) -> None:
        self.status = "accepted"
        self.outcome_reason = reason
        self.decided_by = meta.get("actor")

    class Declined(Aggregate.Event):
        reason: str | None
        meta: dict[str, str]

    @event(Declined)
    def _declined(self, *, reason: str | None, meta: dict[str, str]) -> None:
        self.status = "declined"
        self.outcome_reason = reason
        self.decided_by = meta.get("actor")


# ---------------------------------------------------------------------- the directory

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _hours(opening_hours: list[dict[str, str]]) -> list[dict[str, str]]:
    out = []
    for i, slot in enumerate(opening_hours):
        day = slot.get("day")
        if day not in WEEKDAYS:
            raise InvalidCommand(f"opening_hours.{i}.day", f"one of {', '.join(WEEKDAYS)}")
        try:
            opens = time.fromisoformat(slot["opens"])
            closes = time.fromisoformat(slot["closes"])
        except (KeyError, ValueError, TypeError) as e:
            raise InvalidCommand(f"opening_hours.{i}", "opens and closes as HH:MM") from e
        if opens == closes:
            raise InvalidCommand(f"opening_hours.{i}.closes", "must differ from opens")
        out.append({"day": day, "opens": opens.strftime("%H:%M"),
                    "closes": closes.strftime("%H:%M")})
    return out


def is_open(opening_hours: list[dict[str, str]], local: datetime) -> bool:
    """Open at a London wall-clock time? A slot that closes before it opens runs past
    midnight into the next day (Friday 22:00-02:00 is open at 01:00 on Saturday)."""
    t = local.time().replace(tzinfo=None)
    today = WEEKDAYS[local.weekday()]
    yesterday = WEEKDAYS[(local.weekday() - 1) % 7]
    for slot in opening_hours:
        opens, closes = time.fromisoformat(slot["opens"]), time.fromisoformat(slot["closes"])
        if opens < closes:
            if slot["day"] == today and opens <= t < closes:
                return True
        else:  # overnight
            if slot["day"] == today and t >= opens:
                return True
            if slot["day"] == yesterday and t < closes:
                return True
    return False


class DirectoryEntry(Aggregate):
    """A service in the on-call bag's Lambeth directory (organisations, not people)."""

    @classmethod
    def add(cls, *, name: str, helps_with: list[str], phone: str | None,
            opening_hours: list[dict[str, str]], address: str | None, notes: str | None,
            meta: dict[str, str]) -> DirectoryEntry:
        return cls._create(cls.Added, **_entry(name, helps_with, phone, opening_hours, address,
                                               notes), meta=meta)

    class Added(Aggregate.Created):
        name: str
        helps_with: list[str]
        phone: str | None
        opening_hours: list[dict[str, str]]
        address: str | None
        notes: str | None
        meta: dict[str, str]

    def __init__(self, *, name: str, helps_with: list[str], phone: str | None,
                 opening_hours: list[dict[str, str]], address: str | None, notes: str | None,
                 meta: dict[str, str]) -> None:
        self._set(name, helps_with, phone, opening_hours, address, notes)
        self.removed = False

    def _set(self, name: str, helps_with: list[str], phone: str | None,
             opening_hours: list[dict[str, str]], address: str | None, notes: str | None) -> None:
        self.name = name
        self.helps_with = list(helps_with)
        self.phone = phone
        self.opening_hours = list(opening_hours)
        self.address = address
        self.notes = notes

    def update(self, *, name: str, helps_with: list[str], phone: str | None,
               opening_hours: list[dict[str, str]], address: str | None, notes: str | None,
               meta: dict[str, str]) -> None:
        if self.removed:
            raise RuleBroken("the directory entry was removed")
        self._updated(**_entry(name, helps_with, phone, opening_hours, address, notes), meta=meta)

    class Updated(Aggregate.Event):
        name: str
        helps_with: list[str]
        phone: str | None
        opening_hours: list[dict[str, str]]
        address: str | None
        notes: str | None
        meta: dict[str, str]

    @event(Updated)
    def _updated(self, *, name: str, helps_with: list[str], phone: str | None,
                 opening_hours: list[dict[str, str]], address: str | None, notes: str | None,
                 meta: dict[str, str]) -> None:
        self._set(name, helps_with, phone, opening_hours, address, notes)

    def remove(self, *, meta: dict[str, str]) -> None:
        if self.removed:
            raise RuleBroken("the directory entry was already removed")
        self._removed(meta=meta)

    class Removed(Aggregate.Event):
        meta: dict[str, str]

    @event(Removed)
    def _removed(self, *, meta: dict[str, str]) -> None:
        self.removed = True


def _entry(name: str, helps_with: list[str], phone: str | None,
           opening_hours: list[dict[str, str]], address: str | None,
           notes: str | None) -> dict[str, Any]:
    if not name or not name.strip():
        raise InvalidCommand("name", "is required")
    return {
        "name": name.strip(),
        "helps_with": require_codes("helps_with", helps_with, ISSUES, at_least=1),
        "phone": phone,
        "opening_hours": _hours(opening_hours),
        "address": address,
        "notes": notes,
    }
