"""What the outreach service tells audit replay (``shared.audit.replay``): its decisions
(risk assessed, approved with the approver and the assessment it relied on, declined,
cancelled, a safety alert resolved) and their reasons, and the meeting's own decision
trail (``Meeting.trail``, the trail ``GET /outreach/meetings/{id}`` shows) beside its
state. The address, the venue and every free text are sealed in the events: null for
the auditor, opened for the coordinator, ``[erased]`` once the caller was erased.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.outreach.app import OutreachApplication
from services.outreach.domain import Meeting
from shared.audit.replay import Hooks
from shared.web.audit import audit_router


def _meeting(meeting: Meeting) -> dict[str, Any]:
    return {"trail": meeting.trail()}


HOOKS = Hooks(
    service="outreach",
    decisions={
        "Meeting.RiskAssessed": ("n", "level", "factors", "mitigations"),
        "Meeting.Approved": ("by", "assessment_n", "self_approved", "conditions"),
        "Meeting.Declined": ("reason",),
        "Meeting.Cancelled": ("reason",),
        "SafetyAlertResolved": ("what_was_done",),
    },
    extras={"Meeting": _meeting},
    id_doc="A meeting's id (a UUID).",
)


def router() -> APIRouter:
    """``GET /outreach/audit/aggregates/{aggregate_id}`` (``shared.web.audit``)."""
    return audit_router("outreach", OutreachApplication, HOOKS)
