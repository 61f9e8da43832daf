"""Endpoints every service has: ``/health`` and ``/events``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from shared.messaging.envelope import IntegrationEvent
from shared.web.auth import Allow, Principal, Role
from shared.web.deps import roles_doc, runtime_of
from shared.web.paging import page_params


class EventPage(BaseModel):
    items: list[IntegrationEvent]
    next_cursor: str | None


class Health(BaseModel):
    service: str
    status: str
    live: bool
    ready: bool
    store: dict[str, Any]
    nats: dict[str, Any]
    relay: dict[str, Any] | None = None
    consumers: list[dict[str, Any]] = []


EVENTS_ALLOW = Allow(Role.AUDITOR, Role.COORDINATOR)


def platform_router(service: str) -> APIRouter:
    router = APIRouter(prefix=f"/{service}", tags=[service])

    @router.get(
        "/health",
        response_model=Health,
        summary=f"Liveness and readiness of the {service} service",
        description=(
            "Liveness, and readiness with the event store and NATS reported separately. "
            "`?probe=ready` answers 503 when the store is not usable (NATS being down does "
            "not make a service unready: it takes commands and its relay catches up later)."
            "\n\nRoles: public (no token needed)."
        ),
    )
    async def health(
        request: Request,
        response: Response,
        probe: Annotated[str | None, Query(pattern="^(live|ready)$")] = None,
    ) -> Health:
        runtime = runtime_of(request, service)
        report = await runtime.health()
        if probe == "ready" and not report.ready:
            response.status_code = 503
        return report

    @router.get(
        "/events",
        response_model=EventPage,
        summary=f"The {service} service's notification log as integration events",
        description=roles_doc(
            EVENTS_ALLOW,
            "Every event the service has stored, in order, as the integration events it "
            "publishes on the bus (no personal data). For auditors replaying history and "
            "for consumers backfilling a missed event: pass the last `notification_id` you "
            "have as `after` (or the previous page's `next_cursor` as `cursor`).",
        ),
    )
    def events(
        request: Request,
        _principal: Annotated[Principal, Depends(EVENTS_ALLOW)],
        after: Annotated[int | None, Query(ge=0)] = None,
        cursor: Annotated[str | None, Query(max_length=20)] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 100,
    ) -> EventPage:
        runtime = runtime_of(request, service)
        limit, start = page_params(limit, cursor, after)
        items = runtime.app.integration_events(start, limit)
        next_cursor = str(items[-1].notification_id) if len(items) == limit else None
        return EventPage(items=items, next_cursor=next_cursor)

    return router
