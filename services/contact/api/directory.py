"""The service directory of the on-call bag: organisations (not people), what they help
with and their opening hours in London wall-clock time. The coordinator keeps it;
supporters search it while on a call.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field, StringConstraints

from services.contact.api.common import COORD, ON_CALL, App, OpeningSlot, Short, created_once
from services.contact.domain import DirectoryEntry, IssueCategory
from shared.web.auth import Principal
from shared.web.deps import Cursor, IdempotencyKey, IfMatch, Strict, roles_doc, with_etag
from shared.web.types import Instant

router = APIRouter()


# ---------------------------------------------------------------------- directory


class DirectoryOut(BaseModel):
    id: UUID
    name: str
    helps_with: list[IssueCategory]
    phone: str | None
    opening_hours: list[OpeningSlot]
    open_24_7: bool = Field(description="Open at any time (and no `opening_hours`).")
    address: str | None
    notes: str | None
    version: int


class DirectoryPage(BaseModel):
    items: list[DirectoryOut]
    next_cursor: str | None = None


def directory_out(entry: DirectoryEntry) -> DirectoryOut:
    return DirectoryOut.model_validate({
        "id": entry.id, "name": entry.name, "helps_with": entry.helps_with,
        "phone": entry.phone, "opening_hours": entry.opening_hours,
        "open_24_7": entry.open_24_7, "address": entry.address, "notes": entry.notes,
        "version": entry.version,
    })


class DirectoryIn(Strict):
    name: Short
    helps_with: list[IssueCategory] = Field(min_length=1, max_length=15)
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None
    opening_hours: list[OpeningSlot] = Field(
        default_factory=list, max_length=50,
        description="London wall-clock times; closes before opens runs past midnight. "
        "None with `open_24_7`.")
    open_24_7: bool = Field(default=False, description="Open at any time: instead of "
                            "`opening_hours` (both is 422).")
    address: Annotated[str, StringConstraints(max_length=500)] | None = None
    notes: Annotated[str, StringConstraints(max_length=2000)] | None = None


def _fields(body: DirectoryIn) -> dict[str, Any]:
    return body.model_dump(mode="json")


@router.post("/directory", status_code=201, response_model=DirectoryOut,
             summary="Add a service to the directory", description=roles_doc(COORD))
def add_entry(body: DirectoryIn, request: Request, app: App,
              principal: Annotated[Principal, Depends(COORD)],
              idempotency_key: IdempotencyKey = None) -> Response:
    def show(entry: DirectoryEntry) -> tuple[DirectoryOut, str, int]:
        return directory_out(entry), f"/contact/directory/{entry.id}", entry.version

    return created_once(request, principal, idempotency_key, "POST /contact/directory", body,
                        create=lambda: app.add_directory_entry(_fields(body)),
                        ident=lambda entry: str(entry.id),
                        load=lambda eid: app.get_directory_entry(UUID(eid)), show=show)


@router.get("/directory", response_model=DirectoryPage, summary="Find services",
            description=roles_doc(ON_CALL, "By `need` (an issue code) and `open_at` (any "
                                  "offset; opening hours are London wall-clock time), e.g. "
                                  "bereavement support open on Sunday at 22:00."))
def search(app: App, _p: Annotated[Principal, Depends(ON_CALL)],
           need: IssueCategory | None = None, open_at: Instant | None = None,
           limit: Annotated[int, Query(ge=1, le=500)] = 100,
           cursor: Cursor = None) -> DirectoryPage:
    items, next_cursor = app.search_directory(need.value if need else None, open_at, limit,
                                              cursor)
    return DirectoryPage(items=[DirectoryOut(**i) for i in items], next_cursor=next_cursor)


@router.get("/directory/{entry_id}", response_model=DirectoryOut, summary="One service",
            description=roles_doc(ON_CALL))
def get_entry(entry_id: UUID, response: Response, app: App,
              _p: Annotated[Principal, Depends(ON_CALL)]) -> DirectoryOut:
    entry = app.get_directory_entry(entry_id)
    with_etag(response, entry.version)
    return directory_out(entry)


@router.put("/directory/{entry_id}", response_model=DirectoryOut, summary="Replace an entry",
            description=roles_doc(COORD, "Accepts If-Match."))
def put_entry(entry_id: UUID, body: DirectoryIn, response: Response, app: App,
              _p: Annotated[Principal, Depends(COORD)], if_match: IfMatch) -> DirectoryOut:
    entry = app.update_directory_entry(entry_id, _fields(body), if_match)
    with_etag(response, entry.version)
    return directory_out(entry)


@router.delete("/directory/{entry_id}", status_code=204, summary="Remove an entry",
               description=roles_doc(COORD, "Accepts If-Match."))
def delete_entry(entry_id: UUID, app: App, _p: Annotated[Principal, Depends(COORD)],
                 if_match: IfMatch) -> Response:
    app.remove_directory_entry(entry_id, if_match)
    return Response(status_code=204)
