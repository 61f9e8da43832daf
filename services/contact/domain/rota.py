"""What the contact service knows of the shift service's rota, and its rules: who is on
shift (and so may read a caller's history and answer texts), which shift a contact
belongs to, who is on call for a new text, and who may be named on a contact. No I/O
here: the application reads as much of the rota as a command needs (its read tables,
fed by the shift service's events) and hands it in as a ``Rota``.

Times are aware and compared in UTC. A shift is ``[starts_at, ends_at)``: it holds the
instants from its start up to, not including, its end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.contact.domain.codes import MAX_SUPPORTERS, ON_SHIFT_AFTER, ON_SHIFT_BEFORE
from shared.kernel import InvalidCommand, NotPermitted

COORDINATOR = "coordinator"  # the role that may always act (a token's `role`)
SUPPORTER = "supporter"  # the role that may act while on shift


def supporter_key(value: object) -> str | None:
    """A supporter's id as the shift service publishes it (a UUID, in its canonical
    form), or None when ``value`` cannot be one."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str) or len(value) > 45:  # the longest form: urn:uuid:...
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


@dataclass(frozen=True)
class RotaSupporter:
    """A supporter the shift service published (``SupporterRegistered``)."""

    id: str
    role: str = SUPPORTER
    active: bool = True
    eligible: bool = True


@dataclass(frozen=True)
class RotaShift:
    """A published shift and the supporters assigned to it."""

    id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    supporter_ids: tuple[str, ...] = ()

    def holds(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at


@dataclass(frozen=True)
class OnShiftWindow:
    """A supporter assigned to a shift is on shift from ``before`` its start until
    ``after`` its end (settings ``SOLIDARITY_ON_SHIFT_BEFORE_MIN`` and ``_AFTER_MIN``)."""

    before: timedelta = ON_SHIFT_BEFORE
    after: timedelta = ON_SHIFT_AFTER

    def holds(self, shift: RotaShift, now: datetime) -> bool:
        return shift.starts_at - self.before <= now < shift.ends_at + self.after

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        """Which shifts may be on at ``now``: those ending after the first instant and
        starting at or before the second (what the application reads)."""
        return now - self.after, now + self.before

    def describe(self) -> str:
        return (f"from {_minutes(self.before)} minutes before its start to "
                f"{_minutes(self.after)} minutes after its end")


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)


@dataclass(frozen=True)
class Rota:
    """As much of the rota as one command needs: some supporters (by id) and some
    shifts with their assignments."""

    supporters: Mapping[str, RotaSupporter] = field(default_factory=dict)
    shifts: tuple[RotaShift, ...] = ()

    def _active(self, supporter_id: str) -> bool:
        supporter = self.supporters.get(supporter_id)
        return supporter is not None and supporter.active

    # -- on shift --------------------------------------------------------------------------
    def on_shift(self, supporter_id: str, now: datetime, window: OnShiftWindow) -> bool:
        """Active and assigned to a shift that is on at ``now``. Being named on a contact
        puts nobody on shift: only the rota does."""
        key = supporter_key(supporter_id)
        return key is not None and self._active(key) and any(
            key in shift.supporter_ids and window.holds(shift, now) for shift in self.shifts)

    def check_on_shift(self, *, role: str, sub: str, now: datetime, window: OnShiftWindow,
                       doing: str) -> None:
        """The coordinator always may; a supporter while on shift; nobody else."""
        if role == COORDINATOR:
            return
        if role == SUPPORTER and self.on_shift(sub, now, window):
            return
        raise NotPermitted(f"Only the coordinator, or a supporter on shift (assigned to a "
                           f"shift on the rota, {window.describe()}), may {doing}.")

    # -- which shift, who is on call -------------------------------------------------------
    def shift_at(self, at: datetime) -> uuid.UUID | None:
        """The shift on at ``at``: the one that holds it; of several, the earliest to
        start; None if none does."""
        holding = sorted((s for s in self.shifts if s.holds(at)),
                         key=lambda s: (s.starts_at, str(s.id)))
        return holding[0].id if holding else None

    def on_call(self, at: datetime) -> list[str]:
        """The active supporters assigned to the shifts on at ``at`` (a new text is
        theirs), in the order of the shifts' starts; at most ``MAX_SUPPORTERS``."""
        out: list[str] = []
        for shift in sorted((s for s in self.shifts if s.holds(at)),
                            key=lambda s: (s.starts_at, str(s.id))):
            for sid in sorted(shift.supporter_ids):
                if self._active(sid) and sid not in out:
                    out.append(sid)
        return out[:MAX_SUPPORTERS]

    # -- who may be named ------------------------------------------------------------------
    def supporters_named(self, ids: Iterable[object] | None) -> list[str]:
        """The supporters named on a contact: each the id of an active supporter the
        shift service published, once, at most ``MAX_SUPPORTERS``. The message names
        the position, never the value (a name typed there stays out of the answer)."""
        if ids is not None and not isinstance(ids, list | tuple):
            raise InvalidCommand("supporter_ids", "must be a list of supporter ids")
        out: list[str] = []
        for i, value in enumerate(ids or []):
            key = supporter_key(value)
            if key is None:
                raise InvalidCommand("supporter_ids", f"item {i} is not a supporter id "
                                     "(the UUID the shift service gave the supporter)")
            if not self._active(key):
                raise InvalidCommand("supporter_ids", f"item {i} is not an active supporter "
                                     "on the rota (unknown or deactivated)")
            if key not in out:
                out.append(key)
        if len(out) > MAX_SUPPORTERS:
            raise InvalidCommand("supporter_ids", f"at most {MAX_SUPPORTERS} supporters")
        return out


NO_ROTA = Rota()  # nothing known of the rota: nobody may be named, no shift is on
