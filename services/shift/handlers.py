"""Inbound: how the shift service answers other services' events with events of its own
(``shared.eventstore.reactions``). The contact service's ``DebriefRequested`` (a contact
logged as distressing) opens a debrief for each supporter it names.

The platform's ``Reactor`` saves what a handler returns together with the tracking of
the upstream event, in one transaction: a redelivered or duplicated event changes
nothing, and a missed one is backfilled from the contact service's log. A debrief's id
is the contact's and the supporter's, so even a second request for the same contact
opens nothing twice. An event whose data cannot be read is refused by a rule
(``RuleBroken``): tracked and logged, never retried for ever.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from services.shift.domain import Debrief
from shared.eventstore.reactions import Reactions
from shared.kernel import RuleBroken
from shared.messaging.envelope import IntegrationEvent


def debrief_requested(app: Any, ev: IntegrationEvent) -> list[Debrief]:
    data = ev.data
    supporter_ids = data.get("supporter_ids")
    try:
        contact_id = UUID(str(data["contact_id"]))
    except (KeyError, ValueError):
        raise RuleBroken("DebriefRequested without a contact id") from None
    if not isinstance(supporter_ids, list) or not all(isinstance(s, str)
                                                      for s in supporter_ids):
        raise RuleBroken("DebriefRequested without a list of supporter ids")
    opened: list[Debrief] = app.debriefs.open_for(contact_id, supporter_ids, ev.occurred_at)
    return opened


REACTIONS = Reactions("shift-debriefs", {("contact", "DebriefRequested"): debrief_requested})
