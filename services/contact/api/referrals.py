"""Referrals: partners (and the coordinator) refer someone in, with their consent to be
contacted; the coordinator works the queue and accepts or declines each, with a reason.

A partner learns nothing about who else calls the line: it refers with the person's
details (a ``caller_ref`` from a partner is one 422, whatever it names), a known number
is matched inside with the same 201 as a new one, its answer does not show which caller
was referred, and a retry with its ``Idempotency-Key`` gets that first answer, not the
decision taken since (``services.contact.referrals``). A partner reads the referrals it
made, as status only (``referral_status_out``); another's is not found.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from services.contact.api.callers import CallerIn, new_caller
from services.contact.api.common import (
    COORD,
    REFER,
    App,
    CallerRef,
    LongText,
    Short,
    Text,
    created_once,
)
from services.contact.domain import Referral, ReferralSource
from shared.audit.access import record_read, record_reads
from shared.kernel import ERASED, is_sealed
from shared.privacy import KeyStore
from shared.web.auth import Principal, Role
from shared.web.deps import Cursor, IdempotencyKey, IfMatch, Purpose, Strict, roles_doc, with_etag
from shared.web.types import Instant

router = APIRouter()


# ---------------------------------------------------------------------- referrals


class FirstContactOut(BaseModel):
    contact_id: UUID
    at: datetime


class ReferralOut(BaseModel):
    id: UUID
    received_at: datetime
    source: ReferralSource
    referrer_organisation: str | None = Field(description="`[erased]` after the caller's "
                                              "erasure.")
    caller_ref: str | None = Field(description="Who was referred; null in a partner's "
                                   "answer (a partner learns nothing of who calls the line).")
    reason: str | None
    status: str = Field(description="`received`, `accepted`, `declined` or `contacted`.")
    outcome_reason: str | None
    decided_by: str | None
    first_contact_due_by: datetime | None = Field(
        description="Accepted: when first contact is due (the follow-up it opened).")
    first_contact: FirstContactOut | None = Field(
        description="The contact that made first contact, when; null in a partner's read.")
    version: int


class ReferralPage(BaseModel):
    items: list[ReferralOut]
    next_cursor: str | None = None


def _organisation(keys: KeyStore, referral: Referral) -> str | None:
    """Sealed with the caller's key; a referral recorded before it was sealed keeps it
    in clear in its event, shown only while the caller's personal data exists."""
    value = referral.referrer_organisation
    if value is None or is_sealed(value):
        return keys.reveal(value)
    return ERASED if keys.is_erased(str(referral.caller_id)) else value


def referral_out(keys: KeyStore, referral: Referral, *, for_partner: bool = False
                 ) -> ReferralOut:
    """A referral; in a partner's answer, without who was referred."""
    return ReferralOut.model_validate({
        "id": referral.id,
        "received_at": referral.received_at,
        "source": referral.source,
        "referrer_organisation": _organisation(keys, referral),
        "caller_ref": None if for_partner else referral.caller_ref,
        "reason": keys.reveal(referral.reason),
        "status": referral.status,
        "outcome_reason": keys.reveal(referral.outcome_reason),
        "decided_by": referral.decided_by,
        "first_contact_due_by": referral.first_contact_due_by,
        "first_contact": referral.first_contact,
        "version": referral.version,
    })


def referral_status_out(referral: Referral) -> ReferralOut:
    """What the partner that made a referral reads of it: its status, no reasons,
    organisation, caller or who decided."""
    return ReferralOut.model_validate({
        "id": referral.id, "received_at": referral.received_at, "source": referral.source,
        "referrer_organisation": None, "caller_ref": None, "reason": None,
        "status": referral.status, "outcome_reason": None, "decided_by": None,
        "first_contact_due_by": referral.first_contact_due_by, "first_contact": None,
        "version": referral.version,
    })


class ReferralIn(Strict):
    received_at: Instant | None = Field(default=None, description="Default: now.")
    source: ReferralSource
    referrer_organisation: Short | None = None
    caller_ref: CallerRef | None = Field(default=None, description="A known caller "
                                         "(the coordinator only: a partner gives `caller`).")
    caller: CallerIn | None = Field(default=None, description="The person, inline: a "
                                    "known number refers that caller.")
    reason: LongText | None = None
    consent_to_contact: bool


class DecisionIn(Strict):
    reason: Text


