"""Debriefs: opened by the shift service itself when the contact service asks for one
after a distressing contact (one for each supporter named), completed by the
coordinator; one still open longer than the setting is flagged overdue.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response
from pydantic import Field

from services.shift.api.common import COORD, App, Day, PersonId
from services.shift.api.presenters import DebriefOut, DebriefPage, debrief_out
from shared.web.auth import Principal
from shared.web.deps import Cursor, IfMatch, Strict, roles_doc, with_etag

router = APIRouter()


class CompleteIn(Strict):
    on: Day = Field(description="When it was held: from the day it was requested to today.")
    by: PersonId | None = Field(default=None, description="Who held it (their id); "
                                "default: you.")


@router.get("/debriefs", response_model=DebriefPage, summary="Debriefs",
            description=roles_doc(COORD, "Oldest request first; `status` (`open`, "
                                  "`complete`) and `supporter_id` filter. Each says whether "
                                  "it is overdue."))
def debriefs(app: App, _p: Annotated[Principal, Depends(COORD)],
             status: Literal["open", "complete"] | None = None,
             supporter_id: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
             limit: Annotated[int, Query(ge=1, le=500)] = 100,
             cursor: Cursor = None) -> DebriefPage:
    items, next_cursor = app.debriefs.list(status=status, supporter_id=supporter_id,
                                           limit=limit, cursor=cursor)
    return DebriefPage(items=[DebriefOut.model_validate(i) for i in items],
                       next_cursor=next_cursor)


@router.get("/debriefs/{debrief_id}", response_model=DebriefOut, summary="One debrief",
            description=roles_doc(COORD))
def get_debrief(debrief_id: UUID, response: Response, app: App,
                _p: Annotated[Principal, Depends(COORD)]) -> DebriefOut:
    debrief = app.debriefs.get(debrief_id)
    with_etag(response, debrief.version)
    return debrief_out(app, debrief)


@router.post("/debriefs/{debrief_id}/complete", response_model=DebriefOut,
             summary="Complete a debrief",
             description=roles_doc(COORD, "When it was held and by whom; once (422 again). "
                                   "Accepts If-Match."))
def complete(debrief_id: UUID, body: CompleteIn, response: Response, app: App,
             principal: Annotated[Principal, Depends(COORD)],
             if_match: IfMatch) -> DebriefOut:
    debrief = app.debriefs.complete(debrief_id, on=body.on, by=body.by or principal.sub,
                                    expected_version=if_match)
    with_etag(response, debrief.version)
    return debrief_out(app, debrief)
