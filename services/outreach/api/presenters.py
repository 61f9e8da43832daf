"""Response models of the outreach API and the functions that build them from meetings
and read-table rows.

The address, the venue and every free text are stored sealed with the caller's key; a
presenter opens them (``KeyStore.reveal``: the plaintext, or ``[erased]`` once the
caller was erased) only for whoever may see them (``OutreachApplication.sees_personal``:
the coordinator and the supporters involved, never the auditor, who gets the trail
with them null). Lists come from the read tables: ids, codes and times only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from services.outreach.app import OutreachApplication
from services.outreach.domain import Meeting
from services.outreach.domain.codes import Factor, Kind, RiskLevel, Status
from shared.kernel import is_sealed
from shared.web.auth import Principal

Reveal = Callable[[str | None], str | None]


class AssessmentOut(BaseModel):
    n: int
    level: RiskLevel
    factors: list[Factor]
    mitigations: str | None
    assessed_by: str
    assessed_at: datetime


class ApprovalOut(BaseModel):
    approved_by: str
    at: datetime
    conditions: str | None
    assessment_n: int = Field(description="The risk assessment the approval relied on.")
    self_approved: bool = Field(description="A low-risk community meeting approved by the "
                                "supporter who requested it.")


class CheckInOut(BaseModel):
    supporter_id: str
    at: datetime
    expected_end: datetime
    checked_out_at: datetime | None


class AlertOut(BaseModel):
    id: UUID = Field(description="The alert's id: its meeting's.")
    meeting_id: UUID
    kind: Kind
    deadline: datetime = Field(description="When both should have checked out: the "
                               "latest expected end plus the grace.")
    raised_at: datetime
    missing: list[str] = Field(description="The attendees not checked out when raised.")
    attendees: list[str]
    resolved_at: datetime | None
    resolved_by: str | None


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None


class MeetingOut(BaseModel):
    id: UUID
    kind: Kind
    status: Status
    caller_ref: str
    contact_id: UUID | None
    proposed_at: datetime
    expected_minutes: int
    ends_at: datetime
    venue: str | None = Field(description="A community meeting's; null for the auditor.")
    address: str | None = Field(description="A home visit's; null for the auditor, "
                                "`[erased]` once the caller was erased.")
    reason: str | None
    requested_by: str
    assessments: list[AssessmentOut] = Field(description="Every risk assessment, in "
                                             "order: the last one is current.")
    approval: ApprovalOut | None
    decline: dict[str, Any] | None
    attendees: list[str]
    check_ins: list[CheckInOut]
    deadline: datetime | None = Field(description="In progress: when the safety check "
                                      "falls due (the latest expected end plus the grace).")
    alert: dict[str, Any] | None = Field(description="The safety alert, if one was raised.")
    outcome: dict[str, Any] | None
    cancellation: dict[str, Any] | None
    trail: list[dict[str, Any]] = Field(description="The decision trail, in order: each "
                                        "entry's `event`, `at`, `actor` and the decision's "
                                        "fields (free text null for the auditor).")
    version: int


class MeetingListItem(BaseModel):
    id: UUID
    kind: Kind
    status: Status
    caller_ref: str
    contact_id: UUID | None
    requested_by: str
    requested_at: datetime
    starts_at: datetime
    ends_at: datetime
    attendees: list[str]
    checked_in: list[str]
    checked_out: list[str]
    deadline: datetime | None = Field(description="Once checked in: when the safety "
                                      "check falls due (the latest expected end plus the "
                                      "grace).")
    alert: str | None = Field(description="`open`, `resolved`, or null: none raised.")
    version: int


class MeetingPage(BaseModel):
    items: list[MeetingListItem]
    next_cursor: str | None


def _opened(value: Any, reveal: Reveal) -> Any:
    """A value of the meeting's state with every sealed string in it revealed (or
    hidden)."""
    if isinstance(value, dict):
        return {k: _opened(v, reveal) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_opened(v, reveal) for v in value]
    if is_sealed(value):
        return reveal(value)
    return value


def _check_ins(meeting: Meeting) -> list[dict[str, Any]]:
    return [{"supporter_id": sid, "at": c["at"], "expected_end": c["expected_end"],
             "checked_out_at": meeting.check_outs.get(sid)}
            for sid, c in meeting.check_ins.items()]


def meeting_out(app: OutreachApplication, principal: Principal, meeting: Meeting) -> MeetingOut:
    """The meeting as ``principal`` may see it (``app.meeting_for`` decided that they may
    see it at all)."""
    reveal: Reveal = app.keys.reveal if app.sees_personal(principal) else (lambda _t: None)
    state = {
        "id": meeting.id, "kind": meeting.kind, "status": meeting.status,
        "caller_ref": meeting.caller_ref, "contact_id": meeting.contact_id,
        "proposed_at": meeting.proposed_at, "expected_minutes": meeting.expected_minutes,
        "ends_at": meeting.ends_at, "venue": meeting.venue, "address": meeting.address,
        "reason": meeting.reason, "requested_by": meeting.requested_by,
        "assessments": meeting.assessments, "approval": meeting.approval,
        "decline": meeting.declined, "attendees": meeting.attendees,
        "check_ins": _check_ins(meeting),
        "deadline": meeting.deadline(app.grace) if meeting.check_ins else None,
        "alert": meeting.alert, "outcome": meeting.outcome,
        "cancellation": meeting.cancellation, "trail": meeting.trail(),
        "version": meeting.version,
    }
    return MeetingOut.model_validate(_opened(state, reveal))


def meeting_page(rows: list[dict[str, Any]], next_cursor: str | None) -> MeetingPage:
    return MeetingPage(items=[MeetingListItem.model_validate(r) for r in rows],
                       next_cursor=next_cursor)


def alert_page(rows: list[dict[str, Any]], next_cursor: str | None) -> AlertPage:
    return AlertPage(items=[AlertOut.model_validate(r) for r in rows], next_cursor=next_cursor)
