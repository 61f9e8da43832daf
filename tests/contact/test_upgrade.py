"""Events stored before a field was added still load: the stored state of a
``Contact.Logged`` without ``responds_to`` and ``referral_id`` (issue 9 added them) is
turned back into a contact with both None, through the application's own mapper."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from eventsourcing.persistence import StoredEvent

from services.contact.app import ContactApplication
from services.contact.domain import Contact
from services.system import ServiceRuntime
from shared.kernel import acting


def test_a_contact_logged_before_the_links_existed_loads_without_them(
        app_runtime: Callable[..., ServiceRuntime]) -> None:
    app = app_runtime("contact").app
    assert isinstance(app, ContactApplication)
    with acting("coord-1", None):
        contact = Contact.log(channel="phone", issues=["social_isolation"],
                              started_at=datetime.now(UTC) - timedelta(minutes=5))
    (logged,) = contact.collect_events()
    stored = app.mapper.to_stored_event(logged)
    state = json.loads(stored.state)
    assert "responds_to" in state and "referral_id" in state
    del state["responds_to"], state["referral_id"]
    older = StoredEvent(originator_id=stored.originator_id,
                        originator_version=stored.originator_version,
                        topic=stored.topic, state=json.dumps(state).encode())
    again = app.mapper.to_domain_event(older).mutate(None)
    assert isinstance(again, Contact)
    assert again.responds_to is None and again.referral_id is None
    assert again.issues == ["social_isolation"] and again.channel == "phone"
