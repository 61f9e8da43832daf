"""The coordinator's dashboard over HTTP: ``GET /reporting/dashboard`` (the document,
``dashboard.py``) and ``GET /reporting/dashboard/stream`` (the same document as
Server-Sent Events whenever it changes, and a heartbeat).

The stream is told of changes inside the process: reporting's projection calls its
listeners after each transaction that changed its tables (``Projection.changed``), and
the stream then reads the dashboard again and sends it if it differs from the last it
sent. After ``SOLIDARITY_DASHBOARD_HEARTBEAT_S`` without sending anything it sends a
comment (``: heartbeat``) and reads the dashboard again too, as the clock alone changes
it (a debrief becoming overdue, a shift starting). It reads at most every
``MIN_INTERVAL_S``: a burst of events (a rebuild) is one read, not one each.

A client whose ``Accept`` does not name ``text/event-stream`` (an ``EventSource`` always
does; curl's ``*/*`` does not) gets the document as one event and the response ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from services.reporting import dashboard
from shared.web.auth import Allow, Principal, Role
from shared.web.deps import roles_doc, runtime_of

DASHBOARD = Allow(Role.COORDINATOR)
MIN_INTERVAL_S = 0.1


class DashboardAuditAlert(BaseModel):
    kind: Literal["source_rewound"]
    upstream: str = Field(description="The source service.")
    notification_id: int = Field(description="Where it was found.")
    reason: Literal["hash_differs", "event_gone", "checkpoint_differs"]
    detail: str
    detected_at: datetime
    action: str = Field(description="What to do.")


class DashboardAuditAlerts(BaseModel):
    count: int
    items: list[DashboardAuditAlert]


class DashboardAlert(BaseModel):
    meeting_id: str
    raised_at: datetime | None
    deadline: datetime | None


class DashboardAlerts(BaseModel):
    count: int
    items: list[DashboardAlert]


class DashboardCrewMember(BaseModel):
    supporter_id: str
    checked_in_at: datetime | None


class DashboardShift(BaseModel):
    shift_id: str
    slot: str | None = Field(description="The rota's slot; null for an extra shift.")
    starts_at: datetime
    ends_at: datetime
    required: int


class DashboardOnCall(DashboardShift):
    supporters: list[DashboardCrewMember]
    checked_in: int
    all_checked_in: bool = Field(description="As many supporters as it requires, each "
                                             "checked in.")


class DashboardShortShift(DashboardShift):
    assigned: int


class DashboardShortShifts(BaseModel):
    count: int
    items: list[DashboardShortShift]


class DashboardDebrief(BaseModel):
    debrief_id: str
    opened_at: datetime
    due_by: datetime
    overdue: bool


class DashboardDebriefs(BaseModel):
    count: int
    overdue: int
    items: list[DashboardDebrief]


class DashboardFollowUp(BaseModel):
    kind: Literal["follow_up", "first_contact"] = Field(
        description="follow_up: a contact's (contact_id, n); first_contact: an accepted "
                    "referral's first contact (referral_id).")
    contact_id: str | None = None
    n: int | None = None
    referral_id: str | None = None
    due_by: datetime
    overdue: bool


class DashboardFollowUps(BaseModel):
    count: int
    overdue: int
    items: list[DashboardFollowUp]


class DashboardMeeting(BaseModel):
    meeting_id: str
    status: Literal["requested", "risk_assessed"]
    kind: str | None
    requested_at: datetime | None
    risk_level: str | None


class DashboardMeetings(BaseModel):
    count: int
    items: list[DashboardMeeting]


class DashboardWeekend(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: datetime = Field(alias="from", description="Friday 18:00 London time.")
    to: datetime = Field(description="The Monday 08:00 London time after it.")
    current: bool = Field(description="False between weekends: the last one's figures.")
    contacts: int = Field(description="Answered contacts started in it.")
    missed_calls: int


class Dashboard(BaseModel):
    safety_alerts: DashboardAlerts
    audit_alerts: DashboardAuditAlerts = Field(
        description="Sources whose store was found rewound: reporting stopped applying "
                    "them; their figures stand still until a rebuild.")
    on_call: list[DashboardOnCall]
    short_shifts: DashboardShortShifts
    debriefs: DashboardDebriefs
    follow_ups: DashboardFollowUps
    meetings_awaiting_approval: DashboardMeetings
    weekend: DashboardWeekend
    at: datetime = Field(description="When it was read.")


class EventStream(StreamingResponse):
    media_type = "text/event-stream"


# Each event (OpenAPI before 3.2: ``schema`` describes one event of the stream).
STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {200: {
    "description": "Server-Sent Events: `event: dashboard` with the document (as "
                   "GET /reporting/dashboard answers it) as `data`, and `: heartbeat` "
                   "comments.",
    "content": {"text/event-stream": {"schema": {
        "type": "object",
        "properties": {
            "event": {"type": "string", "enum": ["dashboard"]},
            "data": {"type": "string", "contentMediaType": "application/json",
                     "description": "The dashboard, as JSON."},
            "id": {"type": "string"},
            "retry": {"type": "integer"},
        },
        "required": ["event", "data"],
    }}}}}

SECTIONS = (
    " Active safety alerts first, always, and beside them any source found rewound "
    "(audit_alerts: its store was restored from an older backup; rebuild); who is on "
    "call now and whether they have all checked in; shifts short of their required "
    "number in the next 14 days; open debriefs, overdue first; follow-ups and "
    "referrals' first contacts due within 24 hours (overdue included); meetings "
    "waiting for approval; contacts this weekend (from Friday 18:00 to Monday 08:00, "
    "London time). Ids, codes, counts and times only."
)


def _read(request: Request) -> Dashboard:
    app = runtime_of(request, "reporting").app
    after = timedelta(hours=app.settings.debrief_overdue_hours)
    doc = dashboard.read(app.engine, datetime.now(UTC), debrief_overdue_after=after)
    return Dashboard.model_validate(doc)


def _event(doc: Dashboard) -> str:
    return f"event: dashboard\ndata: {doc.model_dump_json(by_alias=True)}\n\n"


async def _events(request: Request, heartbeat_s: float) -> AsyncIterator[str]:
    if "text/event-stream" not in request.headers.get("accept", ""):
        yield _event(await asyncio.to_thread(_read, request))  # a snapshot: one event
        return
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()

    def tell() -> None:  # on the projection's thread
        with contextlib.suppress(RuntimeError):  # the loop has closed
            loop.call_soon_threadsafe(changed.set)

    projection = runtime_of(request, "reporting").projection
    projection.listeners.append(tell)
    try:
        yield "retry: 3000\n\n"  # an EventSource reconnects after 3 s
        last: str | None = None
        sent_at = loop.time()
        read_at = 0.0
        while True:
            await asyncio.sleep(max(0.0, read_at + MIN_INTERVAL_S - loop.time()))
            changed.clear()
            read_at = loop.time()
            doc = await asyncio.to_thread(_read, request)
            seen = doc.model_dump_json(by_alias=True, exclude={"at"})
            if seen != last:
                last = seen
                yield _event(doc)
                sent_at = loop.time()
            elif loop.time() - sent_at >= heartbeat_s:
                yield ": heartbeat\n\n"
                sent_at = loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(),
                                       max(0.0, heartbeat_s - (loop.time() - sent_at)))
    finally:
        with contextlib.suppress(ValueError):
            projection.listeners.remove(tell)


def router() -> APIRouter:
    r = APIRouter()  # included in reporting's (its prefix and tag)

    @r.get(
        "/dashboard",
        response_model=Dashboard,
        summary="The coordinator's dashboard",
        description=roles_doc(DASHBOARD, "What needs attention now." + SECTIONS),
    )
    async def get_dashboard(
        request: Request,
        _principal: Annotated[Principal, Depends(DASHBOARD)],
    ) -> Dashboard:
        return await asyncio.to_thread(_read, request)

    @r.get(
        "/dashboard/stream",
        response_class=EventStream,
        responses=STREAM_RESPONSE,
        summary="The coordinator's dashboard, as it changes (Server-Sent Events)",
        description=roles_doc(
            DASHBOARD,
            "The dashboard's document as an `event: dashboard` at once and then whenever "
            "it changes (reporting applied an event that changed it, or the clock did), "
            "and a `: heartbeat` comment after SOLIDARITY_DASHBOARD_HEARTBEAT_S seconds "
            "without one. The client never polls. It streams to a client whose Accept "
            "names text/event-stream (an EventSource does); any other gets the document "
            "as one event, and the response ends." + SECTIONS),
    )
    async def stream(
        request: Request,
        _principal: Annotated[Principal, Depends(DASHBOARD)],
    ) -> EventStream:
        heartbeat = float(request.app.state.settings.dashboard_heartbeat_s)
        return EventStream(_events(request, heartbeat),
                           headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return r
