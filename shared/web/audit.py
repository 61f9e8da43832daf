"""``GET /<service>/audit/aggregates/{aggregate_id}?as_of=``: one aggregate as it was at
a moment, rebuilt from its events, with its events up to then (``shared.audit.replay``).

A router factory: each service with aggregates includes ``audit_router(service,
application class, hooks)`` in its router (its hooks in ``services/<service>/audit.py``).
The auditor and the coordinator may replay; personal data (every sealed value) only
the coordinator sees, opened by the service's key store (``[erased]`` once the
subject's key was destroyed); the auditor sees it null.
"""

# No ``from __future__ import annotations``: the endpoint is made inside a function, and
# FastAPI reads its annotations (which name the factory's arguments) as objects.

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from shared.audit.access import reads_of, record_read, sealed_subject
from shared.audit.replay import Hooks, Reveal, events_of, find, hidden, replay
from shared.web.auth import Allow, Principal, Role
from shared.web.deps import Purpose, application, roles_doc
from shared.web.types import Instant

REPLAY = Allow(Role.AUDITOR, Role.COORDINATOR)


class ReplayedEvent(BaseModel):
    version: int = Field(description="The aggregate's version after this event.")
    type: str = Field(description="The event's type (`Meeting.Approved`).")
    at: datetime = Field(description="When the service recorded it.")
    actor: str = Field(description="Who caused it: a token's `sub`, or `system`.")
    decision: dict[str, Any] | None = Field(
        description="A decision's fields and reasons (free text null for the auditor); "
        "null for an event that is no decision.")


class RecordedRead(BaseModel):
    at: datetime = Field(description="When it was read.")
    by: str = Field(description="Who read it: a token's `sub`.")
    kind: str = Field(description="What was read: `caller`, `contact`, `text_thread`, "
                      "`referral`, `supporter`, `meeting` or `audit_replay`.")
    purpose: str | None = Field(description="The stated purpose: for the coordinator only "
                                "(null for the auditor, and when none was stated).")


class Replay(BaseModel):
    id: UUID
    type: str = Field(description="The aggregate's class (`Meeting`, `Contact`).")
    as_of: datetime
    version: int = Field(description="The last version recorded at or before `as_of`.")
    state: dict[str, Any] = Field(
        description="The aggregate rebuilt from its events up to `as_of`: codes, ids, "
        "times, statuses and decisions; personal data only for the coordinator (null "
        "for the auditor, `[erased]` after erasure).")
    events: list[ReplayedEvent]
    reads: list[RecordedRead] = Field(
        description="Who read the record's personal data up to `as_of`, and why "
        "(docs/privacy.md, 'Who read what').")


def audit_router(service: str, app_class: type[Any], hooks: Hooks) -> APIRouter:
    """The replay endpoint of ``service`` (its router adds the ``/<service>`` prefix)."""
    router = APIRouter()
    App = Annotated[Any, Depends(application(service, app_class))]

    @router.get(
        "/audit/aggregates/{aggregate_id}", response_model=Replay,
        summary="Replay a record as of a moment",
        description=roles_doc(REPLAY, "The record (a meeting, a contact, a caller, a "
                              "shift...) as it was at `as_of` (default: now), rebuilt from "
                              "its stored events, with its events up to then: type, time, "
                              "actor and each decision's reasons. 404 for an unknown id "
                              "or an `as_of` before the record existed. Personal data "
                              "only for the coordinator."),
    )
    def replay_aggregate(
        aggregate_id: Annotated[str, Path(min_length=1, max_length=64,
                                          description=hooks.id_doc)],
        app: App, principal: Annotated[Principal, Depends(REPLAY)],
        as_of: Annotated[Instant | None, Query(description="An instant with its offset "
                                               "(RFC 3339); default now.")] = None,
        purpose: Purpose = None,
    ) -> dict[str, Any]:
        coordinator = principal.role == Role.COORDINATOR
        reveal: Reveal = app.keys.reveal if coordinator else hidden
        moment = as_of or datetime.now(UTC)
        events = events_of(app, find(hooks, aggregate_id))
        doc = replay(events, moment, hooks, reveal)
        doc["reads"] = [{"at": r.timestamp, "by": r.meta.get("actor", ""), "kind": r.kind,
                         "purpose": reveal(r.purpose)}
                        for r in reads_of(app, doc["id"], until=moment)]
        subject = sealed_subject(events)
        if coordinator and subject is not None:  # personal data shown: recorded first
            record_read(app, app.keys, kind="audit_replay", record_id=doc["id"],
                        subject=subject, purpose=purpose)
        return doc

    return router
