"""What the shift service tells audit replay (``shared.audit.replay``): its decisions
(assignments, swaps and removals from a shift, debriefs completed, a supporter's
eligibility as it changed, a deactivation) and their reasons, and a debrief's status.
A supporter's name, number, email and every free text are sealed in the events: null
for the auditor, opened for the coordinator.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.shift.app import ShiftApplication
from services.shift.domain.debrief import Debrief
from shared.audit.replay import Hooks
from shared.web.audit import audit_router


def _debrief(debrief: Debrief) -> dict[str, Any]:
    return {"status": debrief.status}


HOOKS = Hooks(
    service="shift",
    decisions={
        "Shift.Assigned": ("supporter_id",),
        "Shift.Unassigned": ("supporter_id", "reason"),
        "Shift.Swapped": ("from_supporter_id", "to_supporter_id"),
        "Debrief.Completed": ("on", "by", "supporter_id"),
        "Supporter.EligibilityChanged": ("eligible", "missing"),
        "Supporter.Deactivated": ("reason",),
    },
    extras={"Debrief": _debrief},
    id_doc="A supporter's, shift's, bag's, debrief's or rota template's id (a UUID).",
)


def router() -> APIRouter:
    """``GET /shift/audit/aggregates/{aggregate_id}`` (``shared.web.audit``)."""
    return audit_router("shift", ShiftApplication, HOOKS)
