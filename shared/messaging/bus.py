"""The bus: NATS JetStream as transport (never the system of record).

``Bus`` is one NATS connection per process, made in the background with endless
retries, so a service starts and takes commands while NATS is down; it creates or
updates every stream with the same limits (replicas, duplicate window, max age).
The relay (``relay.py``) publishes through it; consumers (``consumer.py``) read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import (
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import NotFoundError

from shared.logging import get_logger
from shared.messaging.envelope import stream_name, stream_subjects

log = get_logger("bus")


class Bus:
    """A NATS connection that is made in the background and re-made when lost."""

    def __init__(self, servers: str | Sequence[str], name: str = "solidarity", *,
                 replicas: int = 1, duplicate_window_s: float = 120.0,
                 max_age_s: float = 30 * 86400) -> None:
        if isinstance(servers, str):
            servers = [s.strip() for s in servers.split(",") if s.strip()]
        self.servers = list(servers)
        self.name = name
        # Every stream this process creates or updates gets the same configuration.
        self.replicas = replicas
        self.duplicate_window_s = duplicate_window_s
        self.max_age_s = max_age_s
        self.nc: NATS | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._streams_ready: set[str] = set()
        self._stream_lock = asyncio.Lock()
        self._js: JetStreamContext | None = None
        self._js_conn: NATS | None = None
        self._closing = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name=f"bus-connect-{self.name}")

    async def _connect(self) -> None:
        async def on_error(e: Exception) -> None:
            log.debug("nats_error", error_type=type(e).__name__)

        async def on_disconnected() -> None:
            self._connected.clear()
            if not self._closing:
                log.warning("nats_disconnected")

        async def on_reconnected() -> None:
            self._connected.set()
            log.info("nats_reconnected")

        nc = NATS()
        self.nc = nc
        await nc.connect(
            servers=self.servers,
            name=self.name,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,  # type: ignore[arg-type]
            connect_timeout=2,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
        )
        self._connected.set()
        log.info("nats_connected")

    @property
    def is_connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def wait_connected(self) -> None:
        await self._connected.wait()

    def jetstream(self) -> JetStreamContext:
        """One JetStream context per connection: each context subscribes a reply inbox
        for publish_async, so making one per call would leak a subscription each time."""
        assert self.nc is not None
        if self._js is None or self._js_conn is not self.nc:
            self._js = self.nc.jetstream(timeout=5)
            self._js_conn = self.nc
        return self._js

    async def ensure_stream(self, service: str) -> None:
        """Create or update the service's stream: file storage, limits retention."""
        name = stream_name(service)
        async with self._stream_lock:
            if name in self._streams_ready:
                return
            await self._put_stream(name, service)
            self._streams_ready.add(name)

    async def _put_stream(self, name: str, service: str) -> None:
        config = StreamConfig(
            name=name,
            subjects=stream_subjects(service),
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=self.replicas,
            duplicate_window=self.duplicate_window_s,
            max_age=self.max_age_s,
        )
        jsm = self.jetstream()
        try:
            await jsm.stream_info(name)
        except NotFoundError:
            await jsm.add_stream(config)
            log.info("stream_created", stream=name)
        else:
            await jsm.update_stream(config)

    def forget_stream(self, service: str) -> None:
        """Check the stream again next time (it may have been deleted meanwhile)."""
        self._streams_ready.discard(stream_name(service))

    async def close(self) -> None:
        self._closing = True
        if self._task and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.close(), 5)


