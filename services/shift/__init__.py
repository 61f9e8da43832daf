"""Shift service: supporters, training, the weekend rota, the on-call bag, debriefs.

Only the platform's part so far (event store, relay, ``/health``, ``/events``)."""

from services.shift import public_events
from services.shift.app import ShiftApplication
from shared.service_module import ServiceModule

MODULE = ServiceModule(
    name="shift",
    application=ShiftApplication,
    public_events=public_events.public_event,
)
