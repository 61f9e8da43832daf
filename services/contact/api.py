"""The contact service's HTTP API. No business rules here: translate and delegate.

Who sees what: personal data (alias, summaries, reasons, risk reasoning) only for the
coordinator and for the supporters who handled the contact; auditors see coded fields
only; partners may only refer people in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from services.contact.app import ContactApplication, NewCaller
from services.contact.domain import (
    AgeBand,
    CallerIs,
    Channel,
    Direction,
    EscalationKind,
    Gender,
    IssueCategory,
    ReferralSource,
    RiskLevel,
)
from services.contact.sms import SIGNATURE_HEADER, SmsSendError, valid_twilio_signature
from shared.application import command_meta
from shared.auth import Allow, Principal, Role
from shared.http import correlation_of, created, etag, expected_version, roles_doc
from shared.problems import Forbidden, Problem, Unprocessable

S, C, A, P = Role.SUPPORTER, Role.COORDINATOR, Role.AUDITOR, Role.PARTNER
ON_CALL = Allow(S, C)
READ = Allow(S, C, A)
COORD = Allow(C)
REFER = Allow(C, P)

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                            max_length=5000)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=5, max_length=30)]
CallerRef = Annotated[str, StringConstraints(pattern=r"^C-[0-9A-HJKMNP-TV-Z]{8}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------- models


class CallerIn(Strict):
    alias: Short | None = Field(default=None, description="What they like to be called.")
    phone: Phone | None = Field(default=None, description="UK number; stored only encrypted "
                                "and as a keyed hash for lookup.")
    gender: Gender | None = None
    age_band: AgeBand | None = None
    consent_to_keep_history: bool = False
    consent_to_text: bool = False


class CallerOut(BaseModel):
    caller_ref: str
    alias: str | None
    has_phone: bool
    gender: Gender | None
    age_band: AgeBand | None
    consent_to_keep_history: bool
    consent_to_text: bool
    erased: bool
    version: int


class ConsentIn(Strict):
    consent_to_keep_history: bool | None = None
    consent_to_text: bool | None = None


class FollowUpIn(Strict):
    needed: bool = True
    by: AwareDatetime | None = Field(default=None,
                                     description="When it must be done by (when needed).")
    what: Text | None = None

    @model_validator(mode="after")
    def _by_when_needed(self) -> FollowUpIn:
        if self.needed and self.by is None:
            raise ValueError("a needed follow-up says when it must be done by (`by`)")
        return self


class ContactIn(Strict):
    channel: Channel
    direction: Direction = Direction.INBOUND
    caller_ref: CallerRef | None = Field(default=None, description="Absent: anonymous.")
    shift_id: UUID | None = None
    supporter_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=10)
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    issues: list[IssueCategory] = Field(default_factory=list, max_length=15)
    caller_is: CallerIs | None = None
    summary: LongText | None = None
    signposted_to: list[UUID] = Field(default_factory=list, max_length=20)
    follow_up: FollowUpIn | None = None
    distressing: bool = Field(default=False, description="The supporter wants a debrief.")
    answered: bool = Field(default=True, description="false: a missed call (phone only).")
    phone: Phone | None = Field(default=None, description="A missed call's number.")


class ContactCorrection(Strict):
    reason: Text = Field(description="Why it is corrected.")
    issues: list[IssueCategory] | None = Field(default=None, min_length=1, max_length=15)
    ended_at: AwareDatetime | None = None


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


class RiskOut(BaseModel):
    id: str = Field(description="<contact_id>/<n>: the assessment's place in the trail.")
    contact_id: UUID
    n: int
    level: RiskLevel
    factors: str | None
    protective_factors: str | None
    decision: str | None
    reasoning: str | None
    supersedes: int | None
    assessed_by: str
    assessed_at: datetime


class EscalationOut(BaseModel):
    id: str = Field(description="<contact_id>/<n>.")
    contact_id: UUID
    n: int
    kind: EscalationKind
    reason: str | None
    reference: str | None
    escalated_by: str
    escalated_at: datetime


class FollowUpOut(BaseModel):
    n: int
    kind: str
    due_by: datetime
    what: str | None
    completed_at: datetime | None
    outcome: str | None


class ContactOut(BaseModel):
    id: UUID
    channel: Channel
    direction: Direction
    answered: bool
    caller_ref: str | None
    shift_id: UUID | None
    supporter_ids: list[str]
    started_at: datetime
    ended_at: datetime | None
    issues: list[IssueCategory]
    caller_is: CallerIs | None
    signposted_to: list[str]
    summary: str | None
    risk_level: RiskLevel | None
    risk_trail: list[dict[str, Any]]
    escalations: list[dict[str, Any]]
    follow_ups: list[FollowUpOut]
    distressing: bool
    closed: bool
    logged_by: str
    corrections: int
    version: int


class ContactListItem(BaseModel):
    id: UUID
    caller_ref: str | None
    channel: Channel
    direction: Direction
    answered: bool
    started_at: datetime
    ended_at: datetime | None
    shift_id: str | None
    supporter_ids: list[str]
    issues: list[IssueCategory]
    caller_is: CallerIs | None
    signposted_to: list[str]
    risk_level: RiskLevel | None
    closed: bool
    summary: str | None


class ContactPage(BaseModel):
    items: list[ContactListItem]
    next_cursor: str | None


class History(BaseModel):
    caller_ref: str
    items: list[ContactListItem]


class ErasureOut(BaseModel):
    caller_ref: str
    erased: bool


class FollowUpDueOut(BaseModel):
    contact_id: UUID
    n: int
    kind: str
    due_by: datetime
    caller_ref: str | None


class FollowUpPage(BaseModel):
    items: list[FollowUpDueOut]
    next_cursor: str | None = None


class ReferralIn(Strict):
    received_at: AwareDatetime | None = Field(default=None, description="Default: now.")
    source: ReferralSource
    referrer_organisation: Short | None = None
    caller_ref: CallerRef | None = None
    caller: CallerIn | None = Field(default=None, description="A new caller, inline.")
    reason: LongText | None = None
    consent_to_contact: bool


class DecisionIn(Strict):
    reason: Text


class ReferralOut(BaseModel):
    id: UUID
    received_at: datetime
    source: ReferralSource
    referrer_organisation: str | None
    caller_ref: str
    reason: str | None
    status: str
    outcome_reason: str | None
    decided_by: str | None
    version: int


class ReferralPage(BaseModel):
    items: list[ReferralOut]
    next_cursor: str | None = None


class OpeningSlot(Strict):
    day: Annotated[str, StringConstraints(pattern="^(mon|tue|wed|thu|fri|sat|sun)$")]
    opens: Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
    closes: Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class DirectoryIn(Strict):
    name: Short
    helps_with: list[IssueCategory] = Field(min_length=1, max_length=15)
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None
    opening_hours: list[OpeningSlot] = Field(
        default_factory=list, max_length=50,
        description="London wall-clock times; closes before opens runs past midnight.")
    address: Annotated[str, StringConstraints(max_length=500)] | None = None
    notes: Annotated[str, StringConstraints(max_length=2000)] | None = None


class DirectoryOut(BaseModel):
    id: UUID
    name: str
    helps_with: list[IssueCategory]
    phone: str | None
    opening_hours: list[OpeningSlot]
    address: str | None
    notes: str | None
    version: int


class DirectoryPage(BaseModel):
    items: list[DirectoryOut]
    next_cursor: str | None = None


# ------------------------------------------------------------------ helpers


async def get_app(request: Request) -> ContactApplication:
    app = request.app.state.runtimes["contact"].app
    assert isinstance(app, ContactApplication)
    return app


App = Annotated[ContactApplication, Depends(get_app)]
Cursor = Annotated[str | None, Query(max_length=400, description="next_cursor of the page before")]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


def _meta(request: Request, principal: Principal) -> dict[str, str]:
    return command_meta(principal.actor, correlation_of(request))


def _once(request: Request, principal: Principal, key: str | None, route: str,
          body: BaseModel, create: Callable[[], str]) -> str:
    resource_id, _ = request.app.state.runtimes["contact"].idempotency.run(
        key=key, principal=principal, route=route,
        body=body.model_dump_json().encode(), create=create,
    )
    return str(resource_id)


def _contact_out(app: ContactApplication, principal: Principal, contact: Any) -> ContactOut:
    personal = app.sees_personal(principal, contact.supporter_ids)
    return ContactOut(**app.contact_view(contact, include_personal=personal))


def _directory_out(entry: Any) -> DirectoryOut:
    return DirectoryOut(id=entry.id, name=entry.name, helps_with=entry.helps_with,
                        phone=entry.phone, opening_hours=entry.opening_hours,
                        address=entry.address, notes=entry.notes, version=entry.version)


def router() -> APIRouter:
    r = APIRouter(prefix="/contact", tags=["contact"])

    # ------------------------------------------------------------------ callers
    @r.post("/callers", status_code=201, response_model=CallerOut, summary="Register a caller",
            description=roles_doc(ON_CALL, "A caller record with a pseudonymous `caller_ref`. "
                                  "Alias and phone are encrypted; the phone is also kept as a "
                                  "keyed hash for lookup. A known number is 409."))
    def register_caller(body: CallerIn, request: Request, response: Response, app: App,
                        principal: Annotated[Principal, Depends(ON_CALL)],
                        idempotency_key: IdempotencyKey = None) -> CallerOut:
        ref = _once(request, principal, idempotency_key, "POST /contact/callers", body,
                    lambda: app.register_caller(NewCaller(**_new_caller(body)),
                                                _meta(request, principal)).caller_ref)
        caller = app.get_caller(ref)
        created(response, f"/contact/callers/{ref}", caller.version)
        return CallerOut(**app.caller_view(caller))

    @r.get("/callers/lookup", response_model=CallerOut, summary="Find a caller by phone number",
           description=roles_doc(ON_CALL, "Matches the keyed hash of the normalised number "
                                 "(07..., +447..., spaces). 404 when unknown or erased. The "
                                 "number is redacted from the access log."))
    def lookup(app: App, _p: Annotated[Principal, Depends(ON_CALL)],
               phone: Annotated[str, Query(min_length=5, max_length=30)]) -> CallerOut:
        return CallerOut(**app.caller_view(app.lookup_caller(phone)))

    @r.get("/callers/{caller_ref}", response_model=CallerOut, summary="One caller",
           description=roles_doc(ON_CALL))
    def get_caller(caller_ref: CallerRef, response: Response, app: App,
                   _p: Annotated[Principal, Depends(ON_CALL)]) -> CallerOut:
        caller = app.get_caller(caller_ref)
        response.headers["ETag"] = etag(caller.version)
        return CallerOut(**app.caller_view(caller))

    @r.patch("/callers/{caller_ref}", response_model=CallerOut, summary="Change consents",
             description=roles_doc(ON_CALL, "Record a change of consent (history, texts). "
                                   "Accepts If-Match."))
    def change_consent(caller_ref: CallerRef, body: ConsentIn, request: Request,
                       response: Response, app: App,
                       principal: Annotated[Principal, Depends(ON_CALL)]) -> CallerOut:
        caller = app.change_consent(caller_ref, **body.model_dump(),
                                    meta=_meta(request, principal),
                                    expected_version=expected_version(request))
        response.headers["ETag"] = etag(caller.version)
        return CallerOut(**app.caller_view(caller))

    @r.get("/callers/{caller_ref}/history", response_model=History,
           summary="Earlier contacts with a caller",
           description=roles_doc(ON_CALL, "Newest first, only when the caller consented to "
                                 "keep history, and only for the coordinator or a supporter "
                                 "on shift. Every read is recorded as an event with its "
                                 "`purpose`."))
    def history(caller_ref: CallerRef, request: Request, app: App,
                principal: Annotated[Principal, Depends(ON_CALL)],
                purpose: Annotated[str, Query(min_length=3, max_length=200,
                                              description="Why you are reading it.")]
                ) -> History:
        items = app.caller_history(caller_ref, purpose=purpose, principal=principal,
                                   meta=_meta(request, principal))
        return History(caller_ref=caller_ref, items=[ContactListItem(**i) for i in items])

    @r.delete("/callers/{caller_ref}/personal-data", response_model=ErasureOut,
              summary="Erase a caller's personal data (UK GDPR)",
              description=roles_doc(COORD, "Destroys the caller's key: alias, phone, notes "
                                    "and messages become unreadable everywhere (shown as "
                                    "`[erased]`); the phone lookup forgets them. Coded fields "
                                    "stay for the statistics. Idempotent: asking again "
                                    "answers the same."))
    def erase(caller_ref: CallerRef, request: Request, app: App,
              principal: Annotated[Principal, Depends(COORD)]) -> ErasureOut:
        caller = app.erase_caller(caller_ref, _meta(request, principal))
        return ErasureOut(caller_ref=caller.caller_ref, erased=caller.erased)

    # ----------------------------------------------------------------- contacts
    @r.post("/contacts", status_code=201, response_model=ContactOut,
            summary="Log a call or text (or a missed call)",
            description=roles_doc(ON_CALL, "Records a contact. `answered: false` records a "
                                  "missed call (phone only) and opens a call-back follow-up "
                                  "when the number is known. Send `Idempotency-Key` to make "
                                  "a retry safe."))
    def log_contact(body: ContactIn, request: Request, response: Response, app: App,
                    principal: Annotated[Principal, Depends(ON_CALL)],
                    idempotency_key: IdempotencyKey = None) -> ContactOut:
        made: list[Any] = []

        def create() -> str:
            follow_up = body.follow_up if body.follow_up and body.follow_up.needed else None
            contact = app.log_contact(
                channel=body.channel.value, direction=body.direction.value,
                started_at=body.started_at, ended_at=body.ended_at,
                issues=[i.value for i in body.issues], caller_ref=body.caller_ref,
                shift_id=body.shift_id, supporter_ids=body.supporter_ids,
                caller_is=body.caller_is.value if body.caller_is else None,
                summary=body.summary, signposted_to=body.signposted_to,
                follow_up_by=follow_up.by if follow_up else None,
                follow_up_what=follow_up.what if follow_up else None,
                distressing=body.distressing, answered=body.answered, phone=body.phone,
                meta=_meta(request, principal),
            )
            made.append(contact)
            return str(contact.id)

        contact_id = _once(request, principal, idempotency_key, "POST /contact/contacts",
                           body, create)
        # A replayed Idempotency-Key made nothing: show the contact as it is now.
        contact = made[0] if made else app.get_contact(UUID(contact_id))
        created(response, f"/contact/contacts/{contact.id}", contact.version)
        return _contact_out(app, principal, contact)

    @r.get("/contacts", response_model=ContactPage, summary="Contacts, newest first",
           description=roles_doc(READ, "Filter by `caller_ref` and a `from`/`to` window on "
                                 "`started_at`. Supporters see coded fields and the summaries "
                                 "of contacts they handled; the coordinator sees all; auditors "
                                 "see coded fields only."))
    def list_contacts(app: App, principal: Annotated[Principal, Depends(READ)],
                      caller_ref: CallerRef | None = None,
                      start: Annotated[AwareDatetime | None, Query(alias="from")] = None,
                      end: Annotated[AwareDatetime | None, Query(alias="to")] = None,
                      limit: Annotated[int, Query(ge=1, le=200)] = 50,
                      cursor: Cursor = None
                      ) -> ContactPage:
        items, next_cursor = app.list_contacts(principal, caller_ref=caller_ref, start=start,
                                               end=end, limit=limit, cursor=cursor)
        return ContactPage(items=[ContactListItem(**i) for i in items], next_cursor=next_cursor)

    @r.get("/contacts/{contact_id}", response_model=ContactOut, summary="One contact",
           description=roles_doc(READ, "With its risk trail, escalations and follow-ups; its "
                                 "version as ETag. Free text only for the coordinator and the "
                                 "supporters who handled it."))
    def get_contact(contact_id: UUID, response: Response, app: App,
                    principal: Annotated[Principal, Depends(READ)]) -> ContactOut:
        contact = app.get_contact(contact_id)
        response.headers["ETag"] = etag(contact.version)
        return _contact_out(app, principal, contact)

    @r.patch("/contacts/{contact_id}", response_model=ContactOut,
             summary="Correct a logged contact",
             description=roles_doc(ON_CALL, "Corrects the issues or end time, with a reason. "
                                   "The original stays in the history. Send `If-Match`: a "
                                   "stale one is 412; a concurrent write that saved first "
                                   "makes this one 409."))
    def correct_contact(contact_id: UUID, body: ContactCorrection, request: Request,
                        response: Response, app: App,
                        principal: Annotated[Principal, Depends(ON_CALL)]) -> ContactOut:
        contact = app.correct_contact(
            contact_id, reason=body.reason,
            issues=[i.value for i in body.issues] if body.issues is not None else None,
            ended_at=body.ended_at, meta=_meta(request, principal),
            expected_version=expected_version(request),
        )
        response.headers["ETag"] = etag(contact.version)
        return _contact_out(app, principal, contact)

    @r.post("/contacts/{contact_id}/risk-assessments", status_code=201, response_model=RiskOut,
            summary="Assess risk",
            description=roles_doc(ON_CALL, "Adds an assessment to the contact's risk trail. "
                                  "Earlier ones are never overwritten: the new one supersedes "
                                  "the last. Accepts If-Match."))
    def assess(contact_id: UUID, body: RiskIn, request: Request, response: Response, app: App,
               principal: Annotated[Principal, Depends(ON_CALL)]) -> RiskOut:
        contact = app.assess_risk(contact_id, **body.model_dump(mode="json"),
                                  meta=_meta(request, principal),
                                  expected_version=expected_version(request))
        view = app.contact_view(contact, include_personal=True)["risk_trail"][-1]
        created(response, f"/contact/contacts/{contact_id}/risk-assessments/{view['n']}",
                contact.version)
        return RiskOut(id=f"{contact_id}/{view['n']}", contact_id=contact_id, **view)

    @r.get("/contacts/{contact_id}/risk-assessments/{n}", response_model=RiskOut,
           summary="One risk assessment",
           description=roles_doc(READ, "Free text only for the coordinator and the "
                                 "supporters who handled the contact."))
    def get_assessment(contact_id: UUID, n: int, app: App,
                       principal: Annotated[Principal, Depends(READ)]) -> RiskOut:
        out = _contact_out(app, principal, app.get_contact(contact_id))
        return RiskOut(id=f"{contact_id}/{n}", contact_id=contact_id,
                       **_nth(out.risk_trail, n, "risk assessment"))

    @r.post("/contacts/{contact_id}/escalations", status_code=201,
            response_model=EscalationOut, summary="Record an escalation",
            description=roles_doc(ON_CALL, "Emergency services, crisis team, safeguarding "
                                  "referral, GP or other, with the reason and any reference."))
    def escalate(contact_id: UUID, body: EscalationIn, request: Request, response: Response,
                 app: App, principal: Annotated[Principal, Depends(ON_CALL)]) -> EscalationOut:
        contact = app.escalate(contact_id, **body.model_dump(mode="json"),
                               meta=_meta(request, principal),
                               expected_version=expected_version(request))
        view = app.contact_view(contact, include_personal=True)["escalations"][-1]
        created(response, f"/contact/contacts/{contact_id}/escalations/{view['n']}",
                contact.version)
        return EscalationOut(id=f"{contact_id}/{view['n']}", contact_id=contact_id, **view)

    @r.get("/contacts/{contact_id}/escalations/{n}", response_model=EscalationOut,
           summary="One escalation", description=roles_doc(READ))
    def get_escalation(contact_id: UUID, n: int, app: App,
                       principal: Annotated[Principal, Depends(READ)]) -> EscalationOut:
        out = _contact_out(app, principal, app.get_contact(contact_id))
        return EscalationOut(id=f"{contact_id}/{n}", contact_id=contact_id,
                             **_nth(out.escalations, n, "escalation"))

    @r.post("/contacts/{contact_id}/close", response_model=ContactOut, summary="Close a contact",
            description=roles_doc(ON_CALL, "At immediate risk, closing needs an escalation or "
                                  "`no_escalation_reason` (422 otherwise)."))
    def close(contact_id: UUID, body: CloseIn, request: Request, response: Response, app: App,
              principal: Annotated[Principal, Depends(ON_CALL)]) -> ContactOut:
        contact = app.close_contact(contact_id, no_escalation_reason=body.no_escalation_reason,
                                    meta=_meta(request, principal),
                                    expected_version=expected_version(request))
        response.headers["ETag"] = etag(contact.version)
        return _contact_out(app, principal, contact)

    @r.post("/contacts/{contact_id}/follow-ups/{n}/complete", response_model=ContactOut,
            summary="Complete a follow-up",
            description=roles_doc(ON_CALL, "With an optional outcome. Accepts If-Match."))
    def complete(contact_id: UUID, n: int, body: CompleteIn, request: Request,
                 response: Response, app: App,
                 principal: Annotated[Principal, Depends(ON_CALL)]) -> ContactOut:
        contact = app.complete_follow_up(contact_id, n, outcome=body.outcome,
                                         meta=_meta(request, principal),
                                         expected_version=expected_version(request))
        response.headers["ETag"] = etag(contact.version)
        return _contact_out(app, principal, contact)

    @r.get("/follow-ups", response_model=FollowUpPage, summary="Follow-ups due",
           description=roles_doc(ON_CALL, "Open follow-ups due before `due_before` (default: "
                                 "now), earliest first: call-backs of missed calls and agreed "
                                 "follow-ups."))
    def follow_ups(app: App, _p: Annotated[Principal, Depends(ON_CALL)],
                   due_before: AwareDatetime | None = None,
                   limit: Annotated[int, Query(ge=1, le=500)] = 100,
                   cursor: Cursor = None) -> FollowUpPage:
        from datetime import UTC

        items, next_cursor = app.follow_ups_due(due_before or datetime.now(UTC), limit, cursor)
        return FollowUpPage(items=[FollowUpDueOut(**i) for i in items], next_cursor=next_cursor)

    # ---------------------------------------------------------------- referrals
    @r.post("/referrals", status_code=201, response_model=ReferralOut,
            summary="Refer someone to the service",
            description=roles_doc(REFER, "An existing `caller_ref`, or a new caller inline. "
                                  "Without `consent_to_contact: true` it is refused (422)."))
    def refer(body: ReferralIn, request: Request, response: Response, app: App,
              principal: Annotated[Principal, Depends(REFER)],
              idempotency_key: IdempotencyKey = None) -> ReferralOut:
        def create() -> str:
            referral = app.receive_referral(
                received_at=body.received_at, source=body.source.value,
                referrer_organisation=body.referrer_organisation, caller_ref=body.caller_ref,
                new_caller=NewCaller(**_new_caller(body.caller)) if body.caller else None,
                reason=body.reason, consent_to_contact=body.consent_to_contact,
                meta=_meta(request, principal),
            )
            return str(referral.id)

        rid = _once(request, principal, idempotency_key, "POST /contact/referrals", body, create)
        referral = app.get_referral(UUID(rid))
        created(response, f"/contact/referrals/{rid}", referral.version)
        return ReferralOut(**app.referral_view(referral))

    @r.get("/referrals", response_model=ReferralPage, summary="The referral queue",
           description=roles_doc(COORD, "Oldest first; filter by `status`."))
    def referrals(app: App, _p: Annotated[Principal, Depends(COORD)],
                  status: Annotated[str | None,
                                    Query(pattern="^(received|accepted|declined)$")] = None,
                  limit: Annotated[int, Query(ge=1, le=500)] = 100,
                  cursor: Cursor = None) -> ReferralPage:
        found, next_cursor = app.list_referrals(status, limit, cursor)
        return ReferralPage(items=[ReferralOut(**app.referral_view(x)) for x in found],
                            next_cursor=next_cursor)

    @r.get("/referrals/{referral_id}", response_model=ReferralOut, summary="One referral",
           description=roles_doc(COORD))
    def get_referral(referral_id: UUID, response: Response, app: App,
                     _p: Annotated[Principal, Depends(COORD)]) -> ReferralOut:
        referral = app.get_referral(referral_id)
        response.headers["ETag"] = etag(referral.version)
        return ReferralOut(**app.referral_view(referral))

    def _decide(accept: bool) -> Callable[..., ReferralOut]:
        def decide(referral_id: UUID, body: DecisionIn, request: Request, response: Response,
                   app: App, principal: Annotated[Principal, Depends(COORD)]) -> ReferralOut:
            referral = app.decide_referral(referral_id, accept=accept, reason=body.reason,
                                           meta=_meta(request, principal),
                                           expected_version=expected_version(request))
            response.headers["ETag"] = etag(referral.version)
            return ReferralOut(**app.referral_view(referral))
        return decide

    for verb, accept in (("accept", True), ("decline", False)):
        r.add_api_route(f"/referrals/{{referral_id}}/{verb}", _decide(accept), methods=["POST"],
                        response_model=ReferralOut, summary=f"{verb.capitalize()} a referral",
                        description=roles_doc(COORD, "With a reason. Only a referral still "
                                              "`received` can be decided."))

    # ---------------------------------------------------------------- directory
    @r.post("/directory", status_code=201, response_model=DirectoryOut,
            summary="Add a service to the directory", description=roles_doc(COORD))
    def add_entry(body: DirectoryIn, request: Request, response: Response, app: App,
                  principal: Annotated[Principal, Depends(COORD)],
                  idempotency_key: IdempotencyKey = None) -> DirectoryOut:
        eid = _once(request, principal, idempotency_key, "POST /contact/directory", body,
                    lambda: str(app.add_directory_entry(_entry(body),
                                                        _meta(request, principal)).id))
        entry = app.get_directory_entry(UUID(eid))
        created(response, f"/contact/directory/{eid}", entry.version)
        return _directory_out(entry)

    @r.get("/directory", response_model=DirectoryPage, summary="Find services",
           description=roles_doc(ON_CALL, "By `need` (an issue code) and `open_at` (any "
                                 "offset; opening hours are London wall-clock time), e.g. "
                                 "bereavement support open on Sunday at 22:00."))
    def search(app: App, _p: Annotated[Principal, Depends(ON_CALL)],
               need: IssueCategory | None = None, open_at: AwareDatetime | None = None,
               limit: Annotated[int, Query(ge=1, le=500)] = 100,
               cursor: Cursor = None) -> DirectoryPage:
        items, next_cursor = app.search_directory(need.value if need else None, open_at, limit,
                                                  cursor)
        return DirectoryPage(items=[DirectoryOut(**i) for i in items], next_cursor=next_cursor)

    @r.get("/directory/{entry_id}", response_model=DirectoryOut, summary="One service",
           description=roles_doc(ON_CALL))
    def get_entry(entry_id: UUID, response: Response, app: App,
                  _p: Annotated[Principal, Depends(ON_CALL)]) -> DirectoryOut:
        entry = app.get_directory_entry(entry_id)
        response.headers["ETag"] = etag(entry.version)
        return _directory_out(entry)

    @r.put("/directory/{entry_id}", response_model=DirectoryOut, summary="Replace an entry",
           description=roles_doc(COORD, "Accepts If-Match."))
    def put_entry(entry_id: UUID, body: DirectoryIn, request: Request, response: Response,
                  app: App, principal: Annotated[Principal, Depends(COORD)]) -> DirectoryOut:
        entry = app.update_directory_entry(entry_id, _entry(body), _meta(request, principal),
                                           expected_version(request))
        response.headers["ETag"] = etag(entry.version)
        return _directory_out(entry)

    @r.delete("/directory/{entry_id}", status_code=204, summary="Remove an entry",
              description=roles_doc(COORD, "Accepts If-Match."))
    def delete_entry(entry_id: UUID, request: Request, app: App,
                     principal: Annotated[Principal, Depends(COORD)]) -> Response:
        app.remove_directory_entry(entry_id, _meta(request, principal), expected_version(request))
        return Response(status_code=204)

    _add_text_routes(r)
    return r


def _new_caller(body: CallerIn | None) -> dict[str, Any]:
    if body is None:
        return {}
    d = body.model_dump(mode="json")
    return d


def _entry(body: DirectoryIn) -> dict[str, Any]:
    d = body.model_dump(mode="json")
    return d


def _nth(items: list[dict[str, Any]], n: int, what: str) -> dict[str, Any]:
    from shared.problems import NotFound

    if not 1 <= n <= len(items):
        raise NotFound(f"No {what} {n} on this contact.")
    return items[n - 1]


# =============================================================================== texts
# A text conversation is a contact with channel=text. The SMS provider posts inbound
# texts to /contact/texts/inbound (authenticated by its request signature, not a token);
# supporters and the coordinator read the thread and reply. Bodies and numbers are
# personal data: sealed in the store, never in a URL, a log line or an event on the bus.

TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
INBOUND_FIELDS = ("From", "To", "Body", "MessageSid")
MAX_INBOUND_PARAMS = 200


class UnsupportedMediaType(Problem):
    status, type, title = 415, "unsupported-media-type", "Unsupported media type"


class SmsProviderFailed(Problem):
    status, type, title = 502, "sms-provider-failed", "The SMS provider did not take the text"


class InboundText(BaseModel):
    """The fields of a provider's inbound-message webhook this service uses; any other
    field is accepted (and covered by the signature)."""

    model_config = ConfigDict(extra="allow")

    From: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    To: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    Body: Annotated[str, StringConstraints(max_length=1600)] = ""
    MessageSid: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class ReplyIn(Strict):
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                           max_length=1600)] = Field(
        description="The text to send (1 to 1600 characters).")


class TextMessageOut(BaseModel):
    n: int
    direction: Direction
    at: datetime
    body: str | None = Field(description="`[erased]` after the caller's erasure.")
    by: str | None = Field(description="Who sent it (outbound); null for the caller's.")
    provider_ref: str | None
    delivery: Literal["outbox", "provider"] | None = Field(
        description="Outbound only: `outbox` (embedded mode: stored, would be sent) or "
        "`provider` (handed to the SMS provider).")


class TextThreadOut(BaseModel):
    contact_id: UUID
    caller_ref: str | None
    started_at: datetime
    closed: bool
    can_reply: bool = Field(description="The caller consented to texts and is not erased.")
    messages: list[TextMessageOut]
    version: int


def _form_pairs(raw: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True,
                         max_num_fields=MAX_INBOUND_PARAMS)
    except (UnicodeDecodeError, ValueError):
        raise Unprocessable(
            "The body must be UTF-8 application/x-www-form-urlencoded parameters.",
            errors=[{"field": "body", "message": "not form data", "code": "form"}],
        ) from None


def _inbound_text(pairs: list[tuple[str, str]]) -> InboundText:
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in INBOUND_FIELDS and name in fields:
            raise Unprocessable(f"{name} is given more than once.",
                                errors=[{"field": f"body.{name}", "message": "given twice",
                                         "code": "duplicate"}])
        fields.setdefault(name, value)
    try:
        return InboundText.model_validate(fields)
    except ValidationError as e:
        # Without the submitted values (a number, a body): the handler keeps loc and msg.
        raise RequestValidationError(
            [{"loc": ("body", *err["loc"]), "msg": err["msg"], "type": err["type"]}
             for err in e.errors()]
        ) from None


def _add_text_routes(r: APIRouter) -> None:
    @r.post(
        "/texts/inbound", response_class=Response, summary="Inbound text (SMS webhook)",
        description=(
            "The SMS provider's webhook: a Twilio-style `application/x-www-form-urlencoded` "
            "post with `From`, `To`, `Body` and `MessageSid` (other fields are accepted and "
            "covered by the signature). Authenticated by `X-Twilio-Signature`: "
            "base64(HMAC-SHA1(auth token, URL + each parameter's name and value, sorted by "
            "name)), over `SOLIDARITY_SMS_WEBHOOK_URL` if set, else the URL as received; a "
            "missing or wrong signature is 403 and stores nothing. Idempotent on "
            "`MessageSid`: a replay creates nothing new. Finds the caller by the keyed hash "
            "of the number or registers a new one (texting in opts in to replies: "
            "`consent_to_text` true, `consent_to_keep_history` false), then appends to "
            "the caller's latest text conversation that is not closed, or opens one. "
            "Answers 200 with an empty TwiML `<Response/>` (`text/xml`): no automatic "
            "reply.\n\nRoles: none (the SMS provider, authenticated by its request "
            "signature)."
        ),
        responses={200: {"content": {"text/xml": {}}, "description": "Taken (or a replay)."},
                   403: {"description": "Missing or wrong signature."}},
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/x-www-form-urlencoded": {"schema": {
                "type": "object", "required": ["From", "To", "MessageSid"],
                "properties": {name: {"type": "string"} for name in INBOUND_FIELDS},
                "additionalProperties": {"type": "string"},
            }}}}},
    )
    async def inbound_text(request: Request, app: App) -> Response:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/x-www-form-urlencoded":
            raise UnsupportedMediaType("Send application/x-www-form-urlencoded parameters.")
        pairs = _form_pairs(await request.body())
        url = app.settings.sms_webhook_url or str(request.url)
        if not valid_twilio_signature(app.sms_auth_token, url, pairs,
                                      request.headers.get(SIGNATURE_HEADER)):
            raise Forbidden("The request's X-Twilio-Signature is missing or does not match.")
        text = _inbound_text(pairs)
        await run_in_threadpool(
            lambda: app.receive_text(message_sid=text.MessageSid, from_number=text.From,
                                     body=text.Body, correlation_id=correlation_of(request)))
        return Response(TWIML_EMPTY, media_type="text/xml")

    @r.get("/texts/{contact_id}", response_model=TextThreadOut,
           summary="A text conversation",
           description=roles_doc(ON_CALL, "The messages in order, with direction, time, "
                                 "body (`[erased]` after erasure) and who sent each reply. In "
                                 "embedded mode replies go to the outbox (`delivery: outbox`):"
                                 " what would be sent. Its version as ETag."))
    def text_thread(contact_id: UUID, response: Response, app: App,
                    _p: Annotated[Principal, Depends(ON_CALL)]) -> TextThreadOut:
        thread = app.text_thread(contact_id)
        response.headers["ETag"] = etag(thread["version"])
        return TextThreadOut(**thread)

    @r.post("/texts/{contact_id}/reply", status_code=201, response_model=TextMessageOut,
            summary="Reply by text",
            description=roles_doc(ON_CALL, "Sends the text through the SMS provider (in "
                                  "embedded mode: the outbox) and records it. Refused (422) "
                                  "unless the caller consented to texts and is not erased. "
                                  "Location names the message in the conversation. Send "
                                  "`Idempotency-Key` to make a retry safe (it never sends "
                                  "twice). 502 if the provider refuses: nothing recorded."))
    def reply_text(contact_id: UUID, body: ReplyIn, request: Request, response: Response,
                   app: App, principal: Annotated[Principal, Depends(ON_CALL)],
                   idempotency_key: IdempotencyKey = None) -> TextMessageOut:
        def create() -> str:
            try:
                _, n = app.reply_text(contact_id, body=body.body, meta=_meta(request, principal))
            except SmsSendError as e:
                raise SmsProviderFailed(str(e)) from None
            return str(n)

        n = int(_once(request, principal, idempotency_key,
                      f"POST /contact/texts/{contact_id}/reply", body, create))
        thread = app.text_thread(contact_id)
        created(response, f"/contact/texts/{contact_id}#m{n}", thread["version"])
        return TextMessageOut(**thread["messages"][n - 1])
