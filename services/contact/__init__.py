"""Contact service: callers, calls and texts, risk and escalations, follow-ups,
referrals and the service directory. Who is on shift comes from the shift service's
rota, consumed from its stream (``handlers.py`` into ``rota.py``)."""

from typing import Any

from sqlalchemy.engine import Connection

from services.contact import api, handlers, inbox, public_events, read_model, rota
from services.contact.app import ContactApplication
from shared.eventstore.projection import ReadModel
from shared.service_module import ServiceModule


def _views(conn: Connection, event: Any) -> None:
    """The read tables and the text inbox (its table is on the same metadata): one
    transaction per projected save."""
    read_model.apply(conn, event)
    inbox.apply(conn, event)


VIEWS = ReadModel("contact-views", read_model.metadata, _views)
ROTA = ReadModel(rota.NAME, rota.metadata, handlers.apply, subscriptions=("shift",))

MODULE = ServiceModule(
    name="contact",
    application=ContactApplication,
    router=api.router,
    public_events=public_events.public_event,
    read_models=(VIEWS, ROTA),
    adapters=frozenset({"keys", "phones", "sms", "calls"}),
)
