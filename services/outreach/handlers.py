"""Inbound: what the outreach service takes from other services' events.

- The roster (``roster.py``, read model ``outreach-roster``): the shift service's
  ``SupporterRegistered``, ``SupporterEligibilityChanged`` and ``SupporterDeactivated``
  say who may attend a meeting. Each is applied inside the projection's transaction,
  beside its tracking row (exactly once); one whose data cannot be read raises
  ``ValueError``, and the projection sets it aside and shows it in health.
- Erasure (reactions ``outreach-erasure``): the contact service's ``CallerErased``
  destroys outreach's own key for that caller (the subject ``caller_ref``, with which
  outreach seals a meeting's address and free text), so all of it reads ``[erased]``,
  and leaves a tombstone, so nothing new is ever sealed for them (a 422).

Why erasure is a reaction and not a read model: the key must leave the application's
own ``KeyStore`` (its cache of opened keys too), which only a reaction reaches (a read
model's ``apply`` gets a connection, not the application); and most of the contact
stream wants nothing here, which the ``Reactor`` tracks now and then instead of one row
each. The key's deletion commits in its own transaction, just before the ``Reactor``
writes the event's tracking with the event store: not one transaction (the tracking is
the event store's, on another connection), but erasing is idempotent (a second erase
finds no key and the tombstone already there), so a crash between the two, or the same
event delivered twice, destroys the key exactly once and changes nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.outreach.roster import supporter_key, supporters
from shared.eventstore.reactions import Reactions
from shared.kernel import RuleBroken
from shared.logging import get_logger
from shared.messaging.envelope import IntegrationEvent
from shared.privacy import KeyStore
from shared.privacy.shred import shred

log = get_logger("outreach.erasure")

Handler = Callable[[Connection, IntegrationEvent], None]

# ---------------------------------------------------------------------------- the roster


def _id(data: dict[str, Any]) -> str:
    key = supporter_key(data.get("supporter_id"))
    if key is None:
        raise ValueError("supporter_id is not a UUID")
    return key


def _eligibility(data: dict[str, Any]) -> dict[str, Any]:
    eligible, missing = data.get("eligible"), data.get("missing", [])
    if not isinstance(eligible, bool):
        raise ValueError("eligible is not true or false")
    if not isinstance(missing, list) or not all(isinstance(c, str) for c in missing):
        raise ValueError("missing is not a list of training codes")
    return {"eligible": eligible, "missing": sorted(missing)}


def supporter_registered(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    role = d.get("role")
    if not isinstance(role, str) or not 0 < len(role) <= 20:
        raise ValueError("role is not a role's code")
    key = _id(d)
    values = {"role": role, "active": True, **_eligibility(d)}
    found = conn.execute(sa.select(supporters.c.supporter_id)
                         .where(supporters.c.supporter_id == key)).first()
    if found is None:
        conn.execute(sa.insert(supporters).values(supporter_id=key, **values))
    else:
        conn.execute(sa.update(supporters).where(supporters.c.supporter_id == key)
                     .values(**values))


def eligibility_changed(conn: Connection, ev: IntegrationEvent) -> None:
    conn.execute(sa.update(supporters).where(supporters.c.supporter_id == _id(ev.data))
                 .values(**_eligibility(ev.data)))


def supporter_deactivated(conn: Connection, ev: IntegrationEvent) -> None:
    conn.execute(sa.update(supporters).where(supporters.c.supporter_id == _id(ev.data))
                 .values(active=False))


HANDLERS: dict[tuple[str, str], Handler] = {
    ("shift", "SupporterRegistered"): supporter_registered,
    ("shift", "SupporterEligibilityChanged"): eligibility_changed,
    ("shift", "SupporterDeactivated"): supporter_deactivated,
}


def apply(conn: Connection, ev: IntegrationEvent) -> None:
    """Apply one event: those the roster has no use for (shifts, training, the bag)
    change nothing but the tracking."""
    handler = HANDLERS.get((ev.service, ev.type))
    if handler is not None:
        handler(conn, ev)


# ------------------------------------------------------------------------------ erasure


def caller_erased(app: Any, ev: IntegrationEvent) -> list[Any]:
    """The contact service erased a caller: destroy outreach's key for them. Returns no
    aggregates: the ``Reactor`` records only the event's tracking. Run again for the same
    event (a redelivery within a batch), it finds no key and changes nothing."""
    caller_ref = ev.data.get("caller_ref")
    if (not isinstance(caller_ref, str) or not 0 < len(caller_ref) <= 64
            or caller_ref == KeyStore.KEY_CHECK):
        raise RuleBroken("CallerErased without a caller_ref")
    keys = app.adapters.keys
    assert isinstance(keys, KeyStore), "outreach asks for the keys adapter"
    had_key = shred(app.engine, keys, caller_ref)
    log.info("caller_keys_erased", notification_id=ev.notification_id, had_key=had_key)
    return []


REACTIONS = Reactions("outreach-erasure", {("contact", "CallerErased"): caller_erased})
