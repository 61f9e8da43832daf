"""The weekly rota: a template of slots in London wall-clock time (one template, with a
fixed id), and the shifts of an ISO week computed from it in UTC. Shift times are
computed in Europe/London, so a Saturday 20:00-02:00 shift lasts 5 hours over the
spring clock change and 7 over the autumn one. No I/O here.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from eventsourcing.domain import event

from services.shift.domain.codes import (
    DEFAULT_REQUIRED,
    DEFAULT_TEMPLATE,
    LONDON,
    MAX_REQUIRED,
    MAX_SLOTS,
    WEEKDAYS,
)
from shared.kernel import Aggregate, InvalidCommand

ROTA_NAMESPACE = uuid.UUID("5d0c2f4e-8a61-4f0b-9b7e-3c2a1d9e8f70")
ROTA_TEMPLATE_ID = uuid.uuid5(ROTA_NAMESPACE, "rota-template")
HH_MM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
ISO_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
FIRST_YEAR, LAST_YEAR = 2000, 9998  # a shift past midnight stays inside the calendar


@dataclass(frozen=True)
class Slot:
    """A weekly slot: a weekday, start and end in London wall-clock time (HH:MM), and
    how many supporters it needs. One that ends at or before its start runs past
    midnight into the next day."""

    weekday: str
    starts: str
    ends: str
    required: int = DEFAULT_REQUIRED

    @property
    def label(self) -> str:
        return f"{self.weekday} {self.starts}-{self.ends}"

    @property
    def overnight(self) -> bool:
        return self.ends <= self.starts  # HH:MM strings order as times

    def as_dict(self) -> dict[str, Any]:
        return {"weekday": self.weekday, "starts": self.starts, "ends": self.ends,
                "required": self.required}


def required_count(field: str, value: object) -> int:
    """How many supporters a slot or shift needs: 1 to MAX_REQUIRED."""
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 1 <= value <= MAX_REQUIRED:
        raise InvalidCommand(field, f"a whole number from 1 to {MAX_REQUIRED}")
    return value


def _hh_mm(field: str, value: object) -> str:
    if not isinstance(value, str) or not HH_MM.match(value):
        raise InvalidCommand(field, "a London wall-clock time as HH:MM, 00:00 to 23:59")
    return value


def slots_of(slots: Iterable[Mapping[str, Any] | Slot]) -> list[Slot]:
    """The slots of a template, checked: each names a weekday, its start and end as
    HH:MM and how many it needs (default 2); no two start on the same weekday at the
    same time (a shift's id is its week, weekday and start)."""
    if isinstance(slots, str | bytes | Mapping) or not isinstance(slots, Iterable):
        raise InvalidCommand("slots", "must be a list")
    items = list(slots)
    if len(items) > MAX_SLOTS:
        raise InvalidCommand("slots", f"at most {MAX_SLOTS} slots")
    out: list[Slot] = []
    for i, raw in enumerate(items):
        item = raw.as_dict() if isinstance(raw, Slot) else raw
        if not isinstance(item, Mapping):
            raise InvalidCommand(f"slots.{i}", "must be an object")
        if item.get("weekday") not in WEEKDAYS:
            raise InvalidCommand(f"slots.{i}.weekday", f"one of {', '.join(WEEKDAYS)}")
        slot = Slot(weekday=item["weekday"], starts=_hh_mm(f"slots.{i}.starts", item.get("starts")),
                    ends=_hh_mm(f"slots.{i}.ends", item.get("ends")),
                    required=required_count(f"slots.{i}.required",
                                            item.get("required", DEFAULT_REQUIRED)))
        if any(s.weekday == slot.weekday and s.starts == slot.starts for s in out):
            raise InvalidCommand(f"slots.{i}.starts",
                                 "another slot starts on the same weekday at the same time")
        out.append(slot)
    return out


def default_slots() -> list[Slot]:
    """The five weekend slots: Friday, Saturday and Sunday 20:00-02:00, Saturday and
    Sunday 08:00-14:00, two supporters each."""
    return [Slot(*slot) for slot in DEFAULT_TEMPLATE]


class RotaTemplate(Aggregate):
    """The weekly template of slots: one for the service, with a fixed id
    (``ROTA_TEMPLATE_ID``). Before it is first stored, the default applies."""

    @classmethod
    def create(cls, slots: Iterable[Mapping[str, Any] | Slot] | None = None) -> RotaTemplate:
        checked = default_slots() if slots is None else slots_of(slots)
        return cls._create(cls.Created, id=ROTA_TEMPLATE_ID,
                           slots=[s.as_dict() for s in checked])

    class Created(Aggregate.Created):
        slots: list[dict[str, Any]]
        meta: dict[str, str]

    def __init__(self, *, slots: list[dict[str, Any]]) -> None:
        self.slots: list[Slot] = [Slot(**s) for s in slots]

    def replace(self, slots: Iterable[Mapping[str, Any] | Slot]) -> None:
        """Replace every slot; the weeks already published keep their shifts."""
        self._replaced(slots=[s.as_dict() for s in slots_of(slots)])

    class Replaced(Aggregate.Event):
        slots: list[dict[str, Any]]
        meta: dict[str, str]

    @event(Replaced)
    def _replaced(self, *, slots: list[dict[str, Any]]) -> None:
        self.slots = [Slot(**s) for s in slots]


@dataclass(frozen=True)
class ShiftTimes:
    """One shift of a published week: its deterministic id, the slot's label, and its
    start and end in UTC."""

    id: uuid.UUID
    iso_week: str
    slot: str
    starts_at: datetime
    ends_at: datetime
    required: int

    @property
    def length(self) -> timedelta:
        return self.ends_at - self.starts_at


def shift_id_for(iso_week: str, slot: Slot) -> uuid.UUID:
    """The same week and slot (weekday and start) always give the same shift: publishing
    a week twice creates nothing new."""
    return uuid.uuid5(ROTA_NAMESPACE, f"shift:{iso_week}:{slot.weekday}:{slot.starts}")


def monday_of(iso_week: str) -> date:
    """The Monday of an ISO week written like ``2026-W49``."""
    match = ISO_WEEK.match(iso_week) if isinstance(iso_week, str) else None
    year, week = (int(match[1]), int(match[2])) if match else (0, 0)
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise InvalidCommand("iso_week", f"an ISO week like 2026-W49, from {FIRST_YEAR}-W01")
    try:
        return date.fromisocalendar(year, week, 1)
    except ValueError:
        raise InvalidCommand("iso_week", f"{year} has no week {week:02d}") from None


def london_to_utc(day: date, wall: time) -> datetime:
    """A London wall-clock time on a day, as the first moment a London clock shows it: an
    hour the clocks repeat (autumn) counts from its first, summer-time pass; a time the
    clocks skip (spring) is the moment they skip it."""
    local = datetime.combine(day, wall)
    first = local.replace(tzinfo=LONDON, fold=0).astimezone(UTC)
    if first.astimezone(LONDON).replace(tzinfo=None) == local:
        return first
    moment = local.replace(tzinfo=LONDON, fold=1).astimezone(UTC)  # before the change
    while moment.astimezone(LONDON).utcoffset() != first.astimezone(LONDON).utcoffset():
        moment += timedelta(minutes=1)  # the change is on a whole minute
    return moment


def shifts_for_week(slots: Sequence[Slot], iso_week: str) -> list[ShiftTimes]:
    """The shifts of an ISO week from the template's slots, each starting on its slot's
    weekday of that week (an overnight shift ends on the next day), in UTC. A slot that
    falls wholly inside the hour the clocks skip has no shift that week."""
    monday = monday_of(iso_week)
    out = []
    for slot in slots:
        day = monday + timedelta(days=WEEKDAYS.index(slot.weekday))
        end_day = day + timedelta(days=1) if slot.overnight else day
        starts = london_to_utc(day, time.fromisoformat(slot.starts))
        ends = london_to_utc(end_day, time.fromisoformat(slot.ends))
        if ends > starts:
            out.append(ShiftTimes(id=shift_id_for(iso_week, slot), iso_week=iso_week,
                                  slot=slot.label, starts_at=starts, ends_at=ends,
                                  required=slot.required))
    return out
