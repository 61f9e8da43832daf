"""The first cross-service reaction, end to end over real NATS and HTTP, on SQLite and
PostgreSQL: a contact logged as distressing through the contact API opens a debrief in
the shift service for each supporter named; the same message delivered again changes
nothing, and one the bus never carried is backfilled from the contact service's log.

The supporters are registered through the shift API first: the contact service takes
only supporter ids the shift service has published.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import nats

from shared.config import Settings
from shared.messaging.envelope import IntegrationEvent
from shared.web.auth import Role
from tests.support import Stack, contact_body, stack_settings, wait_for

TRAINING = ("induction", "mental_health_first_aid", "safeguarding_adults")


def _supporters(c: httpx.Client, n: int) -> list[str]:
    ids = []
    for i in range(n):
        r = c.post("/shift/supporters", json={"name": f"Supporter {i}",
                                              "start_date": "2026-01-05"})
        assert r.status_code == 201, r.text
        for course in TRAINING:
            assert c.post(f"/shift/supporters/{r.json()['id']}/training",
                          json={"course": course, "completed_on": "2026-01-10"}
                          ).status_code == 200
        ids.append(r.json()["id"])
    return ids


def _log_distressing(c: httpx.Client, supporter_ids: list[str]) -> str:
    """Logged once the contact service has the supporters from the shift stream."""
    started = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    body = contact_body(started_at=started, ended_at=None, supporter_ids=supporter_ids,
                        distressing=True)
    made: list[Any] = []

    def logged() -> bool:
        r = c.post("/contact/contacts", json=body)
        if r.status_code == 201:
            made.append(r.json())
        return r.status_code == 201

    wait_for(logged, 30, 0.2, "the contact service to know the supporters")
    return str(made[0]["id"])


def _open_debriefs(c: httpx.Client) -> list[dict[str, Any]]:
    r = c.get("/shift/debriefs", params={"status": "open"})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def _debrief_consumer(stack: Stack) -> Any:
    return next(c for c in stack.runtime("shift").consumers if c.upstream == "contact")


def _opened(stack: Stack) -> int:
    events = stack.runtime("shift").app.integration_events(0, 5000)
    return sum(1 for e in events if e.type == "DebriefOpened")


def test_a_distressing_contact_opens_a_debrief_for_each_supporter_once(
        settings: Settings, nats_url: str) -> None:
    with Stack(stack_settings(settings, nats_url=nats_url)) as stack, stack.client() as c:
        a, b = _supporters(c, 2)
        contact_id = _log_distressing(c, [a, b])
        items = wait_for(lambda: len(_open_debriefs(c)) == 2 and _open_debriefs(c), 20, 0.1,
                         "two debriefs")
        assert {(i["supporter_id"], i["contact_id"]) for i in items} == {
            (a, contact_id), (b, contact_id)}
        requested = next(e for e in stack.runtime("contact").app.integration_events(0, 100)
                         if e.type == "DebriefRequested")
        consumer = _debrief_consumer(stack)
        before = consumer.duplicate_count

        async def redeliver(event: IntegrationEvent) -> None:
            nc = await nats.connect(nats_url)
            js = nc.jetstream()
            for i in range(2):  # new message ids: JetStream will not de-duplicate them
                await js.publish(event.subject, event.to_bytes(),
                                 headers={"Nats-Msg-Id": f"again-{i}-{event.msg_id}"})
            await nc.close()

        asyncio.run(redeliver(requested))
        wait_for(lambda: consumer.duplicate_count >= before + 2, 20,
                 what="the duplicates to be seen")
        assert len(_open_debriefs(c)) == 2 and _opened(stack) == 2
        opened = [e for e in stack.runtime("shift").app.integration_events(0, 5000)
                  if e.type == "DebriefOpened"]
        assert {e.actor for e in opened} == {"service:shift"}
        assert {e.causation_id for e in opened} == {str(requested.id)}
        assert {e.correlation_id for e in opened} == {requested.correlation_id}


def test_a_debrief_request_the_bus_never_carried_is_backfilled(
        settings: Settings, nats_url: str) -> None:
    s = stack_settings(settings, nats_url=nats_url, consumer_reconcile_interval_s=0.5)
    hooks = {"contact": {"drop": lambda ev: ev.type == "DebriefRequested"}}
    with Stack(s, relay_hooks=hooks) as stack, stack.client() as c:
        consumer = _debrief_consumer(stack)
        wait_for(lambda: consumer.subscribed, what="the consumer to subscribe")
        (a,) = _supporters(c, 1)
        _log_distressing(c, [a])
        items = wait_for(lambda: _open_debriefs(c), 20, 0.1, "the missed request backfilled")
        assert [i["supporter_id"] for i in items] == [a]
        assert consumer.backfilled_count >= 1 and _opened(stack) == 1


def _extra_shift(c: httpx.Client, starts: datetime, ends: datetime) -> str:
    r = c.post("/shift/shifts", json={"starts_at": starts.isoformat(),
                                      "ends_at": ends.isoformat(), "required": 2})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _assign(c: httpx.Client, shift_id: str, supporter_id: str) -> None:
    r = c.post(f"/shift/shifts/{shift_id}/assignments", json={"supporter_id": supporter_id})
    assert r.status_code in (200, 201), r.text


def test_on_shift_comes_from_the_rota_over_the_bus(settings: Settings, nats_url: str) -> None:
    """A supporter assigned to a shift that is on reads a returning caller's history
    before logging any contact; one whose shift ended longer ago than the setting gets
    403; and logging a contact that names a supporter does not put them on shift."""
    now = datetime.now(UTC)
    with Stack(stack_settings(settings, nats_url=nats_url)) as stack, stack.client() as c:
        on, ended, named = _supporters(c, 3)
        _assign(c, _extra_shift(c, now - timedelta(hours=1), now + timedelta(hours=2)), on)
        _assign(c, _extra_shift(c, now - timedelta(hours=6), now - timedelta(hours=2)), ended)
        r = c.post("/contact/callers", json={"alias": "Sunny", "consent_to_keep_history": True})
        assert r.status_code == 201, r.text
        history = f"/contact/callers/{r.json()['caller_ref']}/history"

        def reads(sub: str) -> int:
            with stack.client(Role.SUPPORTER, sub=sub) as s:
                return s.get(history, params={"purpose": "rang again"}).status_code

        # The assignment reaches the contact service over the bus, then the read is allowed.
        wait_for(lambda: reads(on) == 200, 30, 0.2, "the rota to reach the contact service")
        assert reads(ended) == 403
        _log_distressing(c, [named])  # names them on a contact: not a way onto the rota
        assert reads(named) == 403
