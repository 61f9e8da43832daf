"""Outbound: the shift service's domain events as public integration events, what other
services may know (the contact service builds "on shift" from them, outreach uses
eligibility).

Ids (a supporter's is the ``sub`` of their token), codes, counts and times only: never
a name, a phone number, an email, supervision notes, handover notes or a reason given
for a deactivation or an unassignment (Caldicott). Events not named here (training and
supervision recorded, the template changed, a bag registered) are published with their
type and no data (``shared.eventstore.application``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.shift.domain import Bag, Debrief, Shift, Supporter
from shared.eventstore.application import Public


def _iso(value: datetime) -> str:
    return value.isoformat()


def _supporter(event: Any, sid: str) -> Public | None:
    if isinstance(event, Supporter.Registered):
        return Public("SupporterRegistered", {"supporter_id": sid, "role": event.role,
                                              "eligible": event.eligible,
                                              "missing": list(event.missing)})
    if isinstance(event, Supporter.EligibilityChanged):
        return Public("SupporterEligibilityChanged", {"supporter_id": sid,
                                                      "eligible": event.eligible,
                                                      "missing": list(event.missing)})
    if isinstance(event, Supporter.Deactivated):
        return Public("SupporterDeactivated", {"supporter_id": sid})
    return None


def _shift(event: Any, sid: str) -> Public | None:
    if isinstance(event, Shift.Published):
        return Public("ShiftPublished", {"shift_id": sid, "slot": event.slot,
                                         "starts_at": _iso(event.starts_at),
                                         "ends_at": _iso(event.ends_at),
                                         "required": event.required})
    if isinstance(event, Shift.Assigned | Shift.Unassigned):
        name = "SupporterAssigned" if isinstance(event, Shift.Assigned) else "SupporterUnassigned"
        return Public(name, {"shift_id": sid, "supporter_id": event.supporter_id})
    if isinstance(event, Shift.Swapped):
        return Public("ShiftSwapped", {"shift_id": sid,
                                       "from_supporter_id": event.from_supporter_id,
                                       "to_supporter_id": event.to_supporter_id})
    if isinstance(event, Shift.CheckedIn):
        return Public("SupporterCheckedIn", {"shift_id": sid,
                                             "supporter_id": event.supporter_id,
                                             "at": _iso(event.at)})
    if isinstance(event, Shift.Uncovered):
        return Public("ShiftUncovered", {"shift_id": sid, "required": event.required,
                                         "checked_in": list(event.checked_in)})
    if isinstance(event, Shift.BagNotHandedOver):
        return Public("BagNotHandedOver", {"shift_id": sid})
    return None


def public_event(event: Any) -> Public | None:
    oid = str(event.originator_id)
    if isinstance(event, Supporter.Event):
        return _supporter(event, oid)
    if isinstance(event, Shift.Event):
        return _shift(event, oid)
    if isinstance(event, Bag.HandedOver):
        return Public("BagHandedOver", {"bag_id": oid,
                                        "from_supporter_id": event.from_supporter_id,
                                        "to_supporter_id": event.to_supporter_id,
                                        "at": _iso(event.at)})
    if isinstance(event, Bag.ItemMissing):
        return Public("BagItemMissing", {"bag_id": oid, "item": event.item})
    if isinstance(event, Debrief.Opened):
        return Public("DebriefOpened", {"debrief_id": oid, "supporter_id": event.supporter_id,
                                        "contact_id": str(event.contact_id)})
    if isinstance(event, Debrief.Completed):
        return Public("DebriefCompleted", {"debrief_id": oid,
                                           "supporter_id": event.supporter_id})
    return None
