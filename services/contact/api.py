"""The contact service's HTTP API. No business rules here: translate and delegate."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.contact.app import ContactApplication
from services.contact.domain import Channel, IssueCategory
from shared.application import command_meta
from shared.auth import Allow, Principal, Role
from shared.http import correlation_of, created, etag, expected_version, roles_doc

WRITE = Allow(Role.SUPPORTER, Role.COORDINATOR)
READ = Allow(Role.SUPPORTER, Role.COORDINATOR, Role.AUDITOR)


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Channel
    started_at: AwareDatetime = Field(description="When the call or text began, with offset.")
    ended_at: AwareDatetime | None = None
    issues: list[IssueCategory] = Field(min_length=1, max_length=15)


class ContactCorrection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500, description="Why it is corrected.")
    issues: list[IssueCategory] | None = Field(default=None, min_length=1, max_length=15)
    ended_at: AwareDatetime | None = None


class ContactOut(BaseModel):
    id: UUID
    channel: Channel
    started_at: datetime
    ended_at: datetime | None
    issues: list[IssueCategory]
    logged_by: str
    corrections: int
    version: int


def get_app(request: Request) -> ContactApplication:
    app = request.app.state.runtimes["contact"].app
    assert isinstance(app, ContactApplication)
    return app


App = Annotated[ContactApplication, Depends(get_app)]


def router() -> APIRouter:
    r = APIRouter(prefix="/contact", tags=["contact"])

    @r.post(
        "/contacts",
        status_code=201,
        response_model=ContactOut,
        summary="Log a call or text",
        description=roles_doc(
            WRITE,
            "Records a contact. Answers 201 with the contact and a Location header. "
            "Send an `Idempotency-Key` header to make a retry safe.",
        ),
    )
    def log_contact(
        body: ContactIn,
        request: Request,
        response: Response,
        app: App,
        principal: Annotated[Principal, Depends(WRITE)],
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> ContactOut:
        def create() -> str:
            contact = app.log_contact(
                channel=body.channel.value,
                started_at=body.started_at,
                ended_at=body.ended_at,
                issues=[i.value for i in body.issues],
                meta=command_meta(principal.actor, correlation_of(request)),
            )
            return str(contact.id)

        contact_id, _ = request.app.state.runtimes["contact"].idempotency.run(
            key=idempotency_key,
            principal=principal,
            route="POST /contact/contacts",
            body=body.model_dump_json().encode(),
            create=create,
        )
        contact = app.get_contact(UUID(contact_id))
        created(response, f"/contact/contacts/{contact.id}", contact.version)
        return ContactOut(**contact.view())

    @r.get(
        "/contacts/{contact_id}",
        response_model=ContactOut,
        summary="One contact",
        description=roles_doc(READ, "The contact's coded fields, with its version as ETag."),
    )
    def get_contact(
        contact_id: UUID,
        response: Response,
        app: App,
        _principal: Annotated[Principal, Depends(READ)],
    ) -> ContactOut:
        contact = app.get_contact(contact_id)
        response.headers["ETag"] = etag(contact.version)
        return ContactOut(**contact.view())

    @r.patch(
        "/contacts/{contact_id}",
        response_model=ContactOut,
        summary="Correct a logged contact",
        description=roles_doc(
            WRITE,
            "Corrects the issues or end time, with a reason. The original stays in the "
            "history. Send `If-Match` with the ETag you read: a stale one is 412, and a "
            "concurrent correction that saved first makes this one 409.",
        ),
    )
    def correct_contact(
        contact_id: UUID,
        body: ContactCorrection,
        request: Request,
        response: Response,
        app: App,
        principal: Annotated[Principal, Depends(WRITE)],
    ) -> ContactOut:
        contact = app.correct_contact(
            contact_id,
            reason=body.reason,
            issues=[i.value for i in body.issues] if body.issues is not None else None,
            ended_at=body.ended_at,
            meta=command_meta(principal.actor, correlation_of(request)),
            expected_version=expected_version(request),
        )
        response.headers["ETag"] = etag(contact.version)
        return ContactOut(**contact.view())

    return r
