"""Contacts (calls, texts, missed calls) and what hangs off one: risk assessments,
escalations, closing, follow-ups; and the follow-ups due across all contacts.

Free text is shown only to the coordinator and the supporters who handled the
contact (``presenters.contact_for``); auditors see coded fields only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field

from services.contact.api.common import (
    ON_CALL,
    READ,
    App,
    CallerRef,
    LongText,
    Nth,
    Phone,
    Short,
    Text,
    created_once,
)
from services.contact.api.presenters import (
    ContactOut,
    ContactPage,
    EscalationOut,
    FollowUpDueOut,
    FollowUpPage,
    RiskOut,
    contact_for,
    contact_page,
    escalation_out,
    risk_out,
)
from services.contact.app import ContactApplication
from services.contact.domain import (
    CallerIs,
    Channel,
    Contact,
    Direction,
    EscalationKind,
    FollowUp,
    IssueCategory,
    RiskLevel,
)
from services.contact.domain.caller import caller_id_for
from services.contact.domain.codes import MAX_SUPPORTERS
from shared.audit.access import record_read, record_reads
from shared.web.auth import Principal
from shared.web.deps import (
    Cursor,
    IdempotencyKey,
    IfMatch,
    Purpose,
    Strict,
    created,
    roles_doc,
    with_etag,
)
from shared.web.problems import NotFound
from shared.web.types import Instant

router = APIRouter()


class FollowUpIn(Strict):
    needed: bool = True
    by: Instant | None = Field(default=None,
                                     description="When it must be done by (when needed).")
    what: Text | None = None


class ContactIn(Strict):
    channel: Channel
    direction: Direction = Direction.INBOUND
    caller_ref: CallerRef | None = Field(default=None, description="Absent: anonymous.")
    shift_id: UUID | None = Field(default=None, description="Absent: the shift on the rota "
                                  "at `started_at`, if any.")
    # How many may be named, and who, is the domain's rule (MAX_SUPPORTERS, active
    # supporters the shift service published): documented, not checked here.
    supporter_ids: list[UUID] = Field(
        default_factory=list, json_schema_extra={"maxItems": MAX_SUPPORTERS},
        description="The supporters who took it: ids the shift service gave them (a "
        "token's `sub`). An unknown or deactivated supporter is 422.")
    started_at: Instant
    ended_at: Instant | None = None
    issues: list[IssueCategory] = Field(default_factory=list, max_length=15)
    caller_is: CallerIs | None = None
    summary: LongText | None = None
    signposted_to: list[UUID] = Field(default_factory=list, max_length=20)
    follow_up: FollowUpIn | None = None
    distressing: bool = Field(default=False, description="The supporter wants a debrief.")
    answered: bool = Field(default=True, description="false: a missed call (phone only).")
    phone: Phone | None = Field(default=None, description="A missed call's number.")
    responds_to: UUID | None = Field(
        default=None, description="The missed call this contact answers (typically "
        "`direction: outbound`); one that was answered completes that call's open "
        "call-back follow-up. Not a missed call: 422.")
    referral_id: UUID | None = Field(
        default=None, description="An accepted referral this contact makes first contact "
        "on (completing its follow-up); without `caller_ref`, the referred person is the "
        "caller.")


class ContactCorrection(Strict):
    reason: Text = Field(description="Why it is corrected.")
    issues: list[IssueCategory] | None = Field(default=None, min_length=1, max_length=15)
    ended_at: Instant | None = None
    summary: LongText | None = None
    caller_is: CallerIs | None = None
    signposted_to: list[UUID] | None = Field(default=None, max_length=20,
                                             description="Replaces the list.")


class RiskIn(Strict):
    level: RiskLevel
    factors: Text | None = None
    protective_factors: Text | None = None
    decision: Text
    reasoning: LongText | None = None


class EscalationIn(Strict):
    kind: EscalationKind
    reason: Text
    reference: Short | None = None


class CloseIn(Strict):
    no_escalation_reason: Text | None = Field(
        default=None, description="Required at immediate risk when there is no escalation.")


class CompleteIn(Strict):
    outcome: Text | None = None


def _follow_up(body: FollowUpIn | None) -> FollowUp | None:
    return None if body is None else FollowUp(needed=body.needed, by=body.by, what=body.what)


def _nth(items: list[Any], n: int, what: str) -> int:
    if not 1 <= n <= len(items):
        raise NotFound(f"No {what} {n} on this contact.")
    return n


@router.post("/contacts", status_code=201, response_model=ContactOut,
             summary="Log a call or text (or a missed call)",
             description=roles_doc(ON_CALL, "Records a contact. `answered: false` records a "
                                   "missed call (phone only) and opens a call-back follow-up "
                                   "when the number is known. `supporter_ids` are supporters "
                                   "the shift service published (422 otherwise); `shift_id` "
                                   "defaults to the rota's shift on at `started_at`. Send "
                                   "`Idempotency-Key` to make a retry safe."))
def log_contact(body: ContactIn, request: Request, app: App,
                principal: Annotated[Principal, Depends(ON_CALL)],
                idempotency_key: IdempotencyKey = None) -> Response:
    def create() -> Contact:
        return app.log_contact(
            channel=body.channel.value, direction=body.direction.value,
            started_at=body.started_at, ended_at=body.ended_at,
            issues=[i.value for i in body.issues], caller_ref=body.caller_ref,
            shift_id=body.shift_id, supporter_ids=body.supporter_ids,
            caller_is=body.caller_is.value if body.caller_is else None,
            summary=body.summary, signposted_to=body.signposted_to,
            follow_up=_follow_up(body.follow_up), distressing=body.distressing,
            answered=body.answered, phone=body.phone, referral_id=body.referral_id,
            responds_to=body.responds_to,
        )

    def show(contact: Contact) -> tuple[ContactOut, str, int]:
        return (contact_for(app, principal, contact), f"/contact/contacts/{contact.id}",
                contact.version)

    return created_once(request, principal, idempotency_key, "POST /contact/contacts", body,
                        create=create, ident=lambda contact: str(contact.id),
                        load=lambda cid: app.get_contact(UUID(cid)), show=show)


@router.get("/contacts", response_model=ContactPage, summary="Contacts, newest first",
            description=roles_doc(READ, "Filter by `caller_ref` and a `from`/`to` window on "
                                  "`started_at`. Supporters see coded fields and the "
                                  "summaries of contacts they handled; the coordinator sees "
                                  "all; auditors see coded fields only."))
def list_contacts(app: App, principal: Annotated[Principal, Depends(READ)],
                  caller_ref: CallerRef | None = None,
                  start: Annotated[Instant | None, Query(alias="from")] = None,
                  end: Annotated[Instant | None, Query(alias="to")] = None,
                  limit: Annotated[int, Query(ge=1, le=200)] = 50,
                  cursor: Cursor = None, purpose: Purpose = None) -> ContactPage:
    rows, next_cursor = app.list_contacts(caller_ref=caller_ref, start=start, end=end,
                                          limit=limit, cursor=cursor)
    page = contact_page(app, principal, rows, next_cursor)
    record_reads(app, app.keys, kind="contact", purpose=purpose, records=[
        (row.contact_id, caller_id_for(row.caller_ref) if row.caller_ref else row.contact_id)
        for row, item in zip(rows, page.items, strict=True) if item.summary is not None])
    return page


@router.get("/contacts/{contact_id}", response_model=ContactOut, summary="One contact",
            description=roles_doc(READ, "With its risk trail, escalations and follow-ups; "
                                  "its version as ETag. Free text only for the coordinator "
                                  "and the supporters who handled it."))
def get_contact(contact_id: UUID, response: Response, app: App,
                principal: Annotated[Principal, Depends(READ)],
                purpose: Purpose = None) -> ContactOut:
    contact = app.get_contact(contact_id)
    with_etag(response, contact.version)
    _recorded(app, principal, contact, purpose)
    return contact_for(app, principal, contact)


def _recorded(app: ContactApplication, principal: Principal, contact: Contact,
              purpose: str | None) -> None:
    """A read of the contact's free text, recorded before it is shown (none for coded
    fields only: an auditor's, or a supporter's who did not handle it)."""
    if app.sees_personal(principal, contact.supporter_ids):
        record_read(app, app.keys, kind="contact", record_id=contact.id,
                    subject=contact.caller_id or contact.id, purpose=purpose)


@router.patch("/contacts/{contact_id}", response_model=ContactOut,
              summary="Correct a logged contact",
              description=roles_doc(ON_CALL, "Corrects the issues, end time, summary, "
                                    "`caller_is` or signposting, with a reason. "
                                    "The original stays in the history. Send `If-Match`: a "
                                    "stale one is 412; a concurrent write that saved first "
                                    "makes this one 409."))
def correct_contact(contact_id: UUID, body: ContactCorrection, response: Response, app: App,
                    principal: Annotated[Principal, Depends(ON_CALL)],
                    if_match: IfMatch) -> ContactOut:
    contact = app.correct_contact(
        contact_id, reason=body.reason,
        issues=[i.value for i in body.issues] if body.issues is not None else None,
        ended_at=body.ended_at, summary=body.summary,
        caller_is=body.caller_is.value if body.caller_is else None,
        signposted_to=body.signposted_to, expected_version=if_match,
    )
    with_etag(response, contact.version)
    return contact_for(app, principal, contact)


@router.post("/contacts/{contact_id}/risk-assessments", status_code=201,
             response_model=RiskOut, summary="Assess risk",
             description=roles_doc(ON_CALL, "Adds an assessment to the contact's risk trail. "
                                   "Earlier ones are never overwritten: the new one "
                                   "supersedes the last. Accepts If-Match."))
def assess(contact_id: UUID, body: RiskIn, response: Response, app: App,
           _p: Annotated[Principal, Depends(ON_CALL)], if_match: IfMatch) -> RiskOut:
    contact = app.assess_risk(contact_id, **body.model_dump(mode="json"),
                              expected_version=if_match)
    n = len(contact.risk_trail)
    created(response, f"/contact/contacts/{contact_id}/risk-assessments/{n}", contact.version)
    return risk_out(app.keys, contact, n, include_personal=True)


@router.get("/contacts/{contact_id}/risk-assessments/{n}", response_model=RiskOut,
            summary="One risk assessment",
            description=roles_doc(READ, "Free text only for the coordinator and the "
                                  "supporters who handled the contact."))
def get_assessment(contact_id: UUID, n: Nth, app: App,
                   principal: Annotated[Principal, Depends(READ)],
                   purpose: Purpose = None) -> RiskOut:
    contact = app.get_contact(contact_id)
    _nth(contact.risk_trail, n, "risk assessment")
    _recorded(app, principal, contact, purpose)
    return risk_out(app.keys, contact, _nth(contact.risk_trail, n, "risk assessment"),
                    include_personal=app.sees_personal(principal, contact.supporter_ids))


@router.post("/contacts/{contact_id}/escalations", status_code=201,
             response_model=EscalationOut, summary="Record an escalation",
             description=roles_doc(ON_CALL, "Emergency services, crisis team, safeguarding "
                                   "referral, GP or other, with the reason and any "
                                   "reference."))
def escalate(contact_id: UUID, body: EscalationIn, response: Response, app: App,
             _p: Annotated[Principal, Depends(ON_CALL)], if_match: IfMatch) -> EscalationOut:
    contact = app.escalate(contact_id, **body.model_dump(mode="json"),
                           expected_version=if_match)
    n = len(contact.escalations)
    created(response, f"/contact/contacts/{contact_id}/escalations/{n}", contact.version)
    return escalation_out(app.keys, contact, n, include_personal=True)


@router.get("/contacts/{contact_id}/escalations/{n}", response_model=EscalationOut,
            summary="One escalation", description=roles_doc(READ))
def get_escalation(contact_id: UUID, n: Nth, app: App,
                   principal: Annotated[Principal, Depends(READ)],
                   purpose: Purpose = None) -> EscalationOut:
    contact = app.get_contact(contact_id)
    _nth(contact.escalations, n, "escalation")
    _recorded(app, principal, contact, purpose)
    return escalation_out(app.keys, contact, _nth(contact.escalations, n, "escalation"),
                          include_personal=app.sees_personal(principal, contact.supporter_ids))


@router.post("/contacts/{contact_id}/close", response_model=ContactOut,
             summary="Close a contact",
             description=roles_doc(ON_CALL, "At immediate risk, closing needs an escalation "
                                   "or `no_escalation_reason` (422 otherwise)."))
def close(contact_id: UUID, body: CloseIn, response: Response, app: App,
          principal: Annotated[Principal, Depends(ON_CALL)], if_match: IfMatch) -> ContactOut:
    contact = app.close_contact(contact_id, no_escalation_reason=body.no_escalation_reason,
                                expected_version=if_match)
    with_etag(response, contact.version)
    return contact_for(app, principal, contact)


@router.post("/contacts/{contact_id}/follow-ups/{n}/complete", response_model=ContactOut,
             summary="Complete a follow-up",
             description=roles_doc(ON_CALL, "With an optional outcome. Accepts If-Match."))
def complete(contact_id: UUID, n: Nth, body: CompleteIn, response: Response, app: App,
             principal: Annotated[Principal, Depends(ON_CALL)],
             if_match: IfMatch) -> ContactOut:
    contact = app.complete_follow_up(contact_id, n, outcome=body.outcome,
                                     expected_version=if_match)
    with_etag(response, contact.version)
    return contact_for(app, principal, contact)


@router.get("/follow-ups", response_model=FollowUpPage, summary="Follow-ups due",
            description=roles_doc(ON_CALL, "Open follow-ups due before `due_before` "
                                  "(default: now), earliest first: call-backs of missed "
                                  "calls, agreed follow-ups, and accepted referrals' "
                                  "first contacts (`kind` `first_contact`, with "
                                  "`referral_id`, `contact_id` null)."))
def follow_ups(app: App, _p: Annotated[Principal, Depends(ON_CALL)],
               due_before: Instant | None = None,
               limit: Annotated[int, Query(ge=1, le=500)] = 100,
               cursor: Cursor = None) -> FollowUpPage:
    items, next_cursor = app.follow_ups_due(due_before or datetime.now(UTC), limit, cursor)
    return FollowUpPage(items=[FollowUpDueOut(**i) for i in items], next_cursor=next_cursor)
