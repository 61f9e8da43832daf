"""Work due by the clock: the composition root calls each service's ``tick`` now and
then, as the service itself, and a failing tick never stops the next one."""

from __future__ import annotations

import asyncio
from datetime import datetime

from services.system import System
from shared.config import Settings
from shared.kernel import current_actor
from tests.support import wait_for


def test_every_service_ticks_as_itself_and_a_failure_does_not_stop_it(
        settings: Settings, nats_url: str) -> None:
    s = settings.model_copy(update={"nats_url": nats_url, "tick_interval_s": 0.05})
    system = System(s, ["shift"])
    seen: list[tuple[str, datetime]] = []

    def tick(now: datetime) -> None:
        seen.append((current_actor(), now))
        if len(seen) == 1:
            raise RuntimeError("the first tick fails")

    system.runtimes["shift"].app.tick = tick  # type: ignore[method-assign]

    async def run() -> None:
        await system.start()
        try:
            await asyncio.to_thread(wait_for, lambda: len(seen) >= 3, 10, 0.02, "three ticks")
        finally:
            await system.stop()

    asyncio.run(run())
    assert {actor for actor, _ in seen} == {"service:shift"}
    assert all(now.tzinfo is not None for _, now in seen)
