"""Safety alerts: a meeting in progress whose latest expected end plus the grace passed
without both check-outs (``SafetyCheckOverdue``, raised once by the service's clock).
The coordinator sees them until resolved, and resolves one with what was done. An
alert's id is its meeting's.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response

from services.outreach.api.common import COORD, App, Text
from services.outreach.api.presenters import AlertPage, MeetingOut, alert_page, meeting_out
from shared.web.auth import Principal
from shared.web.deps import Cursor, IfMatch, Strict, roles_doc, with_etag

router = APIRouter()


class ResolveIn(Strict):
    what_was_done: Text


@router.get("/alerts", response_model=AlertPage, summary="Safety alerts",
            description=roles_doc(COORD, "Earliest raised first: the open ones (`status` "
                                  "`open`, the default) or every one (`all`)."))
def alerts(app: App, _p: Annotated[Principal, Depends(COORD)],
           status: Literal["open", "all"] = "open",
           limit: Annotated[int, Query(ge=1, le=200)] = 50,
           cursor: Cursor = None) -> AlertPage:
    rows, next_cursor = app.alerts(open_only=status == "open", limit=limit, cursor=cursor)
    return alert_page(rows, next_cursor)


@router.post("/alerts/{alert_id}/resolve", response_model=MeetingOut,
             summary="Resolve a safety alert",
             description=roles_doc(COORD, "With what was done; only while it is open "
                                   "(409 otherwise). Answers the meeting. Accepts "
                                   "If-Match (the meeting's version)."))
def resolve(alert_id: UUID, body: ResolveIn, response: Response, app: App,
            principal: Annotated[Principal, Depends(COORD)], if_match: IfMatch) -> MeetingOut:
    meeting = app.resolve_alert(principal, alert_id, what_was_done=body.what_was_done,
                                expected_version=if_match)
    with_etag(response, meeting.version)
    return meeting_out(app, principal, meeting)
