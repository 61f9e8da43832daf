"""The shift service's HTTP API: one module per resource, its request models beside its
endpoints; response models and presenters in ``presenters``. No business rules here:
translate and delegate (the domain checks every rule, ``shared.web.problems`` maps its
errors). Roles: ``common``.
"""

from __future__ import annotations

from fastapi import APIRouter

from services.shift import audit
from services.shift.api import bags, debriefs, rota, shifts, supporters

# In this order: the order routes are matched in and of the OpenAPI document's paths.
RESOURCES = (supporters, rota, shifts, bags, debriefs)


def router() -> APIRouter:
    r = APIRouter(prefix="/shift", tags=["shift"])
    for resource in RESOURCES:
        r.include_router(resource.router)
    r.include_router(audit.router())  # replay as of a moment (shared.web.audit)
    return r
