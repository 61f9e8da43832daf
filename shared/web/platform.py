"""Endpoints every service has: ``/health`` and ``/events``.

The health answer is public, for load balancers and container health checks, so it
says only whether the service is up and ready; its details (store head, relay lag,
consumers and their last errors) describe the system's activity and need the token of
a coordinator or an auditor.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from shared.messaging.envelope import IntegrationEvent
from shared.web.auth import Allow, Principal, Role, principal_from_request
from shared.web.deps import roles_doc, runtime_of
from shared.web.paging import page_params
from shared.web.problems import Unauthorized
from shared.web.types import MAX_POSITION


class EventPage(BaseModel):
    items: list[IntegrationEvent]
    next_cursor: str | None


class Health(BaseModel):
    service: str
    status: str
    live: bool
    ready: bool
    # The details: only for HEALTH_DETAILS roles (absent from the public answer).
    store: dict[str, Any] | None = None
    nats: dict[str, Any] | None = None
    relay: dict[str, Any] | None = None
    consumers: list[dict[str, Any]] = []

    def public(self) -> Health:
        """Up or down, and nothing else (the unset fields are left out of the answer)."""
        return Health(service=self.service, status=self.status, live=self.live,
                      ready=self.ready)


EVENTS_ALLOW = Allow(Role.AUDITOR, Role.COORDINATOR)
HEALTH_DETAILS = (Role.COORDINATOR, Role.AUDITOR)


def _shows_details(request: Request) -> bool:
    """A valid token of a role that may see the details. Anything else (no token, a
    token that is not valid, another role) gets the public answer: the endpoint is
    public and answers no 401 or 403."""
    if request.headers.get("authorization") is None:
        return False
    try:
        return principal_from_request(request).role in HEALTH_DETAILS
    except Unauthorized:
        return False


def platform_router(service: str) -> APIRouter:
    router = APIRouter(prefix=f"/{service}", tags=[service])

    @router.get(
        "/health",
        response_model=Health,
        response_model_exclude_unset=True,
        responses={503: {"model": Health, "description": "`?probe=ready`: not ready."}},
        summary=f"Liveness and readiness of the {service} service",
        description=(
            "Liveness and readiness: `service`, `status`, `live`, `ready`. "
            "`?probe=ready` answers 503 when the store is not usable (NATS being down does "
            "not make a service unready: it takes commands and its relay catches up later)."
            " With the token of a coordinator or an auditor the answer also has the "
            "details: the event store (`store`) and NATS reported separately, the relay's "
            "lag and the consumers."
            "\n\nRoles: public (no token needed); the details: coordinator, auditor."
        ),
    )
    async def health(
        request: Request,
        response: Response,
        probe: Annotated[str | None, Query(pattern="^(live|ready)$")] = None,
    ) -> Health:
        details = _shows_details(request)
        runtime = runtime_of(request, service)
        report = await runtime.health()
        if probe == "ready" and not report.ready:
            response.status_code = 503
        return report if details else report.public()

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
        after: Annotated[int | None, Query(ge=0, le=MAX_POSITION)] = None,
        cursor: Annotated[str | None, Query(max_length=20)] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 100,
    ) -> EventPage:
        runtime = runtime_of(request, service)
        limit, start = page_params(limit, cursor, after)
        items = runtime.app.integration_events(start, limit)
        next_cursor = str(items[-1].notification_id) if len(items) == limit else None
        return EventPage(items=items, next_cursor=next_cursor)

    return router
