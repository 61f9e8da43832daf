"""Ringing back: a caller's or a missed call's number, shown for a stated purpose (the
reveal recorded first), and a call-back placed through the call provider, which rings
the supporter's own phone and then the caller (so nobody sees the caller's number).
Numbers never travel in a URL, a log line or an event on the bus.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from services.contact.api.common import ON_CALL, App, CallerRef, Phone, Short, created_once
from services.contact.domain import Contact
from shared.calls import CallPlaceError, delivery_of
from shared.web.auth import Principal
from shared.web.deps import IdempotencyKey, Strict, roles_doc
from shared.web.problems import Problem

router = APIRouter()

ON_SHIFT = ("The coordinator, or a supporter while on shift (assigned to a shift on the "
            "rota, from `SOLIDARITY_ON_SHIFT_BEFORE_MIN` (30) minutes before its start to "
            "`SOLIDARITY_ON_SHIFT_AFTER_MIN` (60) after its end); 403 otherwise.")


class PurposeIn(Strict):
    purpose: Short = Field(description="Why you need the number (kept, sealed with the "
                           "caller's key, with the record of the reveal).")


class PhoneOut(BaseModel):
    phone: str = Field(description="The number, E.164 (+447...).")


class CallBackIn(Strict):
    ring: Phone = Field(description="Your own phone (UK): the provider rings it first, "
                        "then connects you to the caller.")


class CallBackOut(BaseModel):
    n: int = Field(description="The call-back's place among this contact's call-backs.")
    placed_at: datetime
    placed_by: str
    delivery: Literal["outbox", "provider"] = Field(
        description="`outbox` (embedded mode: recorded, never dialled) or `provider` "
        "(taken by the call provider).")
    provider_ref: str


class CallProviderFailed(Problem):
    status, type, title = 502, "call-provider-failed", "The call provider did not place the call"


def call_back_out(contact: Contact, n: int) -> CallBackOut:
    placed = contact.call_backs[n - 1]
    return CallBackOut(n=n, placed_at=placed["placed_at"], placed_by=placed["placed_by"],
                       delivery=delivery_of(placed["provider_ref"]),
                       provider_ref=placed["provider_ref"])


@router.post("/callers/{caller_ref:caller_ref}/phone", response_model=PhoneOut,
             summary="A caller's number, to ring them back",
             description=roles_doc(ON_CALL, "Only for a caller who consented to being "
                                   "contacted: `consent_to_text`, an accepted referral of "
                                   "theirs, or a missed call of theirs whose call-back is "
                                   "open (403 otherwise). No number for an erased caller "
                                   "or one with none on record (422). The reveal is "
                                   "recorded, with its `purpose` and its grounds, before "
                                   "the number is shown. " + ON_SHIFT))
def caller_phone(caller_ref: CallerRef, body: PurposeIn, app: App,
                 principal: Annotated[Principal, Depends(ON_CALL)]) -> PhoneOut:
    return PhoneOut(phone=app.ring_back.caller_phone(caller_ref, purpose=body.purpose,
                                                     principal=principal))


@router.post("/contacts/{contact_id}/phone", response_model=PhoneOut,
             summary="A missed call's number, to ring it back",
             description=roles_doc(ON_CALL, "A missed call's number (its own, else its "
                                   "caller's), while its call-back follow-up is open; the "
                                   "coordinator at any time (a supporter after it is "
                                   "complete: 403). Not a missed call, no number, or an "
                                   "erased caller: 422. The reveal is recorded with its "
                                   "`purpose` before the number is shown. " + ON_SHIFT))
def contact_phone(contact_id: UUID, body: PurposeIn, app: App,
                  principal: Annotated[Principal, Depends(ON_CALL)]) -> PhoneOut:
    return PhoneOut(phone=app.ring_back.contact_phone(contact_id, purpose=body.purpose,
                                                      principal=principal))


@router.post("/contacts/{contact_id}/call-back", status_code=201, response_model=CallBackOut,
             summary="Ring a missed call back",
             responses={502: {"description": "The call provider refused the call: nothing "
                                             "recorded."}},
             description=roles_doc(ON_CALL, "Places the call through the call provider: it "
                                   "rings `ring` (your own phone), then connects you to the "
                                   "caller, showing the line's number, so you never see "
                                   "theirs. For a missed call whose number is known, while "
                                   "its call-back follow-up is open (the coordinator: any "
                                   "time). Recorded (`CallBackPlaced`: who, when, the "
                                   "provider's reference; no number). In embedded mode the "
                                   "call goes to the outbox (`delivery: outbox`). Send "
                                   "`Idempotency-Key` to make a retry safe (it never "
                                   "places a call twice). 502 if the provider refuses: "
                                   "nothing recorded. Log the call itself afterwards with "
                                   "`responds_to`. " + ON_SHIFT))
def call_back(contact_id: UUID, body: CallBackIn, request: Request, app: App,
              principal: Annotated[Principal, Depends(ON_CALL)],
              idempotency_key: IdempotencyKey = None) -> Response:
    def create() -> tuple[Contact, int]:
        try:
            return app.ring_back.call_back(contact_id, ring=body.ring, principal=principal)
        except CallPlaceError as e:
            raise CallProviderFailed(str(e)) from None

    def load(n: str) -> tuple[Contact, int]:
        return app.get_contact(contact_id), int(n)

    def show(placed: tuple[Contact, int]) -> tuple[CallBackOut, str, int]:
        contact, n = placed
        return call_back_out(contact, n), f"/contact/contacts/{contact_id}", contact.version

    return created_once(request, principal, idempotency_key,
                        f"POST /contact/contacts/{contact_id}/call-back", body, create=create,
                        ident=lambda placed: str(placed[1]), load=load, show=show)
