"""Callers: registration, lookup by phone, consents, history and erasure (UK GDPR).

A caller is known by a pseudonymous ``caller_ref``; the alias and number are sealed
with the caller's key, and the number never travels in a URL's path.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field

from services.contact.api.common import COORD, ON_CALL, App, CallerRef, Phone, Short, created_once
from services.contact.api.presenters import (
    CallerOut,
    ErasureOut,
    History,
    caller_out,
    contact_item,
)
from services.contact.domain import AgeBand, Caller, Gender, NewCaller
from shared.audit.access import record_read
from shared.web.auth import Principal
from shared.web.deps import IdempotencyKey, IfMatch, Purpose, Strict, roles_doc, with_etag

router = APIRouter()


class CallerIn(Strict):
    alias: Short | None = Field(default=None, description="What they like to be called.")
    phone: Phone | None = Field(default=None, description="UK number; stored only encrypted "
                                "and as a keyed hash for lookup.")
    gender: Gender | None = None
    age_band: AgeBand | None = None
    consent_to_keep_history: bool = False
    consent_to_text: bool = False


class ConsentIn(Strict):
    consent_to_keep_history: bool | None = None
    consent_to_text: bool | None = None


def new_caller(body: CallerIn) -> NewCaller:
    return NewCaller(**body.model_dump(mode="json"))


@router.post("/callers", status_code=201, response_model=CallerOut, summary="Register a caller",
             description=roles_doc(ON_CALL, "A caller record with a pseudonymous `caller_ref`. "
                                   "Alias and phone are encrypted; the phone is also kept as "
                                   "a keyed hash for lookup. A known number is 409."))
def register_caller(body: CallerIn, request: Request, app: App,
                    principal: Annotated[Principal, Depends(ON_CALL)],
                    idempotency_key: IdempotencyKey = None) -> Response:
    def show(caller: Caller) -> tuple[CallerOut, str, int]:
        return (caller_out(app.keys, caller), f"/contact/callers/{caller.caller_ref}",
                caller.version)

    return created_once(request, principal, idempotency_key, "POST /contact/callers", body,
                        create=lambda: app.register_caller(new_caller(body)),
                        ident=lambda caller: caller.caller_ref, load=app.get_caller, show=show)


@router.get("/callers/lookup", response_model=CallerOut,
            summary="Find a caller by phone number",
            responses={404: {"description": "No known caller has this number (or erased)."}},
            description=roles_doc(ON_CALL, "Matches the keyed hash of the normalised number "
                                  "(07..., +447..., spaces). 404 when unknown or erased. The "
                                  "number is redacted from the access log."))
def lookup(app: App, _p: Annotated[Principal, Depends(ON_CALL)],
           phone: Annotated[str, Query(min_length=5, max_length=30)],
           purpose: Purpose = None) -> CallerOut:
    caller = app.lookup_caller(phone)
    record_read(app, app.keys, kind="caller", record_id=caller.id, subject=caller.id,
                purpose=purpose)
    return caller_out(app.keys, caller)


@router.get("/callers/{caller_ref:caller_ref}", response_model=CallerOut,
            summary="One caller",
            description=roles_doc(ON_CALL))
def get_caller(caller_ref: CallerRef, response: Response, app: App,
               _p: Annotated[Principal, Depends(ON_CALL)], purpose: Purpose = None) -> CallerOut:
    caller = app.get_caller(caller_ref)
    record_read(app, app.keys, kind="caller", record_id=caller.id, subject=caller.id,
                purpose=purpose)
    with_etag(response, caller.version)
    return caller_out(app.keys, caller)


@router.patch("/callers/{caller_ref:caller_ref}", response_model=CallerOut,
              summary="Change consents",
              description=roles_doc(ON_CALL, "Record a change of consent (history, texts). "
                                    "Accepts If-Match."))
def change_consent(caller_ref: CallerRef, body: ConsentIn, response: Response, app: App,
                   _p: Annotated[Principal, Depends(ON_CALL)],
                   if_match: IfMatch) -> CallerOut:
    caller = app.change_consent(caller_ref, **body.model_dump(), expected_version=if_match)
    with_etag(response, caller.version)
    return caller_out(app.keys, caller)


@router.get("/callers/{caller_ref:caller_ref}/history", response_model=History,
            summary="Earlier contacts with a caller",
            description=roles_doc(ON_CALL, "Newest first, only when the caller consented to "
                                  "keep history, and only for the coordinator or a supporter "
                                  "on shift (assigned to a shift on the rota, from "
                                  "`SOLIDARITY_ON_SHIFT_BEFORE_MIN` (30) minutes before its "
                                  "start to `SOLIDARITY_ON_SHIFT_AFTER_MIN` (60) after its "
                                  "end; naming a supporter on a contact does not put them on "
                                  "shift). Every read is recorded as an event with its "
                                  "`purpose`."))
def history(caller_ref: CallerRef, app: App, principal: Annotated[Principal, Depends(ON_CALL)],
            purpose: Annotated[str, Query(min_length=3, max_length=200,
                                          description="Why you are reading it.")]) -> History:
    rows = app.caller_history(caller_ref, purpose=purpose, principal=principal)
    return History(caller_ref=caller_ref,
                   items=[contact_item(app.keys, row, include_summary=True) for row in rows])


@router.delete("/callers/{caller_ref:caller_ref}/personal-data", response_model=ErasureOut,
               summary="Erase a caller's personal data (UK GDPR)",
               description=roles_doc(COORD, "Destroys the caller's key: alias, phone, notes "
                                     "and messages become unreadable everywhere (shown as "
                                     "`[erased]`); the phone lookup forgets them. Coded "
                                     "fields stay for the statistics. Idempotent: asking "
                                     "again answers the same."))
def erase(caller_ref: CallerRef, app: App,
          _p: Annotated[Principal, Depends(COORD)]) -> ErasureOut:
    caller = app.erase_caller(caller_ref)
    return ErasureOut(caller_ref=caller.caller_ref, erased=caller.erased)
