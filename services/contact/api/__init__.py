"""The contact service's HTTP API: one module per resource, its request models beside
its endpoints; response models and presenters in ``presenters``. No business rules
here: translate and delegate (the domain checks every rule, ``shared.web.problems``
maps its errors).

Who sees what: personal data (alias, summaries, reasons, risk reasoning) only for the
coordinator and for the supporters who handled the contact; auditors see coded fields
only; partners may only refer people in.
"""

from __future__ import annotations

from fastapi import APIRouter

from services.contact import audit
from services.contact.api import (
    callers,
    contacts,
    directory,
    inbox,
    referrals,
    ringback,
    texts,
)

# In this order: it is the order routes are matched in (``/callers/lookup`` before
# ``/callers/{caller_ref}``) and the order of the OpenAPI document's paths.
RESOURCES = (callers, contacts, referrals, directory, texts, inbox, ringback)


def router() -> APIRouter:
    r = APIRouter(prefix="/contact", tags=["contact"])
    for resource in RESOURCES:
        r.include_router(resource.router)
    r.include_router(audit.router())  # replay as of a moment (shared.web.audit)
    return r
