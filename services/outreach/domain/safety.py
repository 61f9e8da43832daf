"""A meeting's safety check-ins: each attendee checks in on arrival, with how long they
expect to stay, and checks out on leaving. When the latest expected end plus a grace
period passes without both check-outs, the safety check is overdue: an alert is raised,
once, and stays open until the coordinator resolves it, saying what was done. The
deadline is computed from the ``CheckedIn`` events, so it survives a restart.

The commands live on ``SafetyCommands``, mixed into ``Meeting``; the events are this
module's (their stored topics name it). No I/O here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from services.outreach.domain.codes import CHECK_IN_OPEN, GRACE, MIN_CHECK_IN_MINUTES, Role, Status
from services.outreach.domain.values import (
    actor_of,
    clock,
    entry,
    minutes,
    needs_status,
    required_sealed,
)
from shared.kernel import Aggregate, Conflicting, NotPermitted, require_aware

IN_PROGRESS = frozenset({Status.IN_PROGRESS.value})


# ------------------------------------------------------------------------ events


class CheckedIn(Aggregate.Event):
    """An attendee arrived; the safety deadline counts from ``expected_end``."""

    supporter_id: str
    at: datetime
    expected_end: datetime
    meta: dict[str, str]

    def apply(self, aggregate: Any) -> None:
        aggregate.check_ins[self.supporter_id] = {"at": self.at,
                                                  "expected_end": self.expected_end}
        aggregate.status = Status.IN_PROGRESS.value
        aggregate._trail.append(entry("CheckedIn", self.at, self.meta,
                                      supporter_id=self.supporter_id,
                                      expected_end=self.expected_end))


class CheckedOut(Aggregate.Event):
    supporter_id: str
    at: datetime
    meta: dict[str, str]

    def apply(self, aggregate: Any) -> None:
        aggregate.check_outs[self.supporter_id] = self.at
        aggregate._trail.append(entry("CheckedOut", self.at, self.meta,
                                      supporter_id=self.supporter_id))


class SafetyCheckOverdue(Aggregate.Event):
    """The deadline passed without both check-outs: ``missing`` have not checked out."""

    deadline: datetime
    missing: list[str]
    at: datetime
    meta: dict[str, str]

    def apply(self, aggregate: Any) -> None:
        aggregate.alert = {"raised_at": self.at, "deadline": self.deadline,
                           "missing": list(self.missing), "resolved_at": None,
                           "what_was_done": None, "resolved_by": None}
        aggregate._trail.append(entry("SafetyCheckOverdue", self.at, self.meta,
                                      deadline=self.deadline, missing=list(self.missing)))


class SafetyAlertResolved(Aggregate.Event):
    what_was_done: str  # sealed
    at: datetime
    meta: dict[str, str]

    def apply(self, aggregate: Any) -> None:
        aggregate.alert = {**aggregate.alert, "resolved_at": self.at,
                           "what_was_done": self.what_was_done,
                           "resolved_by": actor_of(self.meta)}
        aggregate._trail.append(entry("SafetyAlertResolved", self.at, self.meta,
                                      what_was_done=self.what_was_done))


# ---------------------------------------------------------------------- commands


class SafetyCommands:
    """Mixed into ``Meeting``: check-in, check-out, the overdue alarm."""

    if TYPE_CHECKING:
        status: str
        attendees: list[str]
        check_ins: dict[str, dict[str, datetime]]
        check_outs: dict[str, datetime]
        ends_at: datetime
        alert: dict[str, Any] | None

        def trigger_event(self, event_class: Any, **kwargs: Any) -> None: ...

    def check_in(self, *, supporter_id: str, expected_minutes: int,
                 now: datetime | None = None) -> None:
        """An attendee arrives, saying how long they expect to stay (once each)."""
        at = clock(now)
        length = minutes("expected_minutes", expected_minutes, MIN_CHECK_IN_MINUTES)
        needs_status(self.status, CHECK_IN_OPEN, "check in",
                     "check-in needs the meeting scheduled (its attendees named)")
        if supporter_id not in self.attendees:
            raise NotPermitted("only an attendee of this meeting can check in to it")
        if supporter_id in self.check_ins:
            raise Conflicting(f"cannot check in: the meeting is {self.status}, and supporter "
                              f"{supporter_id} has already checked in")
        self.trigger_event(CheckedIn, supporter_id=supporter_id, at=at,
                           expected_end=at + timedelta(minutes=length))

    def check_out(self, *, supporter_id: str, now: datetime | None = None) -> None:
        """A checked-in attendee leaves safely (once)."""
        at = clock(now)
        needs_status(self.status, IN_PROGRESS, "check out",
                     "check-out needs a check-in first (in_progress)")
        if supporter_id not in self.attendees:
            raise NotPermitted("only an attendee of this meeting can check out of it")
        if supporter_id not in self.check_ins:
            raise Conflicting(f"cannot check out: the meeting is {self.status}; supporter "
                              f"{supporter_id} checks in first")
        if supporter_id in self.check_outs:
            raise Conflicting(f"cannot check out: the meeting is {self.status}, and supporter "
                              f"{supporter_id} has already checked out")
        self.trigger_event(CheckedOut, supporter_id=supporter_id, at=at)

    @property
    def expected_end(self) -> datetime | None:
        """The latest expected end the check-ins gave; before any check-in, a scheduled
        meeting's planned end (nobody checking in is as worrying as nobody checking
        out); None before it is scheduled."""
        ends = [c["expected_end"] for c in self.check_ins.values()]
        if ends:
            return max(ends)
        return self.ends_at if self.status == Status.SCHEDULED else None

    def deadline(self, grace: timedelta = GRACE) -> datetime | None:
        """When the safety check is overdue: the latest expected end plus ``grace``."""
        end = self.expected_end
        return end + grace if end is not None else None

    @property
    def all_checked_out(self) -> bool:
        return bool(self.attendees) and all(a in self.check_outs for a in self.attendees)

    @property
    def not_checked_out(self) -> list[str]:
        return [a for a in self.attendees if a not in self.check_outs]

    @property
    def alert_open(self) -> bool:
        return self.alert is not None and self.alert["resolved_at"] is None

    def raise_overdue(self, *, now: datetime, grace: timedelta = GRACE) -> bool:
        """Raise the safety alert when the deadline has passed without both check-outs:
        True when raised now; False when not due, not needed or raised before (once)."""
        at = require_aware("now", now)
        deadline = self.deadline(grace)
        if self.status not in (Status.SCHEDULED, Status.IN_PROGRESS) or self.alert is not None \
                or self.all_checked_out or deadline is None or at <= deadline:
            return False
        self.trigger_event(SafetyCheckOverdue, deadline=deadline,
                           missing=self.not_checked_out, at=at)
        return True

    def resolve_alert(self, *, by_role: str, what_was_done: str,
                      now: datetime | None = None) -> None:
        """The coordinator closes the open safety alert, saying what was done."""
        at = clock(now)
        if by_role != Role.COORDINATOR:
            raise NotPermitted("only the coordinator resolves a safety alert")
        if not self.alert_open:
            raise Conflicting(f"cannot resolve: the meeting is {self.status} and has no open "
                              "safety alert")
        self.trigger_event(SafetyAlertResolved,
                           what_was_done=required_sealed("what_was_done", what_was_done), at=at)
