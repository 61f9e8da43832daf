"""The outreach service's HTTP API: meetings (request, risk, approval, attendees,
check-ins, outcome) and the safety alerts; request models beside their endpoints,
response models and presenters in ``presenters``. No business rules here: translate
and delegate (the domain checks every rule, ``shared.web.problems`` maps its errors).

Who sees what: a supporter only the meetings they requested or attend (404 for the
others), with the address and free text; the coordinator every meeting, with them; the
auditor every meeting's decision trail, without them.
"""

from __future__ import annotations

from fastapi import APIRouter

from services.outreach import audit
from services.outreach.api import alerts, meetings

# In this order: the order routes are matched in and of the OpenAPI document's paths.
RESOURCES = (meetings, alerts)


def router() -> APIRouter:
    r = APIRouter(prefix="/outreach", tags=["outreach"])
    for resource in RESOURCES:
        r.include_router(resource.router)
    r.include_router(audit.router())  # replay as of a moment (shared.web.audit)
    return r
