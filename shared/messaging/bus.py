"""The bus: NATS JetStream as transport (never the system of record).

``Bus`` is one NATS connection per process, made in the background with endless
retries, so a service starts and takes commands while NATS is down; it creates or
updates every stream with the same limits (replicas, duplicate window, max age).
The relay (``relay.py``) publishes through it; consumers (``consumer.py``) read.

The audit stream (``SOLIDARITY_AUDIT``, subjects ``solidarity.audit.>``) carries the
services' signed checkpoints of their audit chains (``shared.audit``), as
``Checkpoint.to_dict()`` JSON on ``solidarity.audit.checkpoints.<service>``
(``publish_checkpoint``); ``CheckpointFeed`` is the durable consumer of whoever keeps
them (the reporting service).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
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

    async def publish_checkpoint(self, checkpoint: dict[str, Any],
                                 timeout_s: float = 5.0) -> None:
        """Publish a signed checkpoint (``Checkpoint.to_dict()``) on the audit stream. The
        message id names the service, position, key and head: the same checkpoint sent
        again is dropped by JetStream, a different head at a position already signed (a
        rewound store) is not."""
        await self.ensure_stream(AUDIT)
        msg_id = ":".join((checkpoint["service"], str(checkpoint["notification_id"]),
                           checkpoint["key_id"], checkpoint["head"][:16]))
        await self.jetstream().publish(
            checkpoint_subject(checkpoint["service"]),
            json.dumps(checkpoint, sort_keys=True).encode(),
            headers={"Nats-Msg-Id": msg_id}, stream=stream_name(AUDIT), timeout=timeout_s)


AUDIT = "audit"  # the stream of checkpoints: SOLIDARITY_AUDIT, subjects solidarity.audit.>


def checkpoint_subject(service: str) -> str:
    return f"solidarity.{AUDIT}.checkpoints.{service}"


class CheckpointFeed:
    """A durable pull consumer of the audit stream: each message's bytes go to ``keep``
    (on a thread), and the message is acked once it returns. ``keep`` deals with a
    checkpoint it refuses (it returns); an exception (its database is down) hands the
    message back to JetStream for later."""

    def __init__(self, bus: Bus, durable: str, keep: Callable[[bytes], object], *,
                 batch_size: int = 100, retry_s: float = 2.0) -> None:
        self.bus = bus
        self.durable = durable
        self.keep = keep
        self.batch_size = batch_size
        self.retry_s = retry_s
        self.subscribed = False
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"checkpoints-{self.durable}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                await self.bus.wait_connected()
                await self.bus.ensure_stream(AUDIT)
                sub = await self.bus.jetstream().pull_subscribe(
                    checkpoint_subject("*"), durable=self.durable, stream=stream_name(AUDIT),
                    config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT,
                                          deliver_policy=DeliverPolicy.ALL, ack_wait=30))
                self.subscribed, self.last_error = True, None
                while True:
                    try:
                        msgs = await sub.fetch(self.batch_size, timeout=1)
                    except TimeoutError:
                        continue
                    for msg in msgs:
                        try:
                            await asyncio.to_thread(self.keep, msg.data)
                        except Exception as e:
                            self.last_error = type(e).__name__
                            log.warning("checkpoint_keep_failed", consumer=self.durable,
                                        error_type=type(e).__name__)
                            await msg.nak(delay=self.retry_s)
                        else:
                            await msg.ack()
                    backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.subscribed, self.last_error = False, type(e).__name__
                self.bus.forget_stream(AUDIT)
                log.warning("checkpoint_feed_retry", consumer=self.durable,
                            error_type=type(e).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
