"""Contact service: callers, calls and texts, risk and escalations, follow-ups,
referrals and the service directory."""

from services.contact import api, public_events, read_model
from services.contact.app import ContactApplication
from shared.eventstore.projection import ReadModel
from shared.service_module import ServiceModule

VIEWS = ReadModel("contact-views", read_model.metadata, read_model.apply)

MODULE = ServiceModule(
    name="contact",
    application=ContactApplication,
    router=api.router,
    public_events=public_events.public_event,
    read_models=(VIEWS,),
    adapters=frozenset({"keys", "phones", "sms"}),
)
