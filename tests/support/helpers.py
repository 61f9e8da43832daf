"""Small helpers the tests share: polling, request bodies, reading the report and
the JetStream streams."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import nats

from shared.messaging.envelope import stream_name

PROBLEM = "application/problem+json"


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
    return int(resp.json()["contacts"]["total"])


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
