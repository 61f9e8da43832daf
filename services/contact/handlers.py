"""The contact service's public events: what other services may know (no personal data)."""

from __future__ import annotations

from typing import Any

from services.contact.domain import Contact
from shared.application import Public


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def public_event(event: Any) -> Public | None:
    if isinstance(event, Contact.Logged):
        return Public(
            "ContactLogged",
            {
                "contact_id": str(event.originator_id),
                "channel": event.channel,
                "started_at": _iso(event.started_at),
                "ended_at": _iso(event.ended_at),
                "issues": list(event.issues),
            },
        )
    if isinstance(event, Contact.Corrected):
        return Public(
            "ContactCorrected",
            {
                "contact_id": str(event.originator_id),
                "issues": list(event.issues) if event.issues is not None else None,
                "ended_at": _iso(event.ended_at),
            },
        )
    return None
