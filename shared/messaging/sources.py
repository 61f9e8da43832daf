"""A service's notification log as integration events, wherever it lives: in this
process (``LocalEventSource``) or behind its ``GET /<service>/events`` (``HttpEventSource``).
Consumers backfill from here when the chain of notification ids shows a gap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

import httpx

from shared.eventstore.application import ServiceApplication
from shared.messaging.envelope import IntegrationEvent


class EventSource(Protocol):
    """A service's notification log as integration events (its /events endpoint)."""

    async def fetch(self, service: str, after: int, limit: int) -> list[IntegrationEvent]: ...


class HttpEventSource:
    """Reads ``GET <base>/<service>/events?after=&limit=`` with a service token."""

    def __init__(self, base_url_for: Callable[[str], str], token: Callable[[], str],
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url_for = base_url_for
        self.token = token
        self.transport = transport

    async def fetch(self, service: str, after: int, limit: int) -> list[IntegrationEvent]:
        url = f"{self.base_url_for(service)}/{service}/events"
        # A source that does not answer fails soon: a consumer holds back only the events
        # after a gap meanwhile, and tries again.
        timeout = httpx.Timeout(10.0, connect=3.0)
        async with httpx.AsyncClient(transport=self.transport, timeout=timeout) as client:
            resp = await client.get(
                url,
                params={"after": after, "limit": limit},
                headers={"Authorization": f"Bearer {self.token()}"},
            )
            resp.raise_for_status()
            return [IntegrationEvent.model_validate(i) for i in resp.json()["items"]]



class LocalEventSource:
    """The log of a service in this same process, read without HTTP."""

    def __init__(self, apps: dict[str, ServiceApplication]) -> None:
        self.apps = apps

    async def fetch(self, service: str, after: int, limit: int) -> list[IntegrationEvent]:
        return await asyncio.to_thread(self.apps[service].integration_events, after, limit)


class FallbackEventSource:
    """In-process where the upstream lives here, else over HTTP."""

    def __init__(self, local: LocalEventSource, remote: EventSource) -> None:
        self.local = local
        self.remote = remote

    async def fetch(self, service: str, after: int, limit: int) -> list[IntegrationEvent]:
        if service in self.local.apps:
            return await self.local.fetch(service, after, limit)
        return await self.remote.fetch(service, after, limit)
