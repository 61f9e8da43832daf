"""Test support: a running stack (real uvicorn, real NATS, real stores) in a thread."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import nats
import uvicorn

from services.system import System
from shared.auth import Role, issue_token
from shared.envelope import stream_name
from shared.nats_server import free_port
from shared.settings import SERVICES, Settings

PROBLEM = "application/problem+json"


def stored_events(stack: Stack) -> int:
    """How many events the contact service has stored (to check nothing changed)."""
    return int(stack.runtime("contact").app.max_notification_id())


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05,
             what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Stack:
    """Some services of the system served over real HTTP on a free port."""

    def __init__(self, settings: Settings, services: Sequence[str] = SERVICES,
                 relay_hooks: dict[str, dict[str, Any]] | None = None) -> None:
        self.settings = settings
        self.services = list(services)
        self.relay_hooks = relay_hooks
        self.system: System | None = None
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    def start(self) -> Stack:
        self.system = System(self.settings, self.services, relay_hooks=self.relay_hooks)
        config = uvicorn.Config(
            self.system.http_app(),
            host="127.0.0.1",
            port=self.settings.port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server is not None and self.server.started, 30, what="uvicorn")
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(30)
            assert not self.thread.is_alive(), "the stack did not stop"
        self.server = None
        self.thread = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def token(self, role: Role | str, sub: str | None = None) -> str:
        return issue_token(self.settings.effective_jwt_secret, sub=sub or str(uuid.uuid4()),
                           role=role, name="Test")

    def client(self, role: Role | str | None = Role.COORDINATOR, sub: str | None = None
               ) -> httpx.Client:
        headers = {}
        if role is not None:
            headers["Authorization"] = f"Bearer {self.token(role, sub)}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def runtime(self, service: str) -> Any:
        assert self.system is not None
        return self.system.runtimes[service]


def stack_settings(base: Settings, *, nats_url: str, port: int | None = None,
                   **overrides: Any) -> Settings:
    values = base.model_dump()
    values.update(nats_url=nats_url, port=port or free_port(), relay_poll_interval_s=0.2)
    values.update(overrides)
    return Settings(**values)


def contact_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "phone",
        "started_at": "2026-11-28T22:00:00+00:00",
        "ended_at": "2026-11-28T22:20:00+00:00",
        "issues": ["social_isolation"],
    }
    body.update(overrides)
    return body


def monthly_count(client: httpx.Client, month: str = "2026-11") -> int:
    resp = client.get("/reporting/monthly", params={"month": month})
    assert resp.status_code == 200, resp.text
    return int(resp.json()["contacts"])


async def stream_messages(url: str, service: str) -> list[bytes]:
    """Every message in a service's JetStream stream, as the bytes NATS holds."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream_name(service))
        out: list[bytes] = []
        if not info.state.messages:
            return out
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(stream_name(service), seq)
            assert msg.data is not None
            out.append(msg.data)
        return out
    finally:
        await nc.close()
