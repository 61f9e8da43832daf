"""The on-call bag (the phone, a resource booklet, the Lambeth service directory) and its
chain of custody: registered by the coordinator, handed from pair to pair. Only the
holder hands it over (409 otherwise); an item not there, or the phone not charged, is
recorded missing besides the handover.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field

from services.shift.api.common import COORD, ROTA, App, Label, PersonId, Text, created_once
from services.shift.api.presenters import BagItemOut, BagOut, BagPage, bag_out
from services.shift.domain import Bag, BagItem
from shared.web.auth import Principal
from shared.web.deps import Cursor, IdempotencyKey, IfMatch, Strict, created, roles_doc, with_etag
from shared.web.types import Instant

router = APIRouter()


class BagIn(Strict):
    label: Label
    items: list[BagItem] | None = Field(default=None, min_length=1, max_length=4,
                                        description="What a handover checks; default: all "
                                        "four (the phone's charge included).")


class ItemsChecked(Strict):
    phone: bool = False
    phone_charged: bool = False
    resource_booklet: bool = False
    service_directory: bool = False


class HandoverIn(Strict):
    from_supporter_id: PersonId = Field(description="Who holds it now (the first time: "
                                        "whoever registered it).")
    to_supporter_id: PersonId
    items_checked: ItemsChecked = Field(description="What the receiver found: absent or "
                                        "false is recorded missing.")
    at: Instant | None = Field(default=None, description="Default now; not in the future, "
                               "not before the last handover.")
    notes: Text | None = None


@router.post("/bags", status_code=201, response_model=BagOut, summary="Register a bag",
             description=roles_doc(COORD, "A bag and what a handover checks of it; you hold "
                                   "it until its first handover. Send `Idempotency-Key` to "
                                   "make a retry safe."))
def register(body: BagIn, request: Request, app: App,
             principal: Annotated[Principal, Depends(COORD)],
             idempotency_key: IdempotencyKey = None) -> Response:
    def show(bag: Bag) -> tuple[BagOut, str, int]:
        return bag_out(app, bag, principal), f"/shift/bags/{bag.id}", bag.version

    return created_once(
        request, principal, idempotency_key, "POST /shift/bags", body,
        create=lambda: app.bags.register(
            label=body.label, items=[i.value for i in body.items] if body.items else None),
        ident=lambda bag: str(bag.id), load=lambda bid: app.bags.get(UUID(bid)), show=show)


@router.get("/bags", response_model=BagPage, summary="The bags",
            description=roles_doc(ROTA, "Every bag and who holds it, oldest first."))
def bags(app: App, _p: Annotated[Principal, Depends(ROTA)],
         limit: Annotated[int, Query(ge=1, le=500)] = 100, cursor: Cursor = None) -> BagPage:
    rows, next_cursor = app.bags.list(limit, cursor)
    return BagPage(items=[BagItemOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/bags/{bag_id}", response_model=BagOut, summary="One bag",
            description=roles_doc(ROTA, "Its holder and its chain of custody."))
def get_bag(bag_id: UUID, response: Response, app: App,
            principal: Annotated[Principal, Depends(ROTA)]) -> BagOut:
    bag = app.bags.get(bag_id)
    with_etag(response, bag.version)
    return bag_out(app, bag, principal)


@router.post("/bags/{bag_id}/handovers", status_code=201, response_model=BagOut,
             summary="Hand the bag over",
             description=roles_doc(ROTA, "From its holder to the next (409 when "
                                   "`from_supporter_id` does not hold it). Each item not "
                                   "checked `true` is recorded missing (`BagItemMissing`). "
                                   "Answers the bag. Accepts If-Match."))
def hand_over(bag_id: UUID, body: HandoverIn, response: Response, app: App,
              principal: Annotated[Principal, Depends(ROTA)], if_match: IfMatch) -> BagOut:
    bag = app.bags.hand_over(bag_id, from_supporter_id=body.from_supporter_id,
                             to_supporter_id=body.to_supporter_id,
                             items_checked=body.items_checked.model_dump(),
                             at=body.at or datetime.now(UTC), notes=body.notes,
                             expected_version=if_match)
    created(response, f"/shift/bags/{bag_id}#handover-{len(bag.history)}", bag.version)
    return bag_out(app, bag, principal)
