"""The bus: NATS JetStream as transport (never the system of record).

- ``Bus``: one NATS connection per process, made in the background with endless
  retries, so a service starts and takes commands while NATS is down.
- ``Relay``: the outbox of one service. It reads the service's notification log
  from the last published position, publishes each event with
  ``Nats-Msg-Id: <service>:<notification_id>``, awaits the pipelined acks and only
  then records the new position. A crash anywhere means at-least-once, never loss.
- ``Consumer``: a durable pull consumer of another service's stream. It applies each
  event through a ``Projection`` that records (upstream, notification id) in the same
  transaction as its effect; it detects a missed event by ``previous_notification_id``
  and backfills from the source's ``GET /<service>/events``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import httpx
import sqlalchemy as sa
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
from sqlalchemy.engine import Engine

from shared.application import ServiceApplication
from shared.envelope import IntegrationEvent, stream_name, stream_subjects
from shared.logging import get_logger
from shared.store import relay_position

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


# --------------------------------------------------------------------------- relay


class PositionStore:
    """The relay's last published position, in the service's own database."""

    def __init__(self, engine: Engine, stream: str) -> None:
        self.engine = engine
        self.stream = stream

    def get(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(relay_position.c.notification_id).where(
                    relay_position.c.stream == self.stream
                )
            ).scalar()
        return int(value or 0)

    def set(self, notification_id: int) -> None:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            updated = conn.execute(
                sa.update(relay_position)
                .where(relay_position.c.stream == self.stream)
                .values(notification_id=notification_id, updated_at=now)
            ).rowcount
            if not updated:
                conn.execute(
                    sa.insert(relay_position).values(
                        stream=self.stream, notification_id=notification_id, updated_at=now
                    )
                )


class Relay:
    """Publishes one service's notification log to its JetStream stream."""

    def __init__(
        self,
        app: ServiceApplication,
        bus: Bus,
        positions: PositionStore,
        *,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        ack_timeout_s: float = 5.0,
        after_publish: Callable[[list[IntegrationEvent]], Awaitable[None]] | None = None,
        drop: Callable[[IntegrationEvent], bool] | None = None,
    ) -> None:
        self.app = app
        self.service = app.service
        self.bus = bus
        self.positions = positions
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.ack_timeout_s = ack_timeout_s
        # Fault injection for tests: runs after the acks and before the position is
        # recorded; and a filter of events never to send (a message lost in transit).
        self.after_publish = after_publish
        self.drop = drop
        self.position = 0
        self.published_count = 0
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def wake(self, _recordings: object = None) -> None:
        """Thread-safe: called after a local save."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake.set)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.app.add_save_listener(self.wake)
        self._task = asyncio.create_task(self.run(), name=f"relay-{self.service}")

    async def stop(self) -> None:
        self.app.remove_save_listener(self.wake)
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def lag(self) -> int:
        head = await asyncio.to_thread(self.app.max_notification_id)
        return max(0, head - self.position)

    async def run(self) -> None:
        self.position = await asyncio.to_thread(self.positions.get)
        backoff = 0.2
        while True:
            try:
                await self.bus.wait_connected()
                await self.bus.ensure_stream(self.service)
                while True:
                    # Clear before reading: a save made while this batch is published sets
                    # it again, and is then picked up at once rather than at the next poll.
                    self._wake.clear()
                    sent = await self.publish_pending()
                    backoff = 0.2
                    self.last_error = None
                    if sent < self.batch_size:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # NATS down, ack timeout, store busy: retry, never skip
                self.last_error = type(e).__name__
                self.bus.forget_stream(self.service)
                log.warning("relay_retry", service=self.service, error_type=type(e).__name__,
                            position=self.position)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def publish_pending(self) -> int:
        """Publish one batch after the recorded position; return how many were read."""
        batch = await asyncio.to_thread(self._read_batch)
        if not batch:
            return 0
        js = self.bus.jetstream()
        futures = []
        for ev in batch:
            if self.drop is not None and self.drop(ev):
                continue
            futures.append(
                await js.publish_async(
                    ev.subject,
                    ev.to_bytes(),
                    headers={"Nats-Msg-Id": ev.msg_id},
                    stream=stream_name(self.service),
                )
            )
        if futures:
            await asyncio.wait_for(asyncio.gather(*futures), self.ack_timeout_s)
        if self.after_publish is not None:
            await self.after_publish(batch)
        new_position = batch[-1].notification_id
        await asyncio.to_thread(self.positions.set, new_position)
        self.position = new_position
        self.published_count += len(futures)
        return len(batch)

    def _read_batch(self) -> list[IntegrationEvent]:
        notifications = self.app.select_notifications(self.position, self.batch_size)
        previous = self.position
        out = []
        for n in notifications:
            out.append(self.app.to_integration_event(n, previous))
            previous = n.id
        return out


# ------------------------------------------------------------------------ consumer


class Projection(Protocol):
    """Where a consumer applies events: exactly-once effect through tracking."""

    name: str

    def last_applied(self, upstream: str) -> int:
        """The highest notification id of ``upstream`` applied so far (0 if none)."""
        ...

    def apply(self, event: IntegrationEvent) -> bool:
        """Apply the event and record its tracking in one transaction.
        Return False (and change nothing) if it was applied before."""
        ...

    def apply_many(self, events: list[IntegrationEvent]) -> list[IntegrationEvent]:
        """Apply several, each with its tracking; return those applied (not seen before)."""
        ...


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
        async with httpx.AsyncClient(transport=self.transport, timeout=10) as client:
            resp = await client.get(
                url,
                params={"after": after, "limit": limit},
                headers={"Authorization": f"Bearer {self.token()}"},
            )
            resp.raise_for_status()
            return [IntegrationEvent.model_validate(i) for i in resp.json()["items"]]


class Consumer:
    """A durable pull consumer of one upstream stream, feeding one projection."""

    def __init__(
        self,
        projection: Projection,
        upstream: str,
        bus: Bus,
        source: EventSource,
        *,
        batch_size: int = 200,
        on_applied: Callable[[IntegrationEvent], None] | None = None,
        reconcile_interval_s: float = 30.0,
    ) -> None:
        self.projection = projection
        self.upstream = upstream
        self.bus = bus
        self.source = source
        self.batch_size = batch_size
        self.durable = f"{projection.name}-from-{upstream}"
        self.on_applied = on_applied
        # The chain reveals a missed event only when the next one arrives; when the bus
        # is quiet, look at the source log now and then so a lost last event is not
        # left out until the next shift's first call.
        self.reconcile_interval_s = reconcile_interval_s
        self.applied_count = 0
        self.duplicate_count = 0
        self.backfilled_count = 0
        self.last_error: str | None = None
        self.subscribed = False
        self.lags_ms: deque[float] = deque(maxlen=2000)
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one event at a time; rebuilds take it too

    @property
    def lock(self) -> asyncio.Lock:
        return self._lock

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"consumer-{self.durable}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                await self.bus.wait_connected()
                await self.bus.ensure_stream(self.upstream)
                js = self.bus.jetstream()
                sub = await js.pull_subscribe(
                    f"solidarity.{self.upstream}.>",
                    durable=self.durable,
                    stream=stream_name(self.upstream),
                    config=ConsumerConfig(
                        ack_policy=AckPolicy.EXPLICIT,
                        deliver_policy=DeliverPolicy.ALL,
                        ack_wait=30,
                        max_ack_pending=10_000,
                    ),
                )
                # Events published before this consumer existed, or lost, are in the log.
                await self.catch_up()
                self.subscribed = True
                self.last_error = None
                reconciled = time.monotonic()
                while True:
                    try:
                        msgs = await sub.fetch(self.batch_size, timeout=1)
                    except TimeoutError:
                        if time.monotonic() - reconciled >= self.reconcile_interval_s:
                            await self.catch_up()
                            reconciled = time.monotonic()
                        continue
                    await self.handle_batch([IntegrationEvent.from_bytes(m.data) for m in msgs])
                    for msg in msgs:
                        await msg.ack()
                    backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.subscribed = False
                self.last_error = type(e).__name__
                self.bus.forget_stream(self.upstream)
                log.warning("consumer_retry", consumer=self.durable, error_type=type(e).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def handle(self, event: IntegrationEvent) -> None:
        await self.handle_batch([event])

    async def handle_batch(self, events: list[IntegrationEvent]) -> None:
        """Apply a fetched batch: duplicates skipped, the unbroken chain applied in one
        transaction, and a gap (an event whose predecessor never came) backfilled from
        the source log before going on."""
        async with self._lock:
            last = await asyncio.to_thread(self.projection.last_applied, self.upstream)
            chain: list[IntegrationEvent] = []
            for event in sorted(events, key=lambda e: e.notification_id):
                head = chain[-1].notification_id if chain else last
                if event.notification_id <= head:
                    self.duplicate_count += 1
                    continue
                if event.previous_notification_id > head:
                    log.warning("consumer_gap", consumer=self.durable, last_applied=head,
                                previous=event.previous_notification_id,
                                received=event.notification_id)
                    await self._apply_chain(chain)
                    chain = []
                    await self._backfill(head, until=event.notification_id)
                    last = await asyncio.to_thread(self.projection.last_applied, self.upstream)
                    continue
                chain.append(event)
            await self._apply_chain(chain)

    async def _apply_chain(self, chain: list[IntegrationEvent]) -> None:
        if not chain:
            return
        applied = await asyncio.to_thread(self.projection.apply_many, chain)
        if len(applied) != len(chain):
            self.duplicate_count += len(chain) - len(applied)
        self._applied(applied)

    def _applied(self, events: list[IntegrationEvent]) -> None:
        now = time.time()
        for event in events:
            self.applied_count += 1
            self.lags_ms.append(max(0.0, (now - event.occurred_at.timestamp()) * 1000.0))
            if self.on_applied is not None:
                self.on_applied(event)

    async def catch_up(self) -> None:
        """Apply whatever the source log holds beyond what was applied."""
        async with self._lock:
            last = await asyncio.to_thread(self.projection.last_applied, self.upstream)
            await self._backfill(last, until=None)

    async def _backfill(self, after: int, until: int | None) -> None:
        while True:
            page = await self.source.fetch(self.upstream, after, self.batch_size)
            for ev in page:
                if until is not None and ev.notification_id > until:
                    return
                if await self._apply(ev):
                    self.backfilled_count += 1
                after = ev.notification_id
            if len(page) < self.batch_size or (until is not None and after >= until):
                return

    async def _apply(self, event: IntegrationEvent) -> bool:
        applied = await asyncio.to_thread(self.projection.apply, event)
        if applied:
            self._applied([event])
        else:
            self.duplicate_count += 1
        return applied

    def lag_percentiles(self) -> dict[str, float | None]:
        data = sorted(self.lags_ms)
        if not data:
            return {"p50_ms": None, "p99_ms": None}

        def pct(p: float) -> float:
            return round(data[min(len(data) - 1, int(p * len(data)))], 1)

        return {"p50_ms": pct(0.50), "p99_ms": pct(0.99)}


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
