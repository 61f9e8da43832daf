"""The text inbox: the list of text conversations, newest message first, and their
claims (claim, release, hand over). Ids, codes, counts and times in the list: never a
message body or a number. Each claim endpoint answers with the thread, as
``GET /contact/texts/{id}`` shows it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field, StringConstraints

from services.contact.api.common import ON_CALL, App
from services.contact.api.texts import (
    ON_SHIFT,
    STATUS_DOC,
    TextThreadOut,
    ThreadStatus,
    thread_for,
)
from services.contact.domain import Contact, RiskLevel
from shared.web.auth import Principal
from shared.web.deps import Cursor, Strict, roles_doc, with_etag

router = APIRouter()


class InboxItem(BaseModel):
    contact_id: UUID
    caller_ref: str | None
    status: ThreadStatus = Field(description=STATUS_DOC)
    claimed_by: str | None
    started_at: datetime
    last_message_at: datetime | None = Field(description="Null before any message.")
    messages: int
    unread: int = Field(description="The caller's messages since the last reply sent: "
                        "what waits for an answer (0 once a reply goes).")
    risk_level: RiskLevel | None


class InboxPage(BaseModel):
    items: list[InboxItem]
    next_cursor: str | None


class HandOverIn(Strict):
    to: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                         max_length=100)] = Field(
        description="The supporter who takes the thread: their id (a token's `sub`); "
        "they must be on shift now (422 naming `to` otherwise).")


LIST_DOC = (
    "The text conversations, newest message first (the thread's start before any "
    "message), keyset-paged. `status` filters: " + STATUS_DOC + " No message bodies or "
    "numbers: `messages` counts them, `unread` counts the caller's messages since the "
    "last reply sent (what waits for an answer). ")
CLAIM_DOC = (
    "Takes the thread to answer it. Claiming what you already hold is 200 and records "
    "nothing; a thread claimed by someone else is 409 naming who holds it; a closed "
    "thread is 422. A supporter who claims joins the thread's handlers (its "
    "`supporter_ids`: they see its free text). Of two concurrent claims one wins, the "
    "other is 409. Answers with the thread. ")
RELEASE_DOC = (
    "Gives the thread up: its claimant (even after their shift) or the coordinator; "
    "anyone else 403. Releasing an unclaimed thread (the coordinator) records nothing. "
    "Closing a thread ends its claim too. Answers with the thread.")
HAND_OVER_DOC = (
    "Passes the thread to `to`, a supporter on shift now (422 naming `to` otherwise), "
    "who joins its handlers: its claimant (even after their shift) or the coordinator "
    "(also of an unclaimed thread); anyone else 403. A closed thread is 422. Answers "
    "with the thread.")


@router.get("/texts", response_model=InboxPage, summary="The text inbox",
            description=roles_doc(ON_CALL, LIST_DOC + ON_SHIFT))
def text_inbox(app: App, principal: Annotated[Principal, Depends(ON_CALL)],
               status: ThreadStatus | None = None,
               limit: Annotated[int, Query(ge=1, le=200)] = 50,
               cursor: Cursor = None) -> InboxPage:
    items, next_cursor = app.texts.inbox(principal, status=status, limit=limit,
                                         cursor=cursor)
    return InboxPage(items=[InboxItem.model_validate(i) for i in items],
                     next_cursor=next_cursor)


def _answer(app: App, principal: Principal, contact: Contact,
            response: Response) -> TextThreadOut:
    with_etag(response, contact.version)
    return thread_for(app, principal, contact, app.texts.can_reply(contact))


@router.post("/texts/{contact_id:uuid}/claim", response_model=TextThreadOut,
             summary="Claim a text conversation",
             responses={409: {"description": "Claimed by someone else."}},
             description=roles_doc(ON_CALL, CLAIM_DOC + ON_SHIFT))
def claim_thread(contact_id: UUID, response: Response, app: App,
                 principal: Annotated[Principal, Depends(ON_CALL)]) -> TextThreadOut:
    return _answer(app, principal, app.texts.claim(contact_id, principal), response)


@router.post("/texts/{contact_id:uuid}/release", response_model=TextThreadOut,
             summary="Release a claimed text conversation",
             description=roles_doc(ON_CALL, RELEASE_DOC))
def release_thread(contact_id: UUID, response: Response, app: App,
                   principal: Annotated[Principal, Depends(ON_CALL)]) -> TextThreadOut:
    return _answer(app, principal, app.texts.release(contact_id, principal), response)


@router.post("/texts/{contact_id:uuid}/hand-over", response_model=TextThreadOut,
             summary="Hand a text conversation over",
             description=roles_doc(ON_CALL, HAND_OVER_DOC))
def hand_over_thread(contact_id: UUID, body: HandOverIn, response: Response, app: App,
                     principal: Annotated[Principal, Depends(ON_CALL)]) -> TextThreadOut:
    return _answer(app, principal, app.texts.hand_over(contact_id, body.to, principal),
                   response)
