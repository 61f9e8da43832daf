"""Supporters: registration, training, supervision, deactivation. The coordinator keeps
them. A supporter's name, phone, email, supervision notes and the reason of a
deactivation are encrypted at rest and never leave the service on the bus.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field

from services.shift.api.common import (
    COORD,
    App,
    Day,
    Email,
    PersonId,
    Phone,
    Short,
    Text,
    created_once,
)
from services.shift.api.presenters import SupporterOut, SupporterPage, supporter_out
from services.shift.domain import Course, Role, SupervisionKind, Supporter
from shared.audit.access import record_read, record_reads
from shared.web.auth import Principal
from shared.web.deps import Cursor, IdempotencyKey, IfMatch, Purpose, Strict, roles_doc, with_etag

router = APIRouter()


class SupporterIn(Strict):
    name: Short
    phone: Phone | None = Field(default=None, description="A UK number.")
    email: Email | None = None
    role: Role = Role.SUPPORTER
    start_date: Day


class TrainingIn(Strict):
    course: Course
    completed_on: Day = Field(description="Not in the future.")
    expires_on: Day | None = Field(default=None, description="When the certificate "
                                   "expires (no longer current from that day), if it does.")


class SupervisionIn(Strict):
    kind: SupervisionKind
    on: Day = Field(description="When it was held; not in the future.")
    by: PersonId | None = Field(default=None, description="Who held it (their id, never a "
                                "name); default: you.")
    notes: Text | None = None


class DeactivateIn(Strict):
    reason: Text


@router.post("/supporters", status_code=201, response_model=SupporterOut,
             summary="Register a supporter",
             description=roles_doc(COORD, "A supporter (or coordinator) with a new id: use it "
                                   "as the `sub` of their tokens (`solidarity token --role "
                                   "supporter --sub <id>`). Name, phone and email are "
                                   "encrypted. Send `Idempotency-Key` to make a retry safe."))
def register(body: SupporterIn, request: Request, app: App,
             principal: Annotated[Principal, Depends(COORD)],
             idempotency_key: IdempotencyKey = None) -> Response:
    def show(supporter: Supporter) -> tuple[SupporterOut, str, int]:
        return (supporter_out(app, supporter), f"/shift/supporters/{supporter.id}",
                supporter.version)

    return created_once(
        request, principal, idempotency_key, "POST /shift/supporters", body,
        create=lambda: app.register_supporter(
            name=body.name, phone=body.phone, email=body.email, role=body.role.value,
            start_date=body.start_date),
        ident=lambda supporter: str(supporter.id),
        load=lambda sid: app.get_supporter(UUID(sid)), show=show)


@router.get("/supporters", response_model=SupporterPage, summary="Supporters",
            description=roles_doc(COORD, "Oldest registration first; `active` filters. "
                                  "Each with their eligibility today, what is missing, and "
                                  "whether their supervision is overdue."))
def supporters(app: App, _p: Annotated[Principal, Depends(COORD)],
               active: bool | None = None,
               limit: Annotated[int, Query(ge=1, le=200)] = 50,
               cursor: Cursor = None, purpose: Purpose = None) -> SupporterPage:
    found, next_cursor = app.list_supporters(active, limit, cursor)
    # Their contact details: each read recorded before it is shown.
    record_reads(app, app.keys, kind="supporter", purpose=purpose,
                 records=[(s.id, s.id) for s in found])
    return SupporterPage(items=[supporter_out(app, s) for s in found],
                         next_cursor=next_cursor)


@router.get("/supporters/{supporter_id}", response_model=SupporterOut,
            summary="One supporter", description=roles_doc(COORD))
def get_supporter(supporter_id: UUID, response: Response, app: App,
                  _p: Annotated[Principal, Depends(COORD)],
                  purpose: Purpose = None) -> SupporterOut:
    supporter = app.get_supporter(supporter_id)
    record_read(app, app.keys, kind="supporter", record_id=supporter.id,
                subject=supporter.id, purpose=purpose)
    with_etag(response, supporter.version)
    return supporter_out(app, supporter)


@router.post("/supporters/{supporter_id}/training", response_model=SupporterOut,
             summary="Record training",
             description=roles_doc(COORD, "A course completed. Eligibility for on-call "
                                   "shifts needs current training in each required course "
                                   "(`SOLIDARITY_REQUIRED_COURSES`). Accepts If-Match."))
def record_training(supporter_id: UUID, body: TrainingIn, response: Response, app: App,
                    _p: Annotated[Principal, Depends(COORD)],
                    if_match: IfMatch) -> SupporterOut:
    supporter = app.record_training(supporter_id, course=body.course.value,
                                    completed_on=body.completed_on,
                                    expires_on=body.expires_on, expected_version=if_match)
    with_etag(response, supporter.version)
    return supporter_out(app, supporter)


@router.post("/supporters/{supporter_id}/supervisions", response_model=SupporterOut,
             summary="Record a supervision",
             description=roles_doc(COORD, "One-to-one or group; the notes are encrypted. "
                                   "Accepts If-Match."))
def record_supervision(supporter_id: UUID, body: SupervisionIn, response: Response,
                       app: App, principal: Annotated[Principal, Depends(COORD)],
                       if_match: IfMatch) -> SupporterOut:
    supporter = app.record_supervision(supporter_id, kind=body.kind.value, on=body.on,
                                       by=body.by or principal.sub, notes=body.notes,
                                       expected_version=if_match)
    with_etag(response, supporter.version)
    return supporter_out(app, supporter)


@router.post("/supporters/{supporter_id}/deactivate", response_model=SupporterOut,
             summary="Deactivate a supporter",
             description=roles_doc(COORD, "With a reason (encrypted). Their history is kept; "
                                   "they are taken off every shift that has not started, "
                                   "with the same reason, in the same change. Accepts "
                                   "If-Match."))
def deactivate(supporter_id: UUID, body: DeactivateIn, response: Response, app: App,
               _p: Annotated[Principal, Depends(COORD)], if_match: IfMatch) -> SupporterOut:
    supporter, _ = app.deactivate(supporter_id, reason=body.reason, expected_version=if_match)
    with_etag(response, supporter.version)
    return supporter_out(app, supporter)