@router.post("/referrals", status_code=201, response_model=ReferralOut,
             summary="Refer someone to the service",
             description=roles_doc(REFER, "The person inline (`caller`: a known number "
                                   "refers that caller, with the same answer), or, for the "
                                   "coordinator, an existing `caller_ref` (422 from a "
                                   "partner, whatever it names). Without "
                                   "`consent_to_contact: true` it is refused (422). A "
                                   "partner's answer does not name the caller "
                                   "(`caller_ref` null)."))
def refer(body: ReferralIn, request: Request, app: App,
          principal: Annotated[Principal, Depends(REFER)],
          idempotency_key: IdempotencyKey = None) -> Response:
    partner = principal.role == Role.PARTNER

    def create() -> Referral:
        return app.referrals.receive(
            received_at=body.received_at, source=body.source.value,
            referrer_organisation=body.referrer_organisation, caller_ref=body.caller_ref,
            new_caller=new_caller(body.caller) if body.caller else None,
            reason=body.reason, consent_to_contact=body.consent_to_contact,
            by_partner=partner,
        )

    def show(referral: Referral) -> tuple[ReferralOut, str, int]:
        return (referral_out(app.keys, referral, for_partner=partner),
                f"/contact/referrals/{referral.id}", referral.version)

    return created_once(request, principal, idempotency_key, "POST /contact/referrals", body,
                        create=create, ident=lambda referral: str(referral.id),
                        load=lambda rid: app.referrals.get(UUID(rid)), show=show)


@router.get("/referrals", response_model=ReferralPage, summary="The referral queue",
            description=roles_doc(REFER, "Oldest first; filter by `status`. A partner gets "
                                  "only the referrals it made, as status only."))
def referrals(app: App, principal: Annotated[Principal, Depends(REFER)],
              status: Annotated[str | None, Query(
                  pattern="^(received|accepted|declined|contacted)$")] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 100,
              cursor: Cursor = None, purpose: Purpose = None) -> ReferralPage:
    partner = principal.role == Role.PARTNER
    found, next_cursor = app.referrals.queue(status, limit, cursor,
                                             referred_by=principal.sub if partner else None)
    if not partner:  # the coordinator reads who was referred and why: recorded first
        record_reads(app, app.keys, kind="referral", purpose=purpose,
                     records=[(x.id, _subject(x)) for x in found])
    return ReferralPage(items=[referral_status_out(x) if partner else referral_out(app.keys, x)
                               for x in found], next_cursor=next_cursor)


@router.get("/referrals/{referral_id}", response_model=ReferralOut, summary="One referral",
            description=roles_doc(REFER, "A partner reads only a referral it made (another "
                                  "is 404), as status only."))
def get_referral(referral_id: UUID, response: Response, app: App,
                 principal: Annotated[Principal, Depends(REFER)],
                 purpose: Purpose = None) -> ReferralOut:
    if principal.role == Role.PARTNER:
        referral = app.referrals.made_by(referral_id, principal.sub)
        with_etag(response, referral.version)
        return referral_status_out(referral)
    referral = app.referrals.get(referral_id)
    record_read(app, app.keys, kind="referral", record_id=referral.id,
                subject=_subject(referral), purpose=purpose)
    with_etag(response, referral.version)
    return referral_out(app.keys, referral)


def _subject(referral: Referral) -> UUID:
    """Whose key seals what is read of a referral: the referred caller's."""
    return referral.caller_id


def _decide(accept: bool) -> Callable[..., ReferralOut]:
    """The endpoint of one verb (accept, decline): both are named ``decide``."""

    def decide(referral_id: UUID, body: DecisionIn, response: Response, app: App,
               _p: Annotated[Principal, Depends(COORD)], if_match: IfMatch) -> ReferralOut:
        referral = app.referrals.decide(referral_id, accept=accept, reason=body.reason,
                                        expected_version=if_match)
        with_etag(response, referral.version)
        return referral_out(app.keys, referral)

    return decide


for _verb, _accept in (("accept", True), ("decline", False)):
    router.add_api_route(f"/referrals/{{referral_id}}/{_verb}", _decide(_accept),
                         methods=["POST"], response_model=ReferralOut,
                         summary=f"{_verb.capitalize()} a referral",
                         description=roles_doc(COORD, "With a reason. Only a referral still "
                                               "`received` can be decided."))
