"""Outbound: the outreach service's domain events as public integration events, what
other services may know (reporting counts meetings from them).

Ids, codes and times only: never the address, the venue, the reason, the mitigations,
the conditions of an approval, a decline's or cancellation's reason, what was done
about an alert or the outcome (all sealed with the caller's key, and all personal).
Not even the ``caller_ref``: outreach's events name the meeting, and the contact it
came from when there was one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.eventstore.application import Public


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _requested(event: Any, mid: str) -> Public:
    return Public("MeetingRequested", {
        "meeting_id": mid, "kind": event.kind,
        "contact_id": str(event.contact_id) if event.contact_id else None,
        "requested_at": _iso(event.requested_at)})


def _assessed(event: Any, mid: str) -> Public:
    return Public("MeetingRiskAssessed", {"meeting_id": mid, "n": event.n,
                                          "level": event.level,
                                          "factors": list(event.factors)})


def _scheduled(event: Any, mid: str) -> Public:
    return Public("MeetingScheduled", {"meeting_id": mid, "attendees": list(event.attendees),
                                       "starts_at": _iso(event.starts_at),
                                       "ends_at": _iso(event.ends_at)})


def _attendance(name: str) -> Any:
    def public(event: Any, mid: str) -> Public:
        return Public(name, {"meeting_id": mid, "supporter_id": event.supporter_id,
                             "at": _iso(event.at)})
    return public


def _named(name: str, **fields: Any) -> Any:
    def public(event: Any, mid: str) -> Public:
        return Public(name, {"meeting_id": mid,
                             **{k: read(event) for k, read in fields.items()}})
    return public


MAPPING = {
    "Requested": _requested,
    "RiskAssessed": _assessed,
    "Approved": _named("MeetingApproved", self_approved=lambda e: bool(e.self_approved)),
    "Declined": _named("MeetingDeclined"),
    "Scheduled": _scheduled,
    "CheckedIn": _attendance("MeetingCheckedIn"),
    "CheckedOut": _attendance("MeetingCheckedOut"),
    "SafetyCheckOverdue": _named("SafetyCheckOverdue", deadline=lambda e: _iso(e.deadline)),
    "SafetyAlertResolved": _named("SafetyAlertResolved"),
    "Completed": _named("MeetingCompleted"),
    "Cancelled": _named("MeetingCancelled"),
}


def public_event(event: Any) -> Public | None:
    """The meeting's events (its only aggregate), by their class name."""
    mapped = MAPPING.get(type(event).__name__)
    return mapped(event, str(event.originator_id)) if mapped is not None else None
