"""Contact service: callers, calls and texts, risk and escalations, follow-ups,
referrals and the service directory. Who is on shift comes from the shift service's
rota, consumed from its stream (``handlers.py`` into ``rota.py``)."""

from services.contact import api, handlers, public_events, read_model, rota
from services.contact.app import ContactApplication
from shared.eventstore.projection import ReadModel
from shared.service_module import ServiceModule

VIEWS = ReadModel("contact-views", read_model.metadata, read_model.apply)
ROTA = ReadModel(rota.NAME, rota.metadata, handlers.apply, subscriptions=("shift",))

MODULE = ServiceModule(
    name="contact",
    application=ContactApplication,
    router=api.router,
    public_events=public_events.public_event,
    read_models=(VIEWS, ROTA),
    adapters=frozenset({"keys", "phones", "sms"}),
)
