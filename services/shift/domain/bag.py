"""The on-call bag (the phone, a resource booklet, the Lambeth service directory) and
its chain of custody from pair to pair. No I/O here.

Who holds a new bag: the person who registered it (the coordinator, from the event's
``meta``). So the first handover is from them, and every handover is from the current
holder: one rule, no special first case.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from eventsourcing.domain import event

from services.shift.domain.codes import BAG_ITEMS, DEFAULT_SKEW, EARLIEST, MAX_LABEL
from services.shift.domain.values import Meta, actor_of, person_id
from shared.kernel import (
    Aggregate,
    Conflicting,
    InvalidCommand,
    require_codes,
    require_sealed,
    require_within,
)


def _items_checked(value: object, allowed: frozenset[str]) -> dict[str, bool]:
    """What the receiver checked: item -> true (there, and the phone charged) or false."""
    if not isinstance(value, Mapping):
        raise InvalidCommand("items_checked", "must be an object of item: true or false")
    out: dict[str, bool] = {}
    for item, ok in value.items():
        if item not in allowed:
            raise InvalidCommand("items_checked", f"unknown item {item!r}; allowed: "
                                                  f"{', '.join(sorted(allowed))}")
        if not isinstance(ok, bool):
            raise InvalidCommand(f"items_checked.{item}", "must be true or false")
        out[item] = ok
    return out


class Bag(Aggregate):
    """An on-call bag: its items, who holds it, and every handover."""

    @classmethod
    def register(cls, *, label: str, items: list[str] | None = None,
                 id: uuid.UUID | None = None) -> Bag:
        """A bag and what a handover checks of it (default: every item, the phone's
        charge included). Whoever registers it holds it."""
        if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL:
            raise InvalidCommand("label", f"a label of 1 to {MAX_LABEL} characters")
        checked = sorted(BAG_ITEMS) if items is None else \
            require_codes("items", items, BAG_ITEMS, at_least=1)
        return cls._create(cls.Registered, id=id or uuid.uuid4(), label=label.strip(),
                           items=checked)

    class Registered(Aggregate.Created):
        label: str
        items: list[str]
        meta: dict[str, str]

    def __init__(self, *, label: str, items: list[str], meta: dict[str, str]) -> None:
        self.label = label
        self.items = list(items)
        self.registered_by = actor_of(meta)
        self.holder = self.registered_by
        self.history: list[dict[str, Any]] = []

    def hand_over(self, *, from_supporter_id: str, to_supporter_id: str,
                  items_checked: Mapping[str, bool], at: datetime,
                  notes: str | None = None, now: datetime | None = None) -> list[str]:
        """Pass the bag on. Only its holder hands it over (409 otherwise); ``at`` is not
        in the future nor before the last handover; the notes arrive sealed. Each of the
        bag's items not checked true (absent, missing, or the phone uncharged) is
        recorded as missing, besides the handover. Returns the missing items."""
        if from_supporter_id != self.holder:
            raise Conflicting(f"{from_supporter_id} does not hold this bag: "
                              f"{self.holder} does")
        person_id("to_supporter_id", to_supporter_id)
        if to_supporter_id == from_supporter_id:
            raise InvalidCommand("to_supporter_id", "must differ from from_supporter_id")
        checked = _items_checked(items_checked, BAG_ITEMS)
        when = require_within("at", at, EARLIEST, (now or datetime.now(UTC)) + DEFAULT_SKEW)
        if self.history and when < self.history[-1]["at"]:
            raise InvalidCommand("at", "is before the bag's last handover")
        self._handed_over(from_supporter_id=from_supporter_id,
                          to_supporter_id=to_supporter_id, items_checked=checked, at=when,
                          notes=require_sealed("notes", notes))
        missing = [item for item in self.items if not checked.get(item, False)]
        for item in missing:
            self._item_missing(item=item, holder=to_supporter_id, at=when)
        return missing

    class HandedOver(Aggregate.Event):
        from_supporter_id: str
        to_supporter_id: str
        items_checked: dict[str, bool]
        at: datetime
        notes: str | None
        meta: dict[str, str]

    @event(HandedOver)
    def _handed_over(self, meta: Meta = None, *, from_supporter_id: str,
                     to_supporter_id: str, items_checked: dict[str, bool], at: datetime,
                     notes: str | None) -> None:
        self.holder = to_supporter_id
        self.history.append({"from_supporter_id": from_supporter_id,
                             "to_supporter_id": to_supporter_id,
                             "items_checked": dict(items_checked), "at": at, "notes": notes,
                             "missing": [], "recorded_by": actor_of(meta)})

    class ItemMissing(Aggregate.Event):
        item: str
        holder: str  # who received the bag without it
        at: datetime
        meta: dict[str, str]

    @event(ItemMissing)
    def _item_missing(self, *, item: str, holder: str, at: datetime) -> None:
        self.history[-1]["missing"].append(item)
