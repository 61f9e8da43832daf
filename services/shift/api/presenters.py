"""Response models of the shift API and the functions that build them from aggregates
and read-table rows.

Personal data (a supporter's name, phone and email, supervision notes, the reason of a
deactivation, handover notes) is stored sealed; a presenter opens it
(``KeyStore.reveal``) only in answers to roles that may see it: the coordinator, and for
handover notes the two supporters of that handover.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from services.shift.app import ShiftApplication
from services.shift.domain import Bag, BagItem, Course, Debrief, Shift, Slot, Supporter
from services.shift.domain.codes import Coverage, Role, SupervisionKind, Weekday
from shared.web.auth import Principal
from shared.web.auth import Role as TokenRole

# ---------------------------------------------------------------------- supporters


class TrainingOut(BaseModel):
    course: Course
    completed_on: date
    expires_on: date | None
    recorded_by: str


class SupervisionOut(BaseModel):
    kind: SupervisionKind
    on: date
    by: str
    notes: str | None


class SupporterOut(BaseModel):
    id: UUID = Field(description="Also the `sub` of their tokens.")
    name: str | None
    phone: str | None
    email: str | None
    role: Role
    start_date: date
    active: bool
    deactivation_reason: str | None
    eligible: bool = Field(description="Eligible for on-call shifts today: current "
                           "training in every required course.")
    missing: list[Course] = Field(description="The required courses not current today.")
    training: list[TrainingOut]
    supervisions: list[SupervisionOut]
    last_supervision: date | None
    supervision_overdue: bool
    version: int


class SupporterPage(BaseModel):
    items: list[SupporterOut]
    next_cursor: str | None


def supporter_out(app: ShiftApplication, supporter: Supporter) -> SupporterOut:
    reveal = app.keys.reveal
    eligible, missing = app.eligibility(supporter)
    return SupporterOut.model_validate({
        "id": supporter.id, "name": reveal(supporter.name), "phone": reveal(supporter.phone),
        "email": reveal(supporter.email), "role": supporter.role,
        "start_date": supporter.start_date, "active": supporter.active,
        "deactivation_reason": reveal(supporter.deactivation_reason),
        "eligible": eligible, "missing": missing,
        "training": [{k: t[k] for k in ("course", "completed_on", "expires_on", "recorded_by")}
                     for t in supporter.training],
        "supervisions": [{"kind": s["kind"], "on": s["on"], "by": s["by"],
                          "notes": reveal(s["notes"])} for s in supporter.supervisions],
        "last_supervision": supporter.last_supervision,
        "supervision_overdue": app.supervision_overdue(supporter),
        "version": supporter.version,
    })


# ---------------------------------------------------------------------- the rota


class SlotOut(BaseModel):
    weekday: Weekday
    starts: str = Field(description="London wall-clock time, HH:MM.")
    ends: str = Field(description="London wall-clock time, HH:MM; at or before `starts`: "
                      "the next day.")
    required: int


class TemplateOut(BaseModel):
    slots: list[SlotOut]
    version: int = Field(description="0 while the default template was never changed.")


def template_out(slots: list[Slot], version: int) -> TemplateOut:
    return TemplateOut(slots=[SlotOut.model_validate(s.as_dict()) for s in slots],
                       version=version)


class ShiftOut(BaseModel):
    id: UUID
    slot: str | None = Field(description="The template slot (`sat 20:00-02:00`); null for "
                             "an extra shift.")
    starts_at: datetime
    ends_at: datetime
    required: int
    assignments: list[str] = Field(description="The supporters assigned (their ids, sorted).")
    checked_in: list[str] = Field(description="Those of them who checked in.")
    coverage: Coverage
    version: int


class ShiftPage(BaseModel):
    items: list[ShiftOut]
    next_cursor: str | None


class WeekOut(BaseModel):
    iso_week: str
    created: int = Field(description="Shifts created now: 0 when the week was published "
                         "before.")
    shifts: list[ShiftOut]


class OnCallOut(BaseModel):
    at: datetime
    shifts: list[ShiftOut] = Field(description="The shifts on at that moment (usually one).")


def shift_out(shift: Shift) -> ShiftOut:
    return ShiftOut.model_validate({
        "id": shift.id, "slot": shift.slot, "starts_at": shift.starts_at,
        "ends_at": shift.ends_at, "required": shift.required,
        "assignments": sorted(shift.assignments),
        "checked_in": sorted(s for s in shift.assignments if s in shift.checked_in),
        "coverage": shift.coverage, "version": shift.version,
    })


def shift_rows(rows: list[dict[str, Any]]) -> list[ShiftOut]:
    return [ShiftOut.model_validate(r) for r in rows]


# ---------------------------------------------------------------------- bags


class HandoverOut(BaseModel):
    n: int
    from_supporter_id: str
    to_supporter_id: str
    items_checked: dict[BagItem, bool]
    at: datetime
    notes: str | None = Field(description="For the coordinator and the two supporters of "
                              "the handover; null for others.")
    missing: list[BagItem]
    recorded_by: str


class BagOut(BaseModel):
    id: UUID
    label: str
    items: list[BagItem] = Field(description="What a handover checks.")
    holder: str = Field(description="Who holds it now (a supporter's id, or whoever "
                        "registered it until its first handover).")
    history: list[HandoverOut] = Field(description="The chain of custody, oldest first.")
    version: int


class BagItemOut(BaseModel):
    id: UUID
    label: str
    holder: str
    version: int


class BagPage(BaseModel):
    items: list[BagItemOut]
    next_cursor: str | None


def bag_out(app: ShiftApplication, bag: Bag, principal: Principal) -> BagOut:
    def notes(h: dict[str, Any]) -> str | None:
        sees = principal.role == TokenRole.COORDINATOR or principal.sub in (
            h["from_supporter_id"], h["to_supporter_id"])
        return app.keys.reveal(h["notes"]) if sees else None

    return BagOut.model_validate({
        "id": bag.id, "label": bag.label, "items": bag.items, "holder": bag.holder,
        "history": [{**{k: h[k] for k in ("from_supporter_id", "to_supporter_id",
                                          "items_checked", "at", "missing", "recorded_by")},
                     "n": n, "notes": notes(h)} for n, h in enumerate(bag.history, 1)],
        "version": bag.version,
    })


# ---------------------------------------------------------------------- debriefs


class DebriefOut(BaseModel):
    id: UUID
    supporter_id: str
    contact_id: UUID
    requested_at: datetime
    status: Literal["open", "complete"]
    completed_on: date | None
    completed_by: str | None
    overdue: bool = Field(description="Still open longer than the setting "
                          "(SOLIDARITY_DEBRIEF_OVERDUE_HOURS, default 72).")
    version: int


class DebriefPage(BaseModel):
    items: list[DebriefOut]
    next_cursor: str | None


def debrief_out(app: ShiftApplication, debrief: Debrief) -> DebriefOut:
    return DebriefOut.model_validate({
        "id": debrief.id, "supporter_id": debrief.supporter_id,
        "contact_id": debrief.contact_id, "requested_at": debrief.requested_at,
        "status": debrief.status, "completed_on": debrief.completed_on,
        "completed_by": debrief.completed_by, "overdue": app.debriefs.overdue(debrief),
        "version": debrief.version,
    })
