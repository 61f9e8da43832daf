"""The on-call bag use cases: register a bag, pass it from pair to pair (the chain of
custody), read it. Handover notes are sealed with the bag's own key: they are about a
handover, not about one person."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from services.shift import read_model as views
from services.shift.domain import Bag
from shared.kernel import check_expected_version

if TYPE_CHECKING:
    from services.shift.app import ShiftApplication


class Bags:
    def __init__(self, app: ShiftApplication) -> None:
        self.app = app

    def register(self, *, label: str, items: Sequence[str] | None) -> Bag:
        """A bag, held by whoever registers it (so the first handover is theirs)."""
        bag = Bag.register(label=label, items=list(items) if items is not None else None)
        self.app.save(bag)
        return bag

    def get(self, bag_id: UUID) -> Bag:
        return self.app.load(bag_id, Bag, "bag")

    def list(self, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        return views.bag_rows(self.app.views(), limit, cursor)

    def hand_over(self, bag_id: UUID, *, from_supporter_id: str, to_supporter_id: str,
                  items_checked: Mapping[str, bool], at: datetime, notes: str | None,
                  expected_version: int | None) -> Bag:
        """Pass the bag on: only its holder hands it over (409 otherwise); an item not
        checked (or the phone not charged) is recorded missing besides the handover."""
        bag = self.get(bag_id)
        check_expected_version(bag.version, expected_version)
        bag.hand_over(from_supporter_id=from_supporter_id, to_supporter_id=to_supporter_id,
                      items_checked=items_checked, at=at,
                      notes=self.app.seal(bag.id, notes))
        self.app.save(bag)
        return bag
