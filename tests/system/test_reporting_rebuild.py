"""``solidarity reporting rebuild`` over real NATS and HTTP, on SQLite and PostgreSQL:
the monitoring report's scenario (built through the services' APIs), then a rebuild
by the command, ending in exactly the state it had (every read table and its tracking)
and the identical monthly and year reports; and a rebuild in many pages while contacts
are logged, each counted once.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import httpx
import pytest

from services import cli
from services.reporting.report import london_month
from shared.config import Settings
from shared.web.auth import Role
from tests.support import Stack, contact_body, monthly_count, stack_settings, wait_for
from tests.system.test_monitoring_report import NOW, _report, _scenario, _settled

UPSTREAMS = ("contact", "shift", "outreach")


def _caught_up(stack: Stack) -> dict[str, int]:
    """Every source's head, once reporting has applied up to it."""
    projection = stack.runtime("reporting").projection

    def heads() -> dict[str, int] | None:
        now = {u: stack.runtime(u).app.max_notification_id() or 0 for u in UPSTREAMS}
        done = all(projection.last_applied(u) == head for u, head in now.items())
        return now if done else None

    return dict(wait_for(heads, 30, 0.2, "reporting caught up with every source"))


def _reports(c: httpx.Client, month: str) -> list[dict[str, Any]]:
    this_year = int(month[:4]) - (1 if int(month[5:]) < 4 else 0)
    return [_report(c, month=month), _report(c, month="2026-10"),
            _report(c, month="2026-04"), _report(c, "year", start=f"{this_year}-04"),
            _report(c, "year", start="2026-04"), _report(c, "year", start="2025-04")]


def test_a_rebuild_by_the_command_gives_the_identical_report(
    settings: Settings, nats_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if london_month(NOW - timedelta(hours=2)) != london_month(NOW + timedelta(hours=3)):
        pytest.skip("too near the end of a London month for a scenario of this month")
    month = london_month(NOW)
    # No clock work during the test: the state compared is the scenario's alone.
    with Stack(stack_settings(settings, nats_url=nats_url, tick_interval_s=3600)) as stack:
        with stack.client() as c:
            _scenario(c)
            _settled(c, month)
            heads = _caught_up(stack)
            projection = stack.runtime("reporting").projection
            before, reports = projection.dump(), _reports(c, month)
            assert reports[0]["contacts"]["total"] == 4 and sum(heads.values()) > 40

            code = cli.main(["reporting", "rebuild", "--url", stack.url,
                             "--token", stack.token(Role.COORDINATOR)])
            out = capsys.readouterr().out
            assert code == 0, out
            assert f"{sum(heads.values()):,}/{sum(heads.values()):,} events" in out
            assert f"{heads['contact']:,} from contact" in out

            assert _caught_up(stack) == heads
            assert projection.dump() == before
            assert _reports(c, month) == reports
            replays = {h["durable"]: h["replay"] for h in
                       c.get("/reporting/health").json()["consumers"]}
            assert replays == {f"reporting-from-{u}": {"position": head, "applied": head}
                               for u, head in heads.items()}


def test_contacts_logged_during_a_rebuild_in_pages_are_counted_once(
    settings: Settings, nats_url: str
) -> None:
    with Stack(stack_settings(settings, nats_url=nats_url, tick_interval_s=3600)) as stack:
        with stack.client() as c:
            for _ in range(30):
                assert c.post("/contact/contacts", json=contact_body()).status_code == 201
            _caught_up(stack)
            total = monthly_count(c)
            reporting = stack.runtime("reporting")
            for consumer in reporting.consumers:
                consumer.replay_page_size = 1  # a page per event: many turns of the lock
            answer: dict[str, httpx.Response] = {}
            rebuild = threading.Thread(target=lambda: answer.update(
                r=c.post("/reporting/rebuild", timeout=120)))
            logged = 0
            with stack.client() as live:  # open before the rebuild starts: under load
                rebuild.start()            # opening one took longer than the rebuild
                while logged == 0 or (rebuild.is_alive() and logged < 20):
                    r = live.post("/contact/contacts", json=contact_body())
                    assert r.status_code == 201, r.text
                    logged += 1
            rebuild.join(120)
            assert answer["r"].status_code == 200, answer["r"].text
            assert answer["r"].json()["applied"]["contact"] >= 30
            heads = _caught_up(stack)
            assert monthly_count(c) == total + logged == 30 + logged
            assert reporting.projection.last_applied("contact") == heads["contact"]
            assert not any(c.replaying for c in reporting.consumers)
