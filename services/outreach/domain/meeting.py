"""A meeting with a caller: in the community (a cafe, a public place) or at their home.
Two supporters always attend. Its life:

    requested -> risk_assessed -> approved -> scheduled -> in_progress -> completed
                          \\-> declined            \\-> cancelled (any time before completed)

Every decision is an event that says who decided (``meta``), when (``at``), on what
(the assessment an approval relied on) and why; ``trail()`` reads them back in order.
The address, the venue and every free text arrive sealed (``require_sealed``) from the
application's key store: the domain never sees plaintext. What needs other records
(is a supporter active and eligible, double-booked?) the application passes in as
callables. No I/O here.

DEVIATIONS from the shared plan (/tmp/o/spec.md):
- the decline's record is ``declined`` (dict or None), not ``decline``: that name is
  the command's;
- the safety events (``CheckedIn``, ``CheckedOut``, ``SafetyCheckOverdue``,
  ``SafetyAlertResolved``) and commands live in ``safety.py`` (mixed in): same class
  names, but they are ``safety.CheckedIn``..., not ``Meeting.CheckedIn``;
- ``deadline(grace)`` is a method (a property cannot take the grace).
Additions: ``request`` takes an optional ``id``; ``Approved`` also carries ``by`` (the
approver given to ``approve``, kept as ``approval["approved_by"]``); properties
``latest_assessment``, ``expected_end``, ``alert_open``, ``all_checked_out``,
``not_checked_out``; ``requested_at``; ``cancellation["from_status"]``;
``SEALED_FIELDS`` names the trail's sealed fields (an auditor's view leaves them out).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from eventsourcing.domain import event

from services.outreach.domain.codes import (
    ASSESSABLE,
    ASSESSMENT_MAX_AGE,
    ATTENDEES,
    CANCELLABLE,
    DECLINABLE,
    FACTORS,
    KINDS,
    MIN_MINUTES,
    PAST_SKEW,
    PROPOSE_AHEAD,
    RISK_LEVELS,
    ROLES,
    Kind,
    RiskLevel,
    Role,
    Status,
)
from services.outreach.domain.safety import SafetyCommands
from services.outreach.domain.values import (
    Meta,
    actor_of,
    clock,
    entry,
    minutes,
    needs_status,
    person_id,
    required_sealed,
)
from shared.kernel import (
    Aggregate,
    Conflicting,
    InvalidCommand,
    NotPermitted,
    RuleBroken,
    one_of,
    require_aware,
    require_codes,
    require_sealed,
)

# The trail's fields that hold sealed personal data or free text (never on the bus; an
# auditor's view leaves them out).
SEALED_FIELDS = frozenset({"venue", "address", "reason", "mitigations", "conditions",
                           "what_was_done", "what_happened", "follow_up"})


def _place(kind: str, venue: str | None, address: str | None) -> None:
    """A community meeting has a venue and no address; a home visit the reverse."""
    needs, not_ = ("venue", "address") if kind == Kind.COMMUNITY else ("address", "venue")
    given = {"venue": venue, "address": address}
    if given[needs] is None:
        raise InvalidCommand(needs, f"a {kind} meeting needs a {needs}")
    if given[not_] is not None:
        raise InvalidCommand(not_, f"a {kind} meeting has a {needs}, not a {not_}")


def _proposed_time(value: datetime, now: datetime) -> datetime:
    when = require_aware("proposed_at", value)
    if when < now - PAST_SKEW:
        raise InvalidCommand("proposed_at", "is in the past")
    if when > now + PROPOSE_AHEAD:
        raise InvalidCommand("proposed_at", "is more than a year ahead")
    return when


class Meeting(SafetyCommands, Aggregate):
    """A community meeting or home visit, from request to outcome."""

    @classmethod
    def request(cls, *, caller_ref: str, contact_id: uuid.UUID | None, kind: str,
                proposed_at: datetime, expected_minutes: int, venue: str | None,
                address: str | None, reason: str, requested_by: str,
                requested_by_role: str, now: datetime | None = None,
                id: uuid.UUID | None = None) -> Meeting:
        at = clock(now)
        person_id("caller_ref", caller_ref)
        if contact_id is not None and not isinstance(contact_id, uuid.UUID):
            raise InvalidCommand("contact_id", "must be a UUID")
        one_of("kind", kind, KINDS)
        when = _proposed_time(proposed_at, at)
        minutes("expected_minutes", expected_minutes, MIN_MINUTES)
        _place(kind, venue, address)
        person_id("requested_by", requested_by)
        one_of("requested_by_role", requested_by_role, ROLES)
        return cls._create(
            cls.Requested, id=id, caller_ref=caller_ref, contact_id=contact_id, kind=kind,
            proposed_at=when, expected_minutes=expected_minutes,
            venue=require_sealed("venue", venue), address=require_sealed("address", address),
            reason=required_sealed("reason", reason), requested_by=requested_by,
            requested_by_role=requested_by_role, requested_at=at)

    class Requested(Aggregate.Created):
        caller_ref: str
        contact_id: uuid.UUID | None
        kind: str
        proposed_at: datetime
        expected_minutes: int
        venue: str | None
        address: str | None
        reason: str
        requested_by: str
        requested_by_role: str
        requested_at: datetime
        meta: dict[str, str]

    def __init__(self, *, caller_ref: str, contact_id: uuid.UUID | None, kind: str,
                 proposed_at: datetime, expected_minutes: int, venue: str | None,
                 address: str | None, reason: str, requested_by: str,
                 requested_by_role: str, requested_at: datetime, meta: Meta = None) -> None:
        self.caller_ref = caller_ref
        self.contact_id = contact_id
        self.kind = kind
        self.proposed_at = proposed_at
        self.expected_minutes = expected_minutes
        self.ends_at = proposed_at + timedelta(minutes=expected_minutes)
        self.venue = venue
        self.address = address
        self.reason = reason
        self.requested_by = requested_by
        self.requested_by_role = requested_by_role
        self.requested_at = requested_at
        self.status: str = Status.REQUESTED.value
        self.assessments: list[dict[str, Any]] = []
        self.approval: dict[str, Any] | None = None
        self.declined: dict[str, Any] | None = None  # the spec's `decline`
        self.attendees: list[str] = []
        self.check_ins: dict[str, dict[str, datetime]] = {}
        self.check_outs: dict[str, datetime] = {}
        self.alert: dict[str, Any] | None = None
        self.outcome: dict[str, Any] | None = None
        self.cancellation: dict[str, Any] | None = None
        self._trail = [entry(
            "Requested", requested_at, meta, kind=kind, contact_id=contact_id,
            proposed_at=proposed_at, expected_minutes=expected_minutes, venue=venue,
            address=address, reason=reason, requested_by=requested_by,
            requested_by_role=requested_by_role)]

    def trail(self) -> list[dict[str, Any]]:
        """The decision trail, in order: each event's name, time, actor and fields."""
        return [{k: list(v) if isinstance(v, list) else v for k, v in e.items()}
                for e in self._trail]

    # -- risk and approval ---------------------------------------------------------
    def assess_risk(self, *, level: str, factors: list[str], mitigations: str | None,
                    now: datetime | None = None) -> int:
        """A risk assessment (the assessor is who acts). A later one supersedes the
        earlier, which stays in the trail. Returns its number, from 1."""
        at = clock(now)
        one_of("level", level, RISK_LEVELS)
        codes = require_codes("factors", factors, FACTORS)
        needs_status(self.status, ASSESSABLE, "assess the risk",
                     "a risk assessment is made before approval (requested or risk_assessed)")
        n = len(self.assessments) + 1
        self._risk_assessed(n=n, level=level, factors=codes,
                            mitigations=require_sealed("mitigations", mitigations), at=at)
        return n

    class RiskAssessed(Aggregate.Event):
        n: int
        level: str
        factors: list[str]
        mitigations: str | None
        at: datetime
        meta: dict[str, str]

    @event(RiskAssessed)
    def _risk_assessed(self, meta: Meta = None, *, n: int, level: str, factors: list[str],
                       mitigations: str | None, at: datetime) -> None:
        self.assessments.append({"n": n, "level": level, "factors": list(factors),
                                 "mitigations": mitigations, "assessed_by": actor_of(meta),
                                 "assessed_at": at})
        self.status = Status.RISK_ASSESSED.value
        self._trail.append(entry("RiskAssessed", at, meta, n=n, level=level,
                                 factors=list(factors), mitigations=mitigations))

    @property
    def latest_assessment(self) -> dict[str, Any] | None:
        return self.assessments[-1] if self.assessments else None

    def approve(self, *, by: str, by_role: str, conditions: str | None,
                now: datetime | None = None,
                max_age: timedelta = ASSESSMENT_MAX_AGE) -> None:
        """Approve on the latest risk assessment. The coordinator approves; a supporter
        only a low-risk community meeting they requested (``self_approved``). A home
        visit needs an assessment made within ``max_age``, and never one at high risk."""
        at = clock(now)
        needed = ("approval needs a risk assessment first" if self.status == Status.REQUESTED
                  else "only a risk-assessed meeting (risk_assessed) can be approved")
        needs_status(self.status, frozenset({Status.RISK_ASSESSED.value}), "approve", needed)
        latest = self.latest_assessment
        assert latest is not None  # risk_assessed has one
        self_approved = (by_role == Role.SUPPORTER and self.kind == Kind.COMMUNITY
                         and latest["level"] == RiskLevel.LOW and by == self.requested_by
                         and self.requested_by_role == Role.SUPPORTER)
        if by_role != Role.COORDINATOR and not self_approved:
            raise NotPermitted("only the coordinator approves this meeting; a supporter may "
                               "approve only a low-risk community meeting they requested")
        if self.kind == Kind.HOME:
            if latest["level"] == RiskLevel.HIGH:
                raise RuleBroken("a high-risk home visit cannot be approved: meet in the "
                                 "community instead")
            if at - latest["assessed_at"] > max_age:
                raise RuleBroken(f"the latest risk assessment is older than {max_age.days} "
                                 "days: reassess before approving a home visit")
        self._approved(by=person_id("by", by), conditions=require_sealed("conditions", conditions),
                       assessment_n=latest["n"], self_approved=self_approved, at=at)

    class Approved(Aggregate.Event):
        by: str
        conditions: str | None
        assessment_n: int
        self_approved: bool
        at: datetime
        meta: dict[str, str]

    @event(Approved)
    def _approved(self, meta: Meta = None, *, by: str, conditions: str | None,
                  assessment_n: int, self_approved: bool, at: datetime) -> None:
        self.approval = {"approved_by": by or actor_of(meta), "at": at,
                         "conditions": conditions, "assessment_n": assessment_n,
                         "self_approved": self_approved}
        self.status = Status.APPROVED.value
        self._trail.append(entry("Approved", at, meta, assessment_n=assessment_n,
                                 conditions=conditions, self_approved=self_approved))

    def decline(self, *, by_role: str, reason: str, now: datetime | None = None) -> None:
        """The coordinator declines a meeting not yet approved, saying why."""
        at = clock(now)
        if by_role != Role.COORDINATOR:
            raise NotPermitted("only the coordinator declines a meeting")
        needs_status(self.status, DECLINABLE, "decline",
                     "only a meeting not yet approved (requested or risk_assessed) "
                     "can be declined")
        self._declined(reason=required_sealed("reason", reason), at=at)

    class Declined(Aggregate.Event):
        reason: str
        at: datetime
        meta: dict[str, str]

    @event(Declined)
    def _declined(self, meta: Meta = None, *, reason: str, at: datetime) -> None:
        self.declined = {"declined_by": actor_of(meta), "at": at, "reason": reason}
        self.status = Status.DECLINED.value
        self._trail.append(entry("Declined", at, meta, reason=reason))

    # -- attendees -----------------------------------------------------------------
    def schedule(self, *, supporter_ids: list[str],
                 eligible: Callable[[str], str | None],
                 busy: Callable[[list[str], datetime, datetime], list[str]],
                 now: datetime | None = None) -> None:
        """Name the two supporters who attend. ``eligible(id)``: None when active and
        eligible, else why not; ``busy(ids, start, end)``: those booked on another
        meeting then. The approver attends only a meeting they self-approved."""
        at = clock(now)
        if not isinstance(supporter_ids, list | tuple):
            raise InvalidCommand("supporter_ids", "must be a list")
        ids = [person_id("supporter_ids", s) for s in supporter_ids]
        if len(ids) != ATTENDEES or len(set(ids)) != ATTENDEES:
            raise InvalidCommand("supporter_ids",
                                 f"exactly {ATTENDEES} distinct supporters attend")
        needed = ("attendees are named once the meeting is approved"
                  if self.status in ASSESSABLE else "only an approved meeting is scheduled")
        needs_status(self.status, frozenset({Status.APPROVED.value}), "name the attendees",
                     needed)
        assert self.approval is not None
        if not self.approval["self_approved"] and self.approval["approved_by"] in ids:
            raise RuleBroken("the approver may not attend a meeting they approved: name "
                             "another supporter")
        for supporter_id in ids:
            why_not = eligible(supporter_id)
            if why_not is not None:
                raise InvalidCommand("supporter_ids",
                                     f"supporter {supporter_id} cannot attend: {why_not}")
        taken = busy(list(ids), self.proposed_at, self.ends_at)
        if taken:
            raise InvalidCommand("supporter_ids", "double-booked on another meeting at that "
                                                  f"time: {', '.join(sorted(taken))}")
        self._scheduled(attendees=ids, starts_at=self.proposed_at, ends_at=self.ends_at,
                        at=at)

    class Scheduled(Aggregate.Event):
        attendees: list[str]
        starts_at: datetime
        ends_at: datetime
        at: datetime
        meta: dict[str, str]

    @event(Scheduled)
    def _scheduled(self, meta: Meta = None, *, attendees: list[str], starts_at: datetime,
                   ends_at: datetime, at: datetime) -> None:
        self.attendees = list(attendees)
        self.status = Status.SCHEDULED.value
        self._trail.append(entry("Scheduled", at, meta, attendees=list(attendees),
                                 starts_at=starts_at, ends_at=ends_at))

    # -- the end -------------------------------------------------------------------
    def record_outcome(self, *, what_happened: str, follow_up: str | None,
                       now: datetime | None = None) -> None:
        """What happened, and any follow-up: once both attendees have checked out."""
        at = clock(now)
        needs_status(self.status, frozenset({Status.IN_PROGRESS.value}), "record the outcome",
                     "the outcome needs both attendees checked in and out")
        missing = self.not_checked_out
        if missing:
            raise Conflicting(f"cannot record the outcome: the meeting is {self.status}; "
                              f"both attendees check out first ({', '.join(missing)} not yet)")
        self._completed(what_happened=required_sealed("what_happened", what_happened),
                        follow_up=require_sealed("follow_up", follow_up), at=at)

    class Completed(Aggregate.Event):
        what_happened: str
        follow_up: str | None
        at: datetime
        meta: dict[str, str]

    @event(Completed)
    def _completed(self, meta: Meta = None, *, what_happened: str, follow_up: str | None,
                   at: datetime) -> None:
        self.outcome = {"what_happened": what_happened, "follow_up": follow_up, "at": at,
                        "recorded_by": actor_of(meta)}
        self.status = Status.COMPLETED.value
        self._trail.append(entry("Completed", at, meta, what_happened=what_happened,
                                 follow_up=follow_up))

    def cancel(self, *, reason: str, now: datetime | None = None) -> None:
        """Call the meeting off, any time before it is completed (or declined)."""
        at = clock(now)
        needs_status(self.status, CANCELLABLE, "cancel",
                     "only a meeting not yet completed, declined or cancelled can be cancelled")
        self._cancelled(reason=required_sealed("reason", reason), at=at)

    class Cancelled(Aggregate.Event):
        reason: str
        at: datetime
        meta: dict[str, str]

    @event(Cancelled)
    def _cancelled(self, meta: Meta = None, *, reason: str, at: datetime) -> None:
        self.cancellation = {"reason": reason, "at": at, "cancelled_by": actor_of(meta),
                             "from_status": self.status}
        self.status = Status.CANCELLED.value
        self._trail.append(entry("Cancelled", at, meta, reason=reason,
                                 from_status=self.cancellation["from_status"]))
