"""Shift service: supporters and their training, the weekend rota with two on call, the
on-call bag, debriefs. It answers the contact service's ``DebriefRequested`` with
debriefs (``handlers.py``), and its events tell the others who is on which shift."""

from services.shift import api, handlers, public_events, read_model
from services.shift.app import VIEWS, ShiftApplication
from shared.eventstore.projection import ReadModel
from shared.service_module import ServiceModule

MODULE = ServiceModule(
    name="shift",
    application=ShiftApplication,
    router=api.router,
    public_events=public_events.public_event,
    read_models=(ReadModel(VIEWS, read_model.metadata, read_model.apply),),
    reactions=handlers.REACTIONS,
    adapters=frozenset({"keys"}),
)
