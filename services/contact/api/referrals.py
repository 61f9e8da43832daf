"""Referrals: partners (and the coordinator) refer someone in, with their consent to be
contacted; the coordinator works the queue and accepts or declines each, with a reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AwareDatetime, Field

from services.contact.api.callers import CallerIn, new_caller
from services.contact.api.common import COORD, REFER, App, CallerRef, LongText, Short, Strict, Text
from services.contact.api.presenters import ReferralOut, ReferralPage, referral_out
from services.contact.domain import ReferralSource
from shared.web.auth import Principal
from shared.web.deps import Cursor, IdempotencyKey, IfMatch, created, once, roles_doc, with_etag

router = APIRouter()


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


@router.post("/referrals", status_code=201, response_model=ReferralOut,
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
            new_caller=new_caller(body.caller) if body.caller else None,
            reason=body.reason, consent_to_contact=body.consent_to_contact,
        )
        return str(referral.id)

    rid = once(request, "contact", principal, idempotency_key, "POST /contact/referrals", body,
               create)
    referral = app.get_referral(UUID(rid))
    created(response, f"/contact/referrals/{rid}", referral.version)
    return referral_out(app.keys, referral)


@router.get("/referrals", response_model=ReferralPage, summary="The referral queue",
            description=roles_doc(COORD, "Oldest first; filter by `status`."))
def referrals(app: App, _p: Annotated[Principal, Depends(COORD)],
              status: Annotated[str | None,
                                Query(pattern="^(received|accepted|declined)$")] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 100,
              cursor: Cursor = None) -> ReferralPage:
    found, next_cursor = app.list_referrals(status, limit, cursor)
    return ReferralPage(items=[referral_out(app.keys, x) for x in found],
                        next_cursor=next_cursor)


@router.get("/referrals/{referral_id}", response_model=ReferralOut, summary="One referral",
            description=roles_doc(COORD))
def get_referral(referral_id: UUID, response: Response, app: App,
                 _p: Annotated[Principal, Depends(COORD)]) -> ReferralOut:
    referral = app.get_referral(referral_id)
    with_etag(response, referral.version)
    return referral_out(app.keys, referral)


def _decide(accept: bool) -> Callable[..., ReferralOut]:
    """The endpoint of one verb (accept, decline): both are named ``decide``."""

    def decide(referral_id: UUID, body: DecisionIn, response: Response, app: App,
               _p: Annotated[Principal, Depends(COORD)], if_match: IfMatch) -> ReferralOut:
        referral = app.decide_referral(referral_id, accept=accept, reason=body.reason,
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
