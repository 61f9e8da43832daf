"""The system in this process: real uvicorn in a thread, real NATS, real stores."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import uvicorn

from services.cli import uvicorn_config
from services.registry import SERVICES
from services.system import ServiceRuntime, System
from shared.config import Settings
from shared.messaging.nats_server import free_port
from shared.web.auth import Role, issue_token
from tests.support.helpers import wait_for


def stored_events(stack: Stack) -> int:
    """How many events the contact service has stored (to check nothing changed)."""
    return int(stack.runtime("contact").app.max_notification_id())


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
        # Served as the `solidarity` command serves it (no server header, no uvicorn log).
        config = uvicorn_config(self.system.http_app(),
                                self.settings.model_copy(update={"host": "127.0.0.1"}))
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

    def runtime(self, service: str) -> ServiceRuntime:
        assert self.system is not None
        return self.system.runtimes[service]


def stack_settings(base: Settings, *, nats_url: str, port: int | None = None,
                   **overrides: Any) -> Settings:
    values = base.model_dump()
    values.update(nats_url=nats_url, port=port or free_port(), relay_poll_interval_s=0.2)
    values.update(overrides)
    return Settings(**values)
