"""Meetings: a community meeting or a home visit, from its request through the risk
assessment, the approval (or decline), the two attendees and their check-ins, to its
outcome (or its cancellation), each decision in its trail with who made it and when.

Every command answers the meeting as the caller may see it, with its version as ETag,
and accepts If-Match. An illegal transition (approving before an assessment, checking
in before it is scheduled, an outcome before both check-outs) is a 409 naming the
current state and what is needed.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field

from services.outreach.api.common import (
    COORD,
    OUTREACH,
    READ,
    App,
    CallerRef,
    PersonId,
    Text,
    created_once,
)
from services.outreach.api.presenters import MeetingOut, MeetingPage, meeting_out, meeting_page
from services.outreach.domain import Meeting
from services.outreach.domain.codes import (
    MAX_MINUTES,
    MIN_CHECK_IN_MINUTES,
    MIN_MINUTES,
    Factor,
    Kind,
    RiskLevel,
    Status,
)
from shared.audit.access import record_read
from shared.web.auth import Principal
from shared.web.deps import (
    Cursor,
    IdempotencyKey,
    IfMatch,
    Purpose,
    Strict,
    roles_doc,
    with_etag,
)
from shared.web.types import Instant

router = APIRouter()


class MeetingIn(Strict):
    caller_ref: CallerRef
    contact_id: UUID | None = Field(default=None, description="The call where it was "
                                    "asked for, if any.")
    kind: Kind
    proposed_at: Instant = Field(description="When it is to start.")
    expected_minutes: int = Field(ge=MIN_MINUTES, le=MAX_MINUTES)
    venue: Text | None = Field(default=None, description="A community meeting's venue "
                               "(required there; refused for a home visit).")
    address: Text | None = Field(default=None, description="A home visit's address "
                                 "(required there; refused for a community meeting). "
                                 "Personal data: sealed, never on the bus.")
    reason: Text


class AssessmentIn(Strict):
    level: RiskLevel
    factors: list[Factor] = Field(default_factory=list, max_length=len(Factor))
    mitigations: Text | None = None


class ApproveIn(Strict):
    conditions: Text | None = None


class ReasonIn(Strict):
    reason: Text


class AttendeesIn(Strict):
    supporter_ids: list[PersonId] = Field(min_length=2, max_length=2, description="Exactly "
                                          "two distinct supporters, by the ids the shift "
                                          "service gave them.")


class CheckInIn(Strict):
    expected_minutes: int = Field(ge=MIN_CHECK_IN_MINUTES, le=MAX_MINUTES,
                                  description="How long from now you expect to be.")


class OutcomeIn(Strict):
    what_happened: Text
    follow_up: Text | None = None


def _answer(response: Response, app: App, principal: Principal, meeting: Meeting
            ) -> MeetingOut:
    with_etag(response, meeting.version)
    return meeting_out(app, principal, meeting)


@router.post("/meetings", status_code=201, response_model=MeetingOut,
             summary="Request a meeting or home visit",
             description=roles_doc(OUTREACH, "A community meeting needs a `venue`, a home "
                                   "visit an `address`. You are recorded as the requester. "
                                   "Send `Idempotency-Key` to make a retry safe."))
def request_meeting(body: MeetingIn, request: Request, app: App,
                    principal: Annotated[Principal, Depends(OUTREACH)],
                    idempotency_key: IdempotencyKey = None) -> Response:
    def create() -> Meeting:
        return app.request_meeting(
            principal, caller_ref=body.caller_ref, contact_id=body.contact_id,
            kind=body.kind.value, proposed_at=body.proposed_at,
            expected_minutes=body.expected_minutes, venue=body.venue,
            address=body.address, reason=body.reason)

    def show(meeting: Meeting) -> tuple[MeetingOut, str, int]:
        return (meeting_out(app, principal, meeting), f"/outreach/meetings/{meeting.id}",
                meeting.version)

    return created_once(request, principal, idempotency_key, "POST /outreach/meetings",
                        body, create=create, ident=lambda m: str(m.id),
                        load=lambda mid: app.get(UUID(mid)), show=show)


@router.get("/meetings", response_model=MeetingPage, summary="Meetings, earliest first",
            description=roles_doc(READ, "By `status`, and a `from`/`to` window on their "
                                  "start. Supporters see the meetings they requested or "
                                  "attend; the coordinator and the auditor all. Ids, codes "
                                  "and times only."))
def list_meetings(app: App, principal: Annotated[Principal, Depends(READ)],
                  status: Status | None = None,
                  start: Annotated[Instant | None, Query(alias="from")] = None,
                  end: Annotated[Instant | None, Query(alias="to")] = None,
                  limit: Annotated[int, Query(ge=1, le=200)] = 50,
                  cursor: Cursor = None) -> MeetingPage:
    rows, next_cursor = app.list_meetings(principal, status=status.value if status else None,
                                          start=start, end=end, limit=limit, cursor=cursor)
    return meeting_page(rows, next_cursor)


@router.get("/meetings/{meeting_id}", response_model=MeetingOut, summary="One meeting",
            description=roles_doc(READ, "With its decision trail. A supporter sees only a "
                                  "meeting they requested or attend (404 otherwise); the "
                                  "auditor sees the trail without the address, venue and "
                                  "free text."))
def get_meeting(meeting_id: UUID, response: Response, app: App,
                principal: Annotated[Principal, Depends(READ)],
                purpose: Purpose = None) -> MeetingOut:
    meeting = app.meeting_for(principal, meeting_id)
    if app.sees_personal(principal):  # the address and free text: recorded first
        record_read(app, app.keys, kind="meeting", record_id=meeting.id,
                    subject=meeting.caller_ref, purpose=purpose)
    return _answer(response, app, principal, meeting)


@router.post("/meetings/{meeting_id}/risk-assessments", response_model=MeetingOut,
             summary="Assess the risk",
             description=roles_doc(OUTREACH, "You are the assessor. A later assessment "
                                   "supersedes the last, never overwrites it; none after "
                                   "the approval (409)."))
def assess(meeting_id: UUID, body: AssessmentIn, response: Response, app: App,
           principal: Annotated[Principal, Depends(OUTREACH)],
           if_match: IfMatch) -> MeetingOut:
    meeting, _n = app.assess_risk(principal, meeting_id, level=body.level.value,
                                  factors=[f.value for f in body.factors],
                                  mitigations=body.mitigations, expected_version=if_match)
    return _answer(response, app, principal, meeting)


@router.post("/meetings/{meeting_id}/approve", response_model=MeetingOut,
             summary="Approve",
             description=roles_doc(OUTREACH, "The coordinator; or the supporter who "
                                   "requested a community meeting whose risk is `low` "
                                   "(403 otherwise). Needs a risk assessment (409); a home "
                                   "visit's made within the setting's days, and never at "
                                   "`high` risk (422: meet in the community instead)."))
def approve(meeting_id: UUID, body: ApproveIn, response: Response, app: App,
            principal: Annotated[Principal, Depends(OUTREACH)],
            if_match: IfMatch) -> MeetingOut:
    meeting = app.approve(principal, meeting_id, conditions=body.conditions,
                          expected_version=if_match)
    return _answer(response, app, principal, meeting)


@router.post("/meetings/{meeting_id}/decline", response_model=MeetingOut,
             summary="Decline",
             description=roles_doc(COORD, "With a reason, before the approval (409 "
                                   "after)."))
def decline(meeting_id: UUID, body: ReasonIn, response: Response, app: App,
            principal: Annotated[Principal, Depends(COORD)],
            if_match: IfMatch) -> MeetingOut:
    meeting = app.decline(principal, meeting_id, reason=body.reason, expected_version=if_match)
    return _answer(response, app, principal, meeting)


@router.post("/meetings/{meeting_id}/attendees", response_model=MeetingOut,
             summary="Name the two attendees",
             description=roles_doc(OUTREACH, "Once approved: exactly two distinct "
                                   "supporters, each active and eligible (from the shift "
                                   "service's events) and booked on no other meeting at "
                                   "that time (422 naming who); the approver is not one "
                                   "of them, unless they approved their own low-risk "
                                   "community meeting."))
def attendees(meeting_id: UUID, body: AttendeesIn, response: Response, app: App,
              principal: Annotated[Principal, Depends(OUTREACH)],
              if_match: IfMatch) -> MeetingOut:
    meeting = app.schedule(principal, meeting_id, supporter_ids=list(body.supporter_ids),
                           expected_version=if_match)
    return _answer(response, app, principal, meeting)


@router.post("/meetings/{meeting_id}/check-in", response_model=MeetingOut,
             summary="Check in (an attendee)",
             description=roles_doc(OUTREACH, "You, an attendee, arrive, saying how long you "
                                   "expect to be; once each. If the latest expected end "
                                   "plus the grace passes without both check-outs (or, "
                                   "with nobody checked in, the planned end plus the "
                                   "grace), a safety alert is raised."))
def check_in(meeting_id: UUID, body: CheckInIn, response: Response, app: App,
             principal: Annotated[Principal, Depends(OUTREACH)],
             if_match: IfMatch) -> MeetingOut:
    meeting = app.check_in(principal, meeting_id, expected_minutes=body.expected_minutes,
                           expected_version=if_match)
    return _answer(response, app, principal, meeting)


@router.post("/meetings/{meeting_id}/check-out", response_model=MeetingOut,
             summary="Check out (an attendee)",
             description=roles_doc(OUTREACH, "You, an attendee who checked in, have left; "
                                   "once each."))
def check_out(meeting_id: UUID, response: Response, app: App,
              principal: Annotated[Principal, Depends(OUTREACH)],
              if_match: IfMatch) -> MeetingOut:
    meeting = app.check_out(principal, meeting_id, expected_version=if_match)
    return _answer(response, app, principal, meeting)


@router.post("/meetings/{meeting_id}/outcome", response_model=MeetingOut,
             summary="Record the outcome",
             description=roles_doc(OUTREACH, "What happened and any follow-up, once both "
                                   "attendees have checked out; the meeting is then "
                                   "`completed`."))
def outcome(meeting_id: UUID, body: OutcomeIn, response: Response, app: App,
            principal: Annotated[Principal, Depends(OUTREACH)],
            if_match: IfMatch) -> MeetingOut:
    meeting = app.record_outcome(principal, meeting_id, what_happened=body.what_happened,
                                 follow_up=body.follow_up, expected_version=if_match)
    return _answer(response, app, principal, meeting)


@router.post("/meetings/{meeting_id}/cancel", response_model=MeetingOut, summary="Cancel",
             description=roles_doc(OUTREACH, "With a reason, any time before it is "
                                   "completed (409 once completed, declined or "
                                   "cancelled)."))
def cancel(meeting_id: UUID, body: ReasonIn, response: Response, app: App,
           principal: Annotated[Principal, Depends(OUTREACH)],
           if_match: IfMatch) -> MeetingOut:
    meeting = app.cancel(principal, meeting_id, reason=body.reason, expected_version=if_match)
    return _answer(response, app, principal, meeting)
