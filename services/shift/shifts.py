"""The shift use cases: extra shifts, assignments, swaps, check-ins, who is on call, the
gaps in the rota, and what the clock records of a shift that has started.

What a shift needs to know of other aggregates it is told here: whether a supporter is
active and eligible on the shift's date (the supporter, on the settings' required
courses), and whether they are on another shift that overlaps (the read tables narrow
the search, ``overlaps`` decides). Two coordinators filling the last place at once both
save the same version of the shift: the store takes one, the other is a 409.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from services.shift import read_model as views
from services.shift.domain import LONDON, Shift, Supporter, overlaps
from shared.kernel import check_expected_version
from shared.logging import get_logger

if TYPE_CHECKING:
    from services.shift.app import ShiftApplication

log = get_logger("shift")

# The clock leaves alone the shifts that ended longer ago than this (a week published
# after the fact is not flagged shift by shift).
CLOCK_LOOKBACK = timedelta(days=1)


class Shifts:
    def __init__(self, app: ShiftApplication) -> None:
        self.app = app

    def get(self, shift_id: UUID) -> Shift:
        return self.app.load(shift_id, Shift, "shift")

    def _changing(self, shift_id: UUID, expected_version: int | None) -> Shift:
        shift = self.get(shift_id)
        check_expected_version(shift.version, expected_version)
        return shift

    def add_extra(self, *, starts_at: datetime, ends_at: datetime, required: int) -> Shift:
        """A shift outside the template (bank holiday or Christmas cover)."""
        shift = Shift.add_extra(starts_at=starts_at, ends_at=ends_at, required=required)
        self.app.save(shift)
        return shift

    # -- assignments -------------------------------------------------------------------
    def _may_join(self, shift: Shift, supporter: Supporter) -> dict[str, bool]:
        """What the shift asks of a newcomer: active, eligible on the shift's (London)
        date, on no other shift that overlaps this one."""
        eligible, _ = self.app.eligibility(supporter, shift.starts_at.astimezone(LONDON).date())
        others = views.shifts_of_supporter(self.app.views(), str(supporter.id),
                                           shift.starts_at, shift.ends_at)
        overlapping = any(overlaps(starts, ends, shift.starts_at, shift.ends_at)
                          for shift_id, starts, ends in others if shift_id != str(shift.id))
        return {"eligible": eligible, "active": supporter.active, "overlapping": overlapping}

    def assign(self, shift_id: UUID, supporter_id: UUID,
               expected_version: int | None) -> Shift:
        shift = self._changing(shift_id, expected_version)
        supporter = self.app.named_supporter("supporter_id", supporter_id)
        shift.assign(str(supporter.id), **self._may_join(shift, supporter))
        self.app.save(shift)  # a concurrent change of the shift saved first: a 409
        return shift

    def unassign(self, shift_id: UUID, supporter_id: UUID, *, reason: str,
                 expected_version: int | None) -> Shift:
        """Take a supporter off the shift, with a reason sealed with their key."""
        shift = self._changing(shift_id, expected_version)
        shift.unassign(str(supporter_id), reason=self.app.seal(supporter_id, reason) or "")
        self.app.save(shift)
        return shift

    def swap(self, shift_id: UUID, from_supporter_id: UUID, to_supporter_id: UUID,
             expected_version: int | None) -> Shift:
        """One supporter hands their place to another, as one change."""
        shift = self._changing(shift_id, expected_version)
        newcomer = self.app.named_supporter("to_supporter_id", to_supporter_id)
        shift.swap(str(from_supporter_id), str(newcomer.id),
                   **self._may_join(shift, newcomer))
        self.app.save(shift)
        return shift

    def check_in(self, shift_id: UUID, supporter_id: str, now: datetime) -> Shift:
        """The supporter themself says "I am on call", now."""
        shift = self.get(shift_id)
        shift.check_in(supporter_id, at=now)
        self.app.save(shift)
        return shift

    # -- reading -------------------------------------------------------------------------
    def between(self, start: datetime, end: datetime, *, gaps_only: bool, limit: int,
                cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        return views.shifts_between(self.app.views(), start, end, gaps_only=gaps_only,
                                    limit=limit, cursor=cursor)

    def on_call(self, at: datetime) -> list[dict[str, Any]]:
        return views.shifts_at(self.app.views(), at)

    # -- the clock -----------------------------------------------------------------------
    def clock(self, now: datetime) -> int:
        """Each shift that started more than the grace ago (and ended less than a day
        ago): recorded once as uncovered when it has fewer check-ins than it needs, and
        once when none of its supporters held a bag as it started. A shift changed
        meanwhile by a request is looked at again at the next tick. How many changed."""
        grace = self.app.uncovered_grace
        engine = self.app.views()
        changed = 0
        for shift_id in views.started_shifts(engine, now - grace, now - CLOCK_LOOKBACK):
            shift = self.get(UUID(shift_id))
            before = shift.version
            if shift.uncovered(now, grace):
                shift.mark_uncovered()
            if not shift.bag_not_handed_over_recorded and not (
                    views.holders_at(engine, shift.starts_at) & set(shift.assignments)):
                shift.bag_not_handed_over()
            if shift.version == before:
                continue
            try:
                self.app.save(shift)
                changed += 1
            except IntegrityError:
                log.info("clock_retry", service="shift")
        return changed
