"""A supporter (or coordinator) of the line: their sealed contact details, role,
training, supervision, and whether they are active. Eligibility for on-call shifts is
decided here and nowhere else: current training in each required course (the required
set is the service's setting, passed in). No I/O here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from eventsourcing.domain import event

from services.shift.domain.codes import (
    COURSES,
    DATE_AHEAD,
    DEFAULT_REQUIRED_COURSES,
    MAX_VALIDITY_YEARS,
    ROLES,
    SUPERVISION_KINDS,
)
from services.shift.domain.values import (
    Meta,
    actor_of,
    from_iso,
    iso,
    london_today,
    person_id,
    plain_date,
    years_after,
)
from shared.kernel import Aggregate, InvalidCommand, RuleBroken, one_of, require_sealed


def required_courses(courses: Iterable[str]) -> frozenset[str]:
    """The required set as configured, checked once where the setting is read: a course
    name the domain does not know would make everyone ineligible, silently."""
    out = frozenset(courses)
    unknown = sorted(out - COURSES)
    if unknown:
        raise ValueError(f"unknown course(s) in the required set: {', '.join(unknown)}")
    return out


def eligibility_of(training: Iterable[dict[str, Any]], required: frozenset[str],
                   on: date) -> tuple[bool, list[str]]:
    """The eligibility rule: current training in each ``required`` course on a date
    (completed on or before it, and not expired: a certificate is no longer current on
    its ``expires_on`` date). Whether, and the required courses missing, sorted."""
    current = {t["course"] for t in training
               if t["completed_on"] <= on
               and (t["expires_on"] is None or on < t["expires_on"])}
    missing = sorted(set(required) - current)
    return not missing, missing


def _sealed(field: str, value: str | None) -> str:
    """A personal field that must be given, sealed."""
    if value is None:
        raise InvalidCommand(field, "is required")
    return require_sealed(field, value) or ""


class Supporter(Aggregate):
    """A peer supporter or coordinator. Their id (a UUID) is the ``sub`` of their
    token, so other services know them by it."""

    @classmethod
    def register(cls, *, name: str, phone: str | None, email: str | None, role: str,
                 start_date: date, id: uuid.UUID | None = None,
                 today: date | None = None,
                 required: frozenset[str] = DEFAULT_REQUIRED_COURSES) -> Supporter:
        """``name``, ``phone`` and ``email`` arrive sealed (``phone`` and ``email`` may
        be absent); the start date is from 2000 to two years ahead. The event records
        the eligibility they start with (no training yet: eligible only if ``required``,
        the setting, is empty), as other services learn it."""
        today = today or london_today()
        eligible, missing = eligibility_of([], required, today)
        return cls._create(
            cls.Registered,
            id=id or uuid.uuid4(),
            name=_sealed("name", name),
            phone=require_sealed("phone", phone),
            email=require_sealed("email", email),
            role=one_of("role", role, ROLES),
            start_date=plain_date("start_date", start_date, today + DATE_AHEAD).isoformat(),
            eligible=eligible,
            missing=missing,
        )

    class Registered(Aggregate.Created):
        name: str
        phone: str | None
        email: str | None
        role: str
        start_date: str
        eligible: bool
        missing: list[str]
        meta: dict[str, str]

    def __init__(self, *, name: str, phone: str | None, email: str | None, role: str,
                 start_date: str, eligible: bool, missing: list[str]) -> None:
        self.name = name
        self.phone = phone
        self.email = email
        self.role = role
        self.start_date: date = date.fromisoformat(start_date)
        self.active = True
        self.deactivation_reason: str | None = None
        self.training: list[dict[str, Any]] = []
        self.supervisions: list[dict[str, Any]] = []
        # Eligibility as last recorded (and published); ``eligibility`` is the rule.
        self.recorded_eligibility: tuple[bool, list[str]] = (eligible, list(missing))

    def _still_active(self) -> None:
        if not self.active:
            raise RuleBroken("the supporter was deactivated: their history is kept, "
                             "nothing new is recorded")

    # -- training ------------------------------------------------------------------------
    def record_training(self, *, course: str, completed_on: date,
                        expires_on: date | None = None, today: date | None = None) -> None:
        """A course completed (not in the future), and when its certificate expires
        (after completion, within ten years), if it does."""
        self._still_active()
        one_of("course", course, COURSES)
        completed = plain_date("completed_on", completed_on, today or london_today())
        if expires_on is not None:
            plain_date("expires_on", expires_on, years_after(completed, MAX_VALIDITY_YEARS),
                       earliest=completed + timedelta(days=1))
        self._training_recorded(course=course, completed_on=completed.isoformat(),
                                expires_on=iso(expires_on))

    class TrainingRecorded(Aggregate.Event):
        course: str
        completed_on: str
        expires_on: str | None
        meta: dict[str, str]

    @event(TrainingRecorded)
    def _training_recorded(self, meta: Meta = None, *, course: str, completed_on: str,
                           expires_on: str | None) -> None:
        self.training.append({"course": course, "completed_on": from_iso(completed_on),
                              "expires_on": from_iso(expires_on),
                              "recorded_by": actor_of(meta)})

    def eligibility(self, required: frozenset[str], on: date) -> tuple[bool, list[str]]:
        """Eligible for on-call shifts ``on`` a date: current training in each
        ``required`` course (completed on or before that date, and not expired: a
        certificate is no longer current on its ``expires_on`` date). Returns whether,
        and the required courses missing, sorted. Whether the supporter is active is
        asked separately (``active``)."""
        return eligibility_of(self.training, required, on)

    def refresh_eligibility(self, required: frozenset[str], on: date) -> bool:
        """Record the eligibility ``on`` a date when it differs from the one last recorded
        (training recorded, a certificate expired, the required set changed): whether it
        changed. A deactivated supporter's is no longer followed."""
        if not self.active:
            return False
        eligible, missing = self.eligibility(required, on)
        if (eligible, missing) == self.recorded_eligibility:
            return False
        self._eligibility_changed(eligible=eligible, missing=missing)
        return True

    class EligibilityChanged(Aggregate.Event):
        eligible: bool
        missing: list[str]
        meta: dict[str, str]

    @event(EligibilityChanged)
    def _eligibility_changed(self, *, eligible: bool, missing: list[str]) -> None:
        self.recorded_eligibility = (eligible, list(missing))

    # -- supervision ---------------------------------------------------------------------
    def record_supervision(self, *, kind: str, on: date, by: str, notes: str | None = None,
                           today: date | None = None) -> None:
        """A supervision held ``on`` a date (not in the future) ``by`` someone known to
        the system (their id, never a name); the notes arrive sealed."""
        self._still_active()
        one_of("kind", kind, SUPERVISION_KINDS)
        held = plain_date("on", on, today or london_today())
        self._supervision_recorded(kind=kind, on=held.isoformat(), by=person_id("by", by),
                                   notes=require_sealed("notes", notes))

    class SupervisionRecorded(Aggregate.Event):
        kind: str
        on: str
        by: str
        notes: str | None
        meta: dict[str, str]

    @event(SupervisionRecorded)
    def _supervision_recorded(self, *, kind: str, on: str, by: str,
                              notes: str | None) -> None:
        self.supervisions.append({"kind": kind, "on": date.fromisoformat(on), "by": by,
                                  "notes": notes})

    @property
    def last_supervision(self) -> date | None:
        """The date of the latest supervision held (not the last one recorded)."""
        return max((s["on"] for s in self.supervisions), default=None)

    def supervision_overdue(self, on: date, after: timedelta) -> bool:
        """Overdue ``on`` a date when more than ``after`` (the setting) has passed since
        the last supervision or, for someone never supervised, since they started. An
        inactive supporter is never overdue."""
        if not self.active:
            return False
        since = self.last_supervision or self.start_date
        return on - since > after

    # -- deactivation --------------------------------------------------------------------
    def deactivate(self, *, reason: str) -> None:
        """Deactivate, with a sealed reason. Their history is kept; they can be assigned
        nothing more (the shift asks ``active``)."""
        if not self.active:
            raise RuleBroken("the supporter is already deactivated")
        self._deactivated(reason=_sealed("reason", reason))

    class Deactivated(Aggregate.Event):
        reason: str
        meta: dict[str, str]

    @event(Deactivated)
    def _deactivated(self, *, reason: str) -> None:
        self.active = False
        self.deactivation_reason = reason

