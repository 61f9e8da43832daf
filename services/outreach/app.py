"""The outreach service's application. Its aggregates arrive with the outreach issue; until then it
has its event store, relay, health and /events like every service."""

from __future__ import annotations

from shared.eventstore.application import ServiceApplication


class OutreachApplication(ServiceApplication):
    service = "outreach"
    name = "outreach"
