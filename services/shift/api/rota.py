"""The weekly rota: its template of slots (London wall-clock time) and publishing a
week's shifts from it. The coordinator keeps both; supporters may read the template.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from pydantic import Field

from services.shift.api.common import COORD, HHMM, ISO_WEEK, ROTA, App
from services.shift.api.presenters import TemplateOut, WeekOut, shift_out, template_out
from services.shift.domain import Weekday
from services.shift.domain.codes import DEFAULT_REQUIRED, MAX_REQUIRED, MAX_SLOTS
from shared.web.auth import Principal
from shared.web.deps import IfMatch, Strict, roles_doc, with_etag

router = APIRouter()


class SlotIn(Strict):
    weekday: Weekday
    starts: str = Field(pattern=HHMM, description="London wall-clock time, HH:MM.")
    ends: str = Field(pattern=HHMM, description="HH:MM; at or before `starts`: the next "
                      "day (20:00 to 02:00).")
    required: int = Field(default=DEFAULT_REQUIRED, ge=1, le=MAX_REQUIRED)


class TemplateIn(Strict):
    slots: list[SlotIn] = Field(max_length=MAX_SLOTS, description="No two starting on the "
                                "same weekday at the same time.")


@router.get("/rota/template", response_model=TemplateOut, summary="The weekly template",
            description=roles_doc(ROTA, "The weekly slots. Until it is first changed, the "
                                  "default: Friday, Saturday and Sunday 20:00-02:00, "
                                  "Saturday and Sunday 08:00-14:00, two supporters each "
                                  "(version 0)."))
def get_template(response: Response, app: App,
                 _p: Annotated[Principal, Depends(ROTA)]) -> TemplateOut:
    slots, version = app.template()
    with_etag(response, version)
    return template_out(slots, version)


@router.put("/rota/template", response_model=TemplateOut, summary="Replace the template",
            description=roles_doc(COORD, "Replaces every slot. Weeks already published keep "
                                  "their shifts. Accepts If-Match (`\"0\"` for the default)."))
def put_template(body: TemplateIn, response: Response, app: App,
                 _p: Annotated[Principal, Depends(COORD)], if_match: IfMatch) -> TemplateOut:
    slots, version = app.replace_template([s.model_dump(mode="json") for s in body.slots],
                                          if_match)
    with_etag(response, version)
    return template_out(slots, version)


IsoWeek = Annotated[str, Path(pattern=ISO_WEEK, description="An ISO week: `2026-W49`.")]


@router.post("/rota/weeks/{iso_week}/publish", response_model=WeekOut,
             summary="Publish a week",
             description=roles_doc(COORD, "Creates the week's shifts from the template, in "
                                   "UTC computed from London time (over a clock change a "
                                   "night shift lasts 5 or 7 hours). Idempotent: publishing "
                                   "a week again creates nothing (`created: 0`) and answers "
                                   "its shifts. A week more than two years ahead is 422."))
def publish(iso_week: IsoWeek, app: App,
            _p: Annotated[Principal, Depends(COORD)]) -> WeekOut:
    created, shifts = app.publish_week(iso_week)
    return WeekOut(iso_week=iso_week, created=created, shifts=[shift_out(s) for s in shifts])
