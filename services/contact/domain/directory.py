"""The on-call bag's Lambeth service directory: organisations, not people, with what
they help with and their opening hours in London wall-clock time, or ``open_24_7``
(open at any time, with no slots). No I/O here.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Any

from eventsourcing.domain import event

from services.contact.domain.codes import ISSUES, WEEKDAYS
from shared.kernel import Aggregate, InvalidCommand, RuleBroken, require_codes

HH_MM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
DAY = re.compile("^(" + "|".join(WEEKDAYS) + ")$")


def _hh_mm(field: str, value: object) -> time:
    if not isinstance(value, str) or not HH_MM.match(value):
        raise InvalidCommand(field, "a London wall-clock time as HH:MM, 00:00 to 23:59")
    return time.fromisoformat(value)


def _hours(opening_hours: list[dict[str, str]]) -> list[dict[str, str]]:
    out = []
    for i, slot in enumerate(opening_hours):
        day = slot.get("day")
        if day not in WEEKDAYS:
            raise InvalidCommand(f"opening_hours.{i}.day", f"one of {', '.join(WEEKDAYS)}")
        opens, closes = (_hh_mm(f"opening_hours.{i}.{name}", slot.get(name))
                         for name in ("opens", "closes"))
        if opens == closes:
            raise InvalidCommand(f"opening_hours.{i}.closes", "must differ from opens")
        out.append({"day": day, "opens": opens.strftime("%H:%M"),
                    "closes": closes.strftime("%H:%M")})
    return out


def is_open(opening_hours: list[dict[str, str]], local: datetime, *,
            open_24_7: bool = False) -> bool:
    """Open at a London wall-clock time? Always, when ``open_24_7``. A slot that closes
    before it opens runs past midnight into the next day (Friday 22:00-02:00 is open at
    01:00 on Saturday)."""
    if open_24_7:
        return True
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
            opening_hours: list[dict[str, str]], address: str | None,
            notes: str | None, open_24_7: bool = False) -> DirectoryEntry:
        return cls._create(cls.Added, **_entry(name, helps_with, phone, opening_hours, address,
                                               notes, open_24_7))

    class Added(Aggregate.Created):
        name: str
        helps_with: list[str]
        phone: str | None
        opening_hours: list[dict[str, str]]
        address: str | None
        notes: str | None
        open_24_7: bool  # absent from events stored before it existed
        meta: dict[str, str]

    def __init__(self, *, name: str, helps_with: list[str], phone: str | None,
                 opening_hours: list[dict[str, str]], address: str | None,
                 notes: str | None, open_24_7: bool = False) -> None:
        self._set(name, helps_with, phone, opening_hours, address, notes, open_24_7)
        self.removed = False

    def _set(self, name: str, helps_with: list[str], phone: str | None,
             opening_hours: list[dict[str, str]], address: str | None, notes: str | None,
             open_24_7: bool) -> None:
        self.open_24_7 = open_24_7
        self.name = name
        self.helps_with = list(helps_with)
        self.phone = phone
        self.opening_hours = list(opening_hours)
        self.address = address
        self.notes = notes

    def update(self, *, name: str, helps_with: list[str], phone: str | None,
               opening_hours: list[dict[str, str]], address: str | None, notes: str | None,
               open_24_7: bool = False) -> None:
        if self.removed:
            raise RuleBroken("the directory entry was removed")
        self._updated(**_entry(name, helps_with, phone, opening_hours, address, notes,
                               open_24_7))

    class Updated(Aggregate.Event):
        name: str
        helps_with: list[str]
        phone: str | None
        opening_hours: list[dict[str, str]]
        address: str | None
        notes: str | None
        open_24_7: bool  # absent from events stored before it existed
        meta: dict[str, str]

    @event(Updated)
    def _updated(self, *, name: str, helps_with: list[str], phone: str | None,
                 opening_hours: list[dict[str, str]], address: str | None,
                 notes: str | None, open_24_7: bool = False) -> None:
        self._set(name, helps_with, phone, opening_hours, address, notes, open_24_7)

    def remove(self) -> None:
        if self.removed:
            raise RuleBroken("the directory entry was already removed")
        self._removed()

    class Removed(Aggregate.Event):
        meta: dict[str, str]

    @event(Removed)
    def _removed(self) -> None:
        self.removed = True


def _entry(name: str, helps_with: list[str], phone: str | None,
           opening_hours: list[dict[str, str]], address: str | None,
           notes: str | None, open_24_7: bool) -> dict[str, Any]:
    if not name or not name.strip():
        raise InvalidCommand("name", "is required")
    if open_24_7 is not True and open_24_7 is not False:
        raise InvalidCommand("open_24_7", "true or false")
    if open_24_7 and opening_hours:
        raise InvalidCommand("opening_hours", "an entry open 24/7 has no opening_hours")
    return {
        "name": name.strip(),
        "helps_with": require_codes("helps_with", helps_with, ISSUES, at_least=1),
        "phone": phone,
        "opening_hours": _hours(opening_hours),
        "address": address,
        "notes": notes,
        "open_24_7": open_24_7,
    }
