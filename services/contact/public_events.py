"""The contact service's public events: what other services may know.

Never a caller's name, phone number, free-text notes or message bodies (Caldicott):
only coded fields, ids and the pseudonymous ``caller_ref``. Events not named here are
published with their type and no data (``shared.eventstore.application``).
"""

from __future__ import annotations

from typing import Any

from services.contact.domain import Caller, Contact, DirectoryEntry, Referral
from services.contact.domain.ringback import CallBackAnswered, CallBackPlaced, NumberRevealed
from shared.eventstore.application import Public


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _listed(values: Any) -> list[str] | None:
    return list(values) if values is not None else None


def public_event(event: Any) -> Public | None:
    cid = str(event.originator_id)
    if isinstance(event, Contact.Logged):
        return Public(
            "ContactLogged",
            {
                "contact_id": cid,
                "channel": event.channel,
                "direction": event.direction,
                "answered": event.answered,
                "started_at": _iso(event.started_at),
                "ended_at": _iso(event.ended_at),
                "issues": list(event.issues),
                "caller_is": event.caller_is,
                "caller_ref": event.caller_ref,
                "age_band": event.age_band,
                "gender": event.gender,
                "shift_id": str(event.shift_id) if event.shift_id else None,
                "supporter_ids": list(event.supporter_ids),
                "signposted_to": list(event.signposted_to),
            },
        )
    if isinstance(event, Contact.Corrected):
        return Public("ContactCorrected", {
            "contact_id": cid,
            "issues": list(event.issues) if event.issues is not None else None,
            "ended_at": _iso(event.ended_at),
            "caller_is": getattr(event, "caller_is", None),  # absent from older events
            "signposted_to": _listed(getattr(event, "signposted_to", None)),
        })
    if isinstance(event, Contact.RiskAssessed):
        return Public("RiskAssessed", {"contact_id": cid, "n": event.n, "level": event.level,
                                       "supersedes": event.supersedes})
    if isinstance(event, Contact.Escalated):
        return Public("ContactEscalated", {"contact_id": cid, "n": event.n, "kind": event.kind})
    if isinstance(event, Contact.Closed):
        return Public("ContactClosed", {"contact_id": cid,
                                        "without_escalation": event.no_escalation_reason
                                        is not None})
    if isinstance(event, Contact.Reopened):  # an immediate risk assessed after closing
        return Public("ContactReopened", {"contact_id": cid})
    if isinstance(event, Contact.DebriefRequested):
        return Public("DebriefRequested", {"contact_id": cid,
                                           "supporter_ids": list(event.supporter_ids)})
    if isinstance(event, Contact.FollowUpScheduled):
        return Public("FollowUpDue", {"contact_id": cid, "n": event.n, "kind": event.kind,
                                      "due_by": _iso(event.due_by)})
    if isinstance(event, Contact.FollowUpCompleted):
        return Public("FollowUpCompleted", {"contact_id": cid, "n": event.n})
    if isinstance(event, Contact.MessageReceived | Contact.MessageSent):
        name = "TextReceived" if isinstance(event, Contact.MessageReceived) else "TextSent"
        return Public(name, {"contact_id": cid, "at": _iso(event.at)})
    if isinstance(event, Referral.Received):
        return Public("ReferralReceived", {"referral_id": cid, "source": event.source,
                                           "received_at": _iso(event.received_at),
                                           "caller_ref": event.caller_ref})
    if isinstance(event, Referral.Accepted):
        return Public("ReferralAccepted", {"referral_id": cid, "first_contact_due_by": _iso(
            getattr(event, "first_contact_due_by", None))})
    if isinstance(event, Referral.FirstContactMade):
        return Public("ReferralFirstContactMade", {"referral_id": cid,
                                                   "contact_id": str(event.contact_id),
                                                   "at": _iso(event.at)})
    if isinstance(event, Referral.Declined):
        return Public("ReferralDeclined", {"referral_id": cid})
    if isinstance(event, DirectoryEntry.Added | DirectoryEntry.Updated):
        # Organisations, not people: their names may travel, for signposting reports.
        name = ("DirectoryEntryAdded" if isinstance(event, DirectoryEntry.Added)
                else "DirectoryEntryUpdated")
        return Public(name, {"entry_id": cid, "name": event.name,
                             "helps_with": list(event.helps_with)})
    if isinstance(event, DirectoryEntry.Removed):
        return Public("DirectoryEntryRemoved", {"entry_id": cid})
    if isinstance(event, Caller.Registered):
        return Public("CallerRegistered", {"caller_ref": event.caller_ref,
                                           "age_band": event.age_band, "gender": event.gender})
    if isinstance(event, Caller.Erased):
        return Public("CallerErased", {"caller_ref": event.caller_ref})
    if isinstance(event, Caller.HistoryRead):
        return Public("CallerHistoryRead", {"by": event.meta.get("actor")})
    return _ring_back(event, cid)


def _ring_back(event: Any, cid: str) -> Public | None:
    """Ringing back: who and when, never a number or a purpose."""
    if isinstance(event, Caller.PhoneRevealed):
        return Public("CallerPhoneRevealed", {"by": event.meta.get("actor"),
                                              "grounds": event.grounds})
    if isinstance(event, NumberRevealed):
        return Public("MissedCallNumberRevealed", {"contact_id": cid,
                                                   "by": event.meta.get("actor")})
    if isinstance(event, CallBackPlaced):
        return Public("CallBackPlaced", {"contact_id": cid, "n": event.n,
                                         "placed_at": _iso(event.placed_at)})
    if isinstance(event, CallBackAnswered):
        return Public("CallBackAnswered", {"contact_id": cid, "n": event.n,
                                           "answered_by": str(event.contact_id)})
    return None

