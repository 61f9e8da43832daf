"""What the contact service tells audit replay (``shared.audit.replay``): which of its
events are decisions and which of their fields are the reasons, what state to show
beyond the aggregates' attributes, and that a caller may be named by ``caller_ref``.

Everything else comes from the events: every personal value in them (a caller's alias
and number, summaries, risk reasoning, reasons, purposes, message bodies) is sealed, so
the auditor sees it null and the coordinator sees it opened (``[erased]`` after the
caller's erasure).
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from fastapi import APIRouter

from services.contact.app import ContactApplication
from services.contact.domain import Contact, caller_id_for
from shared.audit.replay import Hooks, parse_uuid
from shared.web.audit import audit_router

CALLER_REF = re.compile(r"^C-[0-9A-HJKMNP-TV-Z]{8}$")


def find(ident: str) -> UUID | None:
    """A contact, referral or directory entry by its UUID; a caller by its UUID or its
    ``caller_ref``."""
    if CALLER_REF.match(ident):
        return caller_id_for(ident)
    return parse_uuid(ident)


def _contact(contact: Contact) -> dict[str, Any]:
    return {"risk_level": contact.risk_level}


HOOKS = Hooks(
    service="contact",
    decisions={
        "Contact.RiskAssessed": ("n", "level", "factors", "protective_factors", "decision",
                                 "reasoning", "supersedes"),
        "Contact.Escalated": ("n", "kind", "reason", "reference"),
        "Contact.Closed": ("no_escalation_reason",),
        "Referral.Accepted": ("reason", "first_contact_due_by"),
        "Referral.Declined": ("reason",),
        "Caller.ConsentChanged": ("consent_to_keep_history", "consent_to_text"),
        "Caller.HistoryRead": ("purpose",),
        "Caller.PhoneRevealed": ("purpose", "grounds"),
        "NumberRevealed": ("purpose",),
    },
    extras={"Contact": _contact},
    find=find,
    id_doc="A contact's, referral's, directory entry's or caller's id (a UUID), or a "
           "caller's `caller_ref`.",
)


def router() -> APIRouter:
    """``GET /contact/audit/aggregates/{aggregate_id}`` (``shared.web.audit``)."""
    return audit_router("contact", ContactApplication, HOOKS)
