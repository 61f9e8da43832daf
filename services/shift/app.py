"""The shift service's application. Its aggregates arrive with the shift issue; until then it
has its event store, relay, health and /events like every service."""

from __future__ import annotations

from shared.eventstore.application import ServiceApplication


class ShiftApplication(ServiceApplication):
    service = "shift"
    name = "shift"
