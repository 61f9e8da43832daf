"""Outreach service: community meetings and home visits, risk decisions, approvals.

Meetings and their safety alerts are its own read model (``read_model.py``), fed by
its log; the API is ``api/``; the clock raises overdue safety checks (``app.tick``)."""

from services.outreach import api, handlers, public_events, read_model, roster
from services.outreach.app import VIEWS, OutreachApplication
from shared.eventstore.projection import ReadModel
from shared.service_module import ServiceModule

MEETINGS = ReadModel(VIEWS, read_model.metadata, read_model.apply)
# Who may attend, from the shift stream; erasure answers contact's CallerErased.
ROSTER = ReadModel(roster.NAME, roster.metadata, handlers.apply, subscriptions=("shift",))

MODULE = ServiceModule(
    name="outreach",
    application=OutreachApplication,
    router=api.router,
    public_events=public_events.public_event,
    read_models=(MEETINGS, ROSTER),
    reactions=handlers.REACTIONS,
    adapters=frozenset({"keys"}),
)
