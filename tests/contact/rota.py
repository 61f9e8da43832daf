"""Publishing the shift service's rota into the contact service, for the tests: shift
integration events (as the shift service publishes them on its stream) applied straight
into the ``contact-rota`` projection of a runtime, exactly as its consumer would, with
their tracking. Works on a runtime that was never started (``app_runtime``) and on a
running ``Stack`` (its consumer of the shift stream finds these positions applied)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.contact import rota
from services.system import ServiceRuntime
from shared.messaging.envelope import IntegrationEvent, envelope_id


class RotaFeed:
    """Shift events into one contact runtime's rota read model."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.projection = runtime.projections[rota.NAME]

    def publish(self, type: str, data: dict[str, Any], *, aggregate_type: str,
                aggregate_id: str) -> IntegrationEvent:
        """One shift event, after the last one the projection applied; it must apply."""
        previous = self.projection.last_applied("shift")
        n = previous + 1
        event = IntegrationEvent(
            id=envelope_id("shift", n), service="shift", notification_id=n,
            previous_notification_id=previous, aggregate_type=aggregate_type,
            aggregate_id=uuid.UUID(aggregate_id), aggregate_version=1, type=type,
            occurred_at=datetime.now(UTC), actor="coordinator-1", data=data)
        outcome = self.projection.apply_events([event])
        assert outcome.applied == [n], (type, outcome)
        return event

    # -- supporters --------------------------------------------------------------------------
    def supporter(self, role: str = "supporter", eligible: bool = True) -> str:
        """A newly registered supporter's id (their token's `sub`)."""
        sid = str(uuid.uuid4())
        self.publish("SupporterRegistered",
                     {"supporter_id": sid, "role": role, "eligible": eligible,
                      "missing": [] if eligible else ["induction"]},
                     aggregate_type="Supporter", aggregate_id=sid)
        return sid

    def deactivate(self, supporter_id: str) -> None:
        self.publish("SupporterDeactivated", {"supporter_id": supporter_id},
                     aggregate_type="Supporter", aggregate_id=supporter_id)

    # -- shifts ------------------------------------------------------------------------------
    def shift(self, starts_at: datetime, ends_at: datetime, *supporter_ids: str,
              slot: str | None = None, required: int = 2) -> str:
        """A published shift, with these supporters assigned to it; its id."""
        shift_id = str(uuid.uuid4())
        self.publish("ShiftPublished",
                     {"shift_id": shift_id, "slot": slot, "starts_at": starts_at.isoformat(),
                      "ends_at": ends_at.isoformat(), "required": required},
                     aggregate_type="Shift", aggregate_id=shift_id)
        for sid in supporter_ids:
            self.assign(shift_id, sid)
        return shift_id

    def assign(self, shift_id: str, supporter_id: str) -> None:
        self.publish("SupporterAssigned", {"shift_id": shift_id, "supporter_id": supporter_id},
                     aggregate_type="Shift", aggregate_id=shift_id)

    def unassign(self, shift_id: str, supporter_id: str) -> None:
        self.publish("SupporterUnassigned",
                     {"shift_id": shift_id, "supporter_id": supporter_id},
                     aggregate_type="Shift", aggregate_id=shift_id)

    def swap(self, shift_id: str, from_supporter_id: str, to_supporter_id: str) -> None:
        self.publish("ShiftSwapped", {"shift_id": shift_id,
                                      "from_supporter_id": from_supporter_id,
                                      "to_supporter_id": to_supporter_id},
                     aggregate_type="Shift", aggregate_id=shift_id)

    def on_shift(self, started: timedelta = timedelta(hours=1),
                 length: timedelta = timedelta(hours=6)) -> str:
        """A new supporter assigned to a shift that started ``started`` ago: on shift now."""
        sid = self.supporter()
        start = datetime.now(UTC) - started
        self.shift(start, start + length, sid)
        return sid
