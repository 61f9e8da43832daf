"""The coordinator's dashboard over real NATS and HTTP, on SQLite and PostgreSQL: it is
current within a second of the shift service's events that change it (the lag is
measured from the command's answer to the dashboard showing it), and its Server-Sent
Events stream sends the document as a shift fills, and heartbeats, without the client
polling.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.config import Settings
from shared.web.auth import Role
from tests.support import Stack, stack_settings, wait_for
from tests.system.test_shift_flow import _assign, _extra_shift, _supporters

Doc = dict[str, Any]


def _dashboard(c: httpx.Client) -> Doc:
    r = c.get("/reporting/dashboard")
    assert r.status_code == 200, r.text
    return dict(r.json())


def _on_call(doc: Doc, shift_id: str) -> Doc | None:
    return next((s for s in doc["on_call"] if s["shift_id"] == shift_id), None)


def _crew(doc: Doc, shift_id: str) -> list[str]:
    shift = _on_call(doc, shift_id)
    return [p["supporter_id"] for p in shift["supporters"]] if shift else []


def _lag(c: httpx.Client, shows: Callable[[Doc], bool]) -> float:
    """Seconds from now (a command just answered) until the dashboard shows it."""
    start = time.monotonic()
    while not shows(_dashboard(c)):
        assert time.monotonic() - start < 10, "the dashboard never showed it"
        time.sleep(0.02)
    return time.monotonic() - start


def test_the_dashboard_is_current_within_a_second(stack: Stack) -> None:
    now = datetime.now(UTC)
    with stack.client() as c:
        a, b = _supporters(c, 2)
        shift = _extra_shift(c, now - timedelta(hours=1), now + timedelta(hours=2))
        wait_for(lambda: _on_call(_dashboard(c), shift), 30, 0.1, "the shift published")
        lags = []
        for supporter in (a, b):
            _assign(c, shift, supporter)
            lags.append(_lag(c, lambda d: supporter in _crew(d, shift)))
        with stack.client(Role.SUPPORTER, sub=a) as own:
            r = own.post(f"/shift/shifts/{shift}/check-in")
            assert r.status_code == 200, r.text
        lags.append(_lag(c, lambda d: (_on_call(d, shift) or {}).get("checked_in") == 1))
        doc = _dashboard(c)
    print(f"dashboard lag after each event: {[round(x * 1000) for x in lags]} ms")
    assert max(lags) < 1.0, lags
    shift_now = _on_call(doc, shift)
    assert shift_now is not None and not shift_now["all_checked_in"]
    assert doc["short_shifts"]["count"] == 0 and next(iter(doc)) == "safety_alerts"


class Reader:
    """Reads the stream on a thread: each `dashboard` event's document, each comment."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.docs: list[Doc] = []
        self.comments: list[str] = []
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with self.stack.client() as c, c.stream(
                    "GET", "/reporting/dashboard/stream",
                    headers={"Accept": "text/event-stream"}) as r:
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/event-stream")
                event, data = None, []
                for line in r.iter_lines():
                    if line.startswith(":"):
                        self.comments.append(line)
                    elif line.startswith("event:"):
                        event = line.removeprefix("event:").strip()
                    elif line.startswith("data:"):
                        data.append(line.removeprefix("data:").strip())
                    elif not line:
                        if event == "dashboard":
                            self.docs.append(json.loads("\n".join(data)))
                        event, data = None, []
                    if self.stop.is_set():
                        return
        except BaseException as e:
            self.errors.append(e)


def _assigned(doc: Doc, shift_id: str) -> int | None:
    """How many the shift has while it is short; None once it is not."""
    return next((s["assigned"] for s in doc["short_shifts"]["items"]
                 if s["shift_id"] == shift_id), None)


def test_the_stream_sends_the_dashboard_as_a_shift_fills(settings: Settings,
                                                         nats_url: str) -> None:
    # Pushed on change, well before the heartbeat would read it again.
    s = stack_settings(settings, nats_url=nats_url, dashboard_heartbeat_s=2.0)
    starts = datetime.now(UTC) + timedelta(days=2)
    with Stack(s) as stack, stack.client() as c:
        a, b = _supporters(c, 2)
        shift = _extra_shift(c, starts, starts + timedelta(hours=6))
        wait_for(lambda: _assigned(_dashboard(c), shift) == 0, 30, 0.1, "the shift published")
        reader = Reader(stack)
        reader.thread.start()
        wait_for(lambda: reader.docs or reader.errors, 10, what="the first document")
        lags = []
        for supporter, then in ((a, 1), (b, None)):
            _assign(c, shift, supporter)
            start = time.monotonic()
            wait_for(lambda: reader.errors or _assigned(reader.docs[-1], shift) == then, 10,
                     0.01, "the assignment streamed")
            lags.append(time.monotonic() - start)
        heartbeats = len(reader.comments)
        wait_for(lambda: reader.errors or len(reader.comments) > heartbeats, 10,
                 what="a heartbeat")
        reader.stop.set()
        reader.thread.join(10)
        projection = stack.runtime("reporting").projection
        wait_for(lambda: not projection.listeners, 5, what="the closed stream to stop listening")
        once = c.get("/reporting/dashboard/stream")  # Accept */*: one event, then the end
    assert not reader.errors, reader.errors
    assert max(lags) < 1.0, lags
    assert not reader.thread.is_alive()
    seen = [_assigned(d, shift) for d in reader.docs]
    assert seen[0] == 0 and seen[-1] is None
    assert [n for i, n in enumerate(seen) if i == 0 or n != seen[i - 1]] == [0, 1, None]
    assert all(line == ": heartbeat" for line in reader.comments)
    assert once.status_code == 200 and once.headers["content-type"].startswith(
        "text/event-stream")
    assert once.text.count("event: dashboard") == 1
