"""The debrief use cases: opened in answer to the contact service's ``DebriefRequested``
(one for each supporter named; ``handlers.py``), completed by the coordinator, listed
with the overdue flag of the settings."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from services.shift import read_model as views
from services.shift.domain import Debrief, debrief_id_for
from services.shift.domain.debrief import is_overdue
from shared.eventstore import readtables
from shared.kernel import InvalidCommand, check_expected_version
from shared.logging import get_logger

if TYPE_CHECKING:
    from services.shift.app import ShiftApplication

log = get_logger("shift")


class Debriefs:
    def __init__(self, app: ShiftApplication) -> None:
        self.app = app

    def open_for(self, contact_id: UUID, supporter_ids: Iterable[str],
                 requested_at: datetime) -> list[Debrief]:
        """A debrief for each supporter named who has none for this contact yet (the id
        is the contact's and the supporter's: asking twice opens nothing twice). A
        supporter id the domain refuses is skipped (logged), the others are opened.
        Returned unsaved: the reaction saves them with its tracking."""
        opened: list[Debrief] = []
        for supporter_id in dict.fromkeys(supporter_ids):
            if debrief_id_for(contact_id, supporter_id) in self.app.repository:
                continue
            try:
                opened.append(Debrief.open(supporter_id=supporter_id, contact_id=contact_id,
                                           requested_at=min(requested_at, datetime.now(UTC))))
            except InvalidCommand as e:
                log.warning("debrief_not_opened", service="shift", field=e.field)
        return opened

    def get(self, debrief_id: UUID) -> Debrief:
        return self.app.load(debrief_id, Debrief, "debrief")

    def complete(self, debrief_id: UUID, *, on: date, by: str,
                 expected_version: int | None) -> Debrief:
        debrief = self.get(debrief_id)
        check_expected_version(debrief.version, expected_version)
        debrief.complete(on=on, by=by)
        self.app.save(debrief)
        return debrief

    def overdue(self, debrief: Debrief, now: datetime | None = None) -> bool:
        return debrief.overdue(now or datetime.now(UTC), self.app.debrief_due_within)

    def list(self, *, status: str | None, supporter_id: str | None, limit: int,
             cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        rows, next_cursor = views.debrief_rows(self.app.views(), status=status,
                                               supporter_id=supporter_id, limit=limit,
                                               cursor=cursor)
        now = datetime.now(UTC)
        return [{
            "id": r.debrief_id, "supporter_id": r.supporter_id, "contact_id": r.contact_id,
            "requested_at": readtables.from_ts(r.requested_at),
            "status": "open" if r.completed_on is None else "complete",
            "completed_on": r.completed_on, "completed_by": r.completed_by,
            "overdue": is_overdue(readtables.from_ts(r.requested_at) or now,
                                  r.completed_on is not None, now,
                                  self.app.debrief_due_within),
            "version": r.version,
        } for r in rows], next_cursor
