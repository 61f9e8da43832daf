"""A shift: when it runs (UTC), how many supporters it needs, who is assigned and who
checked in. The rules of assignment live here; what needs other aggregates (is the
supporter eligible, active, on an overlapping shift?) the application asks of them and
passes in. No I/O here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from eventsourcing.domain import event

from services.shift.domain.codes import (
    CHECK_IN_OPENS,
    EARLIEST,
    MAX_LABEL,
    MAX_SHIFT_LENGTH,
    SHIFT_AHEAD,
    Coverage,
)
from services.shift.domain.rota import required_count
from services.shift.domain.values import person_id
from shared.kernel import (
    Aggregate,
    Conflicting,
    InvalidCommand,
    NotKnown,
    NotPermitted,
    RuleBroken,
    require_aware,
    require_sealed,
    require_within,
)


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    """Do two shifts overlap? Half-open: one that ends as the next starts does not."""
    return a_start < b_end and b_start < a_end


def coverage_of(assigned: int, required: int) -> Coverage:
    """Covered with as many assigned as required, short with fewer, empty with none."""
    if not assigned:
        return Coverage.EMPTY
    return Coverage.COVERED if assigned >= required else Coverage.SHORT


def shift_times(starts_at: datetime, ends_at: datetime,
                now: datetime | None = None) -> tuple[datetime, datetime]:
    """A shift's times: with their offsets, from 2000 to two years ahead, the end after
    the start, at most ``MAX_SHIFT_LENGTH`` long. Kept in UTC."""
    latest = (now or datetime.now(UTC)) + SHIFT_AHEAD
    starts = require_within("starts_at", starts_at, EARLIEST, latest)
    ends = require_within("ends_at", ends_at, EARLIEST, latest)
    if ends <= starts:
        raise InvalidCommand("ends_at", "must be after starts_at")
    if ends - starts > MAX_SHIFT_LENGTH:
        hours = int(MAX_SHIFT_LENGTH.total_seconds() // 3600)
        raise InvalidCommand("ends_at", f"a shift lasts at most {hours} hours")
    return starts, ends


class Shift(Aggregate):
    """One shift, from the weekly template (``publish``) or an extra (``add_extra``)."""

    @classmethod
    def publish(cls, *, id: uuid.UUID, slot_label: str, starts_at: datetime,
                ends_at: datetime, required: int, now: datetime | None = None) -> Shift:
        """A shift of a published week, with the deterministic id ``shifts_for_week``
        gave it (the application creates it only when no shift has that id)."""
        if not isinstance(id, uuid.UUID):
            raise InvalidCommand("id", "must be a UUID")
        if not isinstance(slot_label, str) or not slot_label.strip() \
                or len(slot_label) > MAX_LABEL:
            raise InvalidCommand("slot", f"a label of 1 to {MAX_LABEL} characters")
        starts, ends = shift_times(starts_at, ends_at, now)
        return cls._create(cls.Published, id=id, slot=slot_label, starts_at=starts,
                           ends_at=ends, required=required_count("required", required))

    @classmethod
    def add_extra(cls, *, starts_at: datetime, ends_at: datetime, required: int,
                  id: uuid.UUID | None = None, now: datetime | None = None) -> Shift:
        """A shift outside the template (bank holiday or Christmas cover): the same rules,
        and no slot."""
        starts, ends = shift_times(starts_at, ends_at, now)
        return cls._create(cls.Published, id=id or uuid.uuid4(), slot=None, starts_at=starts,
                           ends_at=ends, required=required_count("required", required))

    class Published(Aggregate.Created):
        slot: str | None  # the template slot's label; None for an extra shift
        starts_at: datetime
        ends_at: datetime
        required: int
        meta: dict[str, str]

    def __init__(self, *, slot: str | None, starts_at: datetime, ends_at: datetime,
                 required: int) -> None:
        self.slot = slot
        self.starts_at = starts_at
        self.ends_at = ends_at
        self.required = required
        self.assignments: list[str] = []
        self.checked_in: dict[str, datetime] = {}  # of those assigned now
        self.uncovered_recorded = False
        self.bag_not_handed_over_recorded = False

    # -- assignments ---------------------------------------------------------------------
    @property
    def coverage(self) -> Coverage:
        return coverage_of(len(self.assignments), self.required)

    def _check_may_join(self, supporter_id: str, *, eligible: bool, active: bool,
                        overlapping: bool) -> None:
        """Whether a supporter may join this shift, told by the application: whether
        they are active and eligible on the shift's date, and whether they are on
        another shift that overlaps this one."""
        if supporter_id in self.assignments:
            raise Conflicting(f"supporter {supporter_id} is already assigned to this shift")
        if not active:
            raise Conflicting(f"supporter {supporter_id} is inactive: an inactive supporter "
                              "can be assigned nothing")
        if not eligible:
            raise Conflicting(f"supporter {supporter_id} is not eligible for on-call shifts: "
                              "their required training is missing or expired")
        if overlapping:
            raise Conflicting(f"supporter {supporter_id} is on another shift that overlaps "
                              "this one")

    def assign(self, supporter_id: str, *, eligible: bool, active: bool,
               overlapping: bool) -> None:
        """Assign a supporter: refused (409) when already assigned, when the shift
        already has its number, or when the supporter is inactive, not eligible or on
        an overlapping shift; the message says which."""
        person_id("supporter_id", supporter_id)
        if supporter_id not in self.assignments and len(self.assignments) >= self.required:
            raise Conflicting(f"the shift already has its {self.required} "
                              f"supporter{'s' if self.required > 1 else ''}")
        self._check_may_join(supporter_id, eligible=eligible, active=active,
                             overlapping=overlapping)
        self._assigned(supporter_id=supporter_id)

    class Assigned(Aggregate.Event):
        supporter_id: str
        meta: dict[str, str]

    @event(Assigned)
    def _assigned(self, *, supporter_id: str) -> None:
        self.assignments.append(supporter_id)

    def unassign(self, supporter_id: str, *, reason: str) -> None:
        """Take a supporter off the shift, with a sealed reason."""
        if supporter_id not in self.assignments:
            raise NotKnown(f"supporter {supporter_id} is not assigned to this shift")
        if reason is None:
            raise InvalidCommand("reason", "is required")
        self._unassigned(supporter_id=supporter_id, reason=require_sealed("reason", reason))

    class Unassigned(Aggregate.Event):
        supporter_id: str
        reason: str | None
        meta: dict[str, str]

    @event(Unassigned)
    def _unassigned(self, *, supporter_id: str, reason: str | None) -> None:
        self.assignments.remove(supporter_id)
        self.checked_in.pop(supporter_id, None)

    def swap(self, from_supporter_id: str, to_supporter_id: str, *, eligible: bool,
             active: bool, overlapping: bool) -> None:
        """One supporter hands their place to another, as one change (one event):
        ``eligible``, ``active`` and ``overlapping`` are the newcomer's."""
        if from_supporter_id not in self.assignments:
            raise Conflicting(f"supporter {from_supporter_id} is not assigned to this shift")
        person_id("to_supporter_id", to_supporter_id)
        self._check_may_join(to_supporter_id, eligible=eligible, active=active,
                             overlapping=overlapping)
        self._swapped(from_supporter_id=from_supporter_id, to_supporter_id=to_supporter_id)

    class Swapped(Aggregate.Event):
        from_supporter_id: str
        to_supporter_id: str
        meta: dict[str, str]

    @event(Swapped)
    def _swapped(self, *, from_supporter_id: str, to_supporter_id: str) -> None:
        self.assignments[self.assignments.index(from_supporter_id)] = to_supporter_id
        self.checked_in.pop(from_supporter_id, None)

    # -- on call -------------------------------------------------------------------------
    def check_in(self, supporter_id: str, *, at: datetime) -> None:
        """Check in ("I am on call"): only a supporter assigned to the shift (403 otherwise), once,
        from ``CHECK_IN_OPENS`` before the start until the end."""
        at = require_aware("at", at)
        if supporter_id not in self.assignments:
            raise NotPermitted("only a supporter assigned to this shift can check in to it")
        if supporter_id in self.checked_in:
            raise Conflicting(f"supporter {supporter_id} has already checked in")
        if not self.starts_at - CHECK_IN_OPENS <= at <= self.ends_at:
            minutes = int(CHECK_IN_OPENS.total_seconds() // 60)
            raise RuleBroken(f"check-in is open from {minutes} minutes before the shift "
                             "starts until it ends")
        self._checked_in(supporter_id=supporter_id, at=at)

    class CheckedIn(Aggregate.Event):
        supporter_id: str
        at: datetime
        meta: dict[str, str]

    @event(CheckedIn)
    def _checked_in(self, *, supporter_id: str, at: datetime) -> None:
        self.checked_in[supporter_id] = at

    def uncovered(self, now: datetime, grace: timedelta) -> bool:
        """Due to be recorded as uncovered: started more than ``grace`` (the setting)
        before ``now`` with fewer check-ins than it needs, and not recorded yet."""
        return (not self.uncovered_recorded and now - self.starts_at > grace
                and len(self.checked_in) < self.required)

    def mark_uncovered(self) -> None:
        """Record once that the shift started without enough supporters on call."""
        if self.uncovered_recorded:
            raise RuleBroken("the shift was already recorded as uncovered")
        self._uncovered(checked_in=sorted(self.checked_in), required=self.required)

    class Uncovered(Aggregate.Event):
        checked_in: list[str]  # who had checked in
        required: int
        meta: dict[str, str]

    @event(Uncovered)
    def _uncovered(self, *, checked_in: list[str], required: int) -> None:
        self.uncovered_recorded = True

    def bag_not_handed_over(self) -> None:
        """Record once that the shift started with neither of its supporters holding a
        bag (the application asks the bags)."""
        if self.bag_not_handed_over_recorded:
            raise RuleBroken("the missing bag was already recorded for this shift")
        self._bag_not_handed_over()

    class BagNotHandedOver(Aggregate.Event):
        meta: dict[str, str]

    @event(BagNotHandedOver)
    def _bag_not_handed_over(self) -> None:
        self.bag_not_handed_over_recorded = True
