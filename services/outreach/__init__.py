"""Outreach service: community meetings and home visits, risk decisions, approvals.

Only the platform's part so far (event store, relay, ``/health``, ``/events``)."""

from services.outreach import public_events
from services.outreach.app import OutreachApplication
from shared.service_module import ServiceModule

MODULE = ServiceModule(
    name="outreach",
    application=OutreachApplication,
    public_events=public_events.public_event,
)
