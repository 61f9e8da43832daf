"""Shifts: reading the rota, extra shifts, assignments, swaps and check-ins; who is on
call at a moment; the gaps in the weeks ahead.

An assignment refused by a rule of the rota is a 409 that says which (the shift has its
number, the supporter is inactive or not eligible, or on an overlapping shift); two
coordinators filling the last place at once: one of them gets the 409.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import Field

from services.shift.api.common import COORD, ON_CALL, ROTA, App, Text, created_once
from services.shift.api.presenters import (
    OnCallOut,
    ShiftOut,
    ShiftPage,
    shift_out,
    shift_rows,
)
from services.shift.domain import Shift
from services.shift.domain.codes import DEFAULT_REQUIRED, MAX_REQUIRED
from shared.kernel import InvalidCommand
from shared.web.auth import Principal
from shared.web.deps import Cursor, IdempotencyKey, IfMatch, Strict, created, roles_doc, with_etag
from shared.web.types import Instant

router = APIRouter()

COVERAGE_AHEAD = timedelta(weeks=4)
From = Annotated[Instant, Query(alias="from")]
To = Annotated[Instant, Query(alias="to")]
Limit = Annotated[int, Query(ge=1, le=500)]


class ExtraShiftIn(Strict):
    starts_at: Instant
    ends_at: Instant = Field(description="After `starts_at`, at most 25 hours later.")
    required: int = Field(default=DEFAULT_REQUIRED, ge=1, le=MAX_REQUIRED)


class AssignmentIn(Strict):
    supporter_id: UUID


class UnassignIn(Strict):
    reason: Text = Field(description="Why (encrypted; never published).")


class SwapIn(Strict):
    from_supporter_id: UUID = Field(description="Assigned now; gives their place.")
    to_supporter_id: UUID = Field(description="Takes it: active, eligible, free then.")


def _interval(start: datetime, end: datetime) -> None:
    if end <= start:
        raise InvalidCommand("to", "must be after from", "query")


@router.get("/shifts", response_model=ShiftPage, summary="Shifts in an interval",
            description=roles_doc(ROTA, "Shifts overlapping [`from`, `to`), earliest first, "
                                  "each with its assignments and coverage (`covered`, "
                                  "`short`, `empty`)."))
def list_shifts(app: App, _p: Annotated[Principal, Depends(ROTA)], start: From, end: To,
                limit: Limit = 100, cursor: Cursor = None) -> ShiftPage:
    _interval(start, end)
    rows, next_cursor = app.shifts.between(start, end, gaps_only=False, limit=limit,
                                           cursor=cursor)
    return ShiftPage(items=shift_rows(rows), next_cursor=next_cursor)


@router.post("/shifts", status_code=201, response_model=ShiftOut, summary="Add an extra shift",
             description=roles_doc(COORD, "A shift outside the template (bank holiday or "
                                   "Christmas cover): the same rules apply. Send "
                                   "`Idempotency-Key` to make a retry safe."))
def add_shift(body: ExtraShiftIn, request: Request, app: App,
              principal: Annotated[Principal, Depends(COORD)],
              idempotency_key: IdempotencyKey = None) -> Response:
    def show(shift: Shift) -> tuple[ShiftOut, str, int]:
        return shift_out(shift), f"/shift/shifts/{shift.id}", shift.version

    return created_once(
        request, principal, idempotency_key, "POST /shift/shifts", body,
        create=lambda: app.shifts.add_extra(starts_at=body.starts_at, ends_at=body.ends_at,
                                            required=body.required),
        ident=lambda shift: str(shift.id), load=lambda sid: app.shifts.get(UUID(sid)),
        show=show)


@router.get("/shifts/{shift_id}", response_model=ShiftOut, summary="One shift",
            description=roles_doc(ROTA))
def get_shift(shift_id: UUID, response: Response, app: App,
              _p: Annotated[Principal, Depends(ROTA)]) -> ShiftOut:
    shift = app.shifts.get(shift_id)
    with_etag(response, shift.version)
    return shift_out(shift)


@router.post("/shifts/{shift_id}/assignments", status_code=201, response_model=ShiftOut,
             summary="Assign a supporter",
             description=roles_doc(COORD, "409 saying why when the shift already has its "
                                   "number, or the supporter is already on it, inactive, "
                                   "not eligible on the shift's date, or on an overlapping "
                                   "shift; an unknown supporter is 422. Answers the shift. "
                                   "Accepts If-Match."))
def assign(shift_id: UUID, body: AssignmentIn, response: Response, app: App,
           _p: Annotated[Principal, Depends(COORD)], if_match: IfMatch) -> ShiftOut:
    shift = app.shifts.assign(shift_id, body.supporter_id, if_match)
    created(response, f"/shift/shifts/{shift_id}/assignments/{body.supporter_id}",
            shift.version)
    return shift_out(shift)


@router.delete("/shifts/{shift_id}/assignments/{supporter_id}", response_model=ShiftOut,
               summary="Unassign a supporter",
               description=roles_doc(COORD, "With a JSON body `{\"reason\": ...}` (encrypted, "
                                     "never in the URL). 404 when they are not on the "
                                     "shift. Answers the shift. Accepts If-Match."))
def unassign(shift_id: UUID, supporter_id: UUID, body: Annotated[UnassignIn, Body()],
             response: Response, app: App, _p: Annotated[Principal, Depends(COORD)],
             if_match: IfMatch) -> ShiftOut:
    shift = app.shifts.unassign(shift_id, supporter_id, reason=body.reason,
                                expected_version=if_match)
    with_etag(response, shift.version)
    return shift_out(shift)


@router.post("/shifts/{shift_id}/swaps", response_model=ShiftOut, summary="Swap a place",
             description=roles_doc(COORD, "One supporter's place goes to another in one "
                                   "change: the newcomer is checked as for an assignment "
                                   "(409 saying why). Accepts If-Match."))
def swap(shift_id: UUID, body: SwapIn, response: Response, app: App,
         _p: Annotated[Principal, Depends(COORD)], if_match: IfMatch) -> ShiftOut:
    shift = app.shifts.swap(shift_id, body.from_supporter_id, body.to_supporter_id, if_match)
    with_etag(response, shift.version)
    return shift_out(shift)


@router.post("/shifts/{shift_id}/check-in", response_model=ShiftOut, summary="Check in",
             description=roles_doc(ROTA, "\"I am on call\": the supporter assigned to the "
                                   "shift, with their own token (403 for anyone else), "
                                   "once, from 30 minutes before the start until the end "
                                   "(422 outside it). No body."))
def check_in(shift_id: UUID, response: Response, app: App,
             principal: Annotated[Principal, Depends(ROTA)]) -> ShiftOut:
    shift = app.shifts.check_in(shift_id, principal.sub, datetime.now(UTC))
    with_etag(response, shift.version)
    return shift_out(shift)


@router.get("/on-call", response_model=OnCallOut, summary="Who is on call",
            description=roles_doc(ON_CALL, "The shifts on at `at` (default now) and their "
                                  "supporters (ids) and check-ins, for the phone routing "
                                  "of other systems."))
def on_call(app: App, _p: Annotated[Principal, Depends(ON_CALL)],
            at: Instant | None = None) -> OnCallOut:
    moment = at or datetime.now(UTC)
    return OnCallOut(at=moment, shifts=shift_rows(app.shifts.on_call(moment)))


@router.get("/coverage", response_model=ShiftPage, summary="Gaps in the rota",
            description=roles_doc(COORD, "The shifts overlapping [`from`, `to`) that are "
                                  "`short` or `empty`, earliest first; default from now, "
                                  "four weeks."))
def coverage(app: App, _p: Annotated[Principal, Depends(COORD)],
             start: Annotated[Instant | None, Query(alias="from")] = None,
             end: Annotated[Instant | None, Query(alias="to")] = None,
             limit: Limit = 100, cursor: Cursor = None) -> ShiftPage:
    first = start or datetime.now(UTC)
    last = end or first + COVERAGE_AHEAD
    _interval(first, last)
    rows, next_cursor = app.shifts.between(first, last, gaps_only=True, limit=limit,
                                           cursor=cursor)
    return ShiftPage(items=shift_rows(rows), next_cursor=next_cursor)
