"""The outreach service end to end over real NATS and HTTP, on SQLite and PostgreSQL:
a home visit from its request to its outcome, with two supporters registered in the
shift service (the outreach service learns of them from the shift stream, not by
calling it); the 409 of an illegal transition; and the safety check: a check-in whose
deadline passes without both check-outs raises ``SafetyCheckOverdue`` from the
service's own clock, once, even across a restart between the check-in and the
deadline, and the alert stays in ``GET /outreach/alerts`` until it is resolved.

The clock is not waited for: the restarted service's tick is handed a time past the
deadline (as ``tests/system/test_ticks.py`` replaces a tick), the rest is real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.outreach import roster
from shared.config import Settings
from shared.web.auth import Role
from tests.support import PROBLEM, Stack, stack_settings, stream_messages, wait_for

TRAINING = ("induction", "mental_health_first_aid", "safeguarding_adults")
ADDRESS = "Flat 3, 14 Chapel Street, Leeds"
CALLER = "C-0000ABCD"


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


def _request(c: httpx.Client, **overrides: Any) -> dict[str, Any]:
    body = {"caller_ref": CALLER, "kind": "home", "address": ADDRESS,
            "proposed_at": (datetime.now(UTC) + timedelta(minutes=10)).isoformat(),
            "expected_minutes": 60, "reason": "asked for a visit after discharge",
            **overrides}
    r = c.post("/outreach/meetings", json=body)
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == f"/outreach/meetings/{r.json()['id']}"
    return dict(r.json())


def _ok(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    return dict(r.json())


def _approved_and_scheduled(c: httpx.Client, attendees: list[str]) -> str:
    """A home visit requested, assessed and approved by the coordinator, with these
    attendees (named once the outreach service has them from the shift stream)."""
    mid = _request(c)["id"]
    _ok(c.post(f"/outreach/meetings/{mid}/risk-assessments",
               json={"level": "medium", "factors": ["others_in_home", "animals"],
                     "mitigations": "the brother is told; the dog shut away"}))
    _ok(c.post(f"/outreach/meetings/{mid}/approve", json={"conditions": "phones on"}))
    named: list[httpx.Response] = []

    def scheduled() -> bool:
        r = c.post(f"/outreach/meetings/{mid}/attendees", json={"supporter_ids": attendees})
        named.append(r)
        assert r.status_code in (200, 422), r.text
        return r.status_code == 200

    wait_for(scheduled, 30, 0.2, "outreach to know the supporters")
    assert named[-1].json()["status"] == "scheduled"
    return str(mid)


def _check_in(stack: Stack, mid: str, supporters: list[str], minutes: int) -> None:
    for sid in supporters:
        with stack.client(Role.SUPPORTER, sub=sid) as s:
            body = _ok(s.post(f"/outreach/meetings/{mid}/check-in",
                              json={"expected_minutes": minutes}))
    assert body["status"] == "in_progress" and body["deadline"] is not None


def test_a_home_visit_from_request_to_outcome(stack: Stack, nats_url: str) -> None:
    with stack.client() as c:
        a, b = _supporters(c, 2)
        mid = _approved_and_scheduled(c, [a, b])
        _check_in(stack, mid, [a, b], 45)
        with stack.client(Role.SUPPORTER, sub=a) as sa, stack.client(Role.SUPPORTER) as other:
            seen = _ok(sa.get(f"/outreach/meetings/{mid}"))
            assert seen["address"] == ADDRESS and seen["attendees"] == [a, b]
            assert other.get(f"/outreach/meetings/{mid}").status_code == 404
            assert other.get("/outreach/meetings").json()["items"] == []
            for sid in (a, b):
                with stack.client(Role.SUPPORTER, sub=sid) as s:
                    _ok(s.post(f"/outreach/meetings/{mid}/check-out"))
            done = _ok(sa.post(f"/outreach/meetings/{mid}/outcome",
                               json={"what_happened": "tea and a long talk",
                                     "follow_up": "ring on Friday"}))
        assert done["status"] == "completed"
        assert done["outcome"]["what_happened"] == "tea and a long talk"
        with stack.client(Role.AUDITOR) as auditor:
            r = auditor.get(f"/outreach/meetings/{mid}")
            trail = _ok(r)["trail"]
            assert r.json()["address"] is None and r.json()["reason"] is None
        assert [e["event"] for e in trail] == [
            "Requested", "RiskAssessed", "Approved", "Scheduled", "CheckedIn", "CheckedIn",
            "CheckedOut", "CheckedOut", "Completed"]
        assert {e["actor"] for e in trail[4:8]} == {a, b}
        assert trail[0]["address"] is None and trail[-1]["what_happened"] is None
        listed = _ok(c.get("/outreach/meetings", params={"status": "completed"}))["items"]
        assert [m["id"] for m in listed] == [mid]
    # On the bus: ids, codes and times; never the address or any free text.
    messages = wait_for(lambda: (m := asyncio.run(stream_messages(nats_url, "outreach")))
                        and len(m) >= 9 and m, 20, 0.2, "the outreach events on the bus")
    carried = b"".join(messages)
    for text in (ADDRESS, "Chapel", "discharge", "dog", "phones on", "tea", "Friday"):
        assert text.encode() not in carried
    assert b"MeetingCompleted" in carried and CALLER.encode() not in carried


def test_an_illegal_transition_is_a_409_naming_the_state_and_what_is_needed(
        stack: Stack) -> None:
    with stack.client() as c:
        mid = _request(c)["id"]
        before = c.get(f"/outreach/meetings/{mid}").headers["ETag"]
        for path, body, needed in (("approve", {}, "risk assessment"),
                                   ("check-in", {"expected_minutes": 30}, "scheduled"),
                                   ("outcome", {"what_happened": "x"}, "check")):
            r = c.post(f"/outreach/meetings/{mid}/{path}", json=body)
            assert r.status_code == 409, (path, r.text)
            assert r.headers["content-type"] == PROBLEM
            assert "requested" in r.json()["detail"] and needed in r.json()["detail"]
        assert c.get(f"/outreach/meetings/{mid}").headers["ETag"] == before


def _alerts(c: httpx.Client, status: str = "open") -> list[dict[str, Any]]:
    return list(_ok(c.get("/outreach/alerts", params={"status": status}))["items"])


def _overdue_raised(stack: Stack) -> int:
    events = stack.runtime("outreach").app.integration_events(0, 1000)
    return sum(1 for e in events if e.type == "SafetyCheckOverdue")


def test_an_overdue_check_in_fires_once_across_a_restart_until_resolved(
        settings: Settings, nats_url: str) -> None:
    s = stack_settings(settings, nats_url=nats_url, tick_interval_s=0.1)
    with Stack(s) as stack, stack.client() as c:
        a, b = _supporters(c, 2)
        mid = _approved_and_scheduled(c, [a, b])
        _check_in(stack, mid, [a, b], 15)
        with stack.client(Role.SUPPORTER, sub=a) as sa:
            _ok(sa.post(f"/outreach/meetings/{mid}/check-out"))
        ticks: list[datetime] = []
        app = stack.runtime("outreach").app
        real: Callable[[datetime], None] = app.tick

        def counted(now: datetime) -> None:
            ticks.append(now)
            real(now)

        app.tick = counted  # type: ignore[method-assign]
        wait_for(lambda: len(ticks) >= 3, 10, 0.05, "ticks before the deadline")
        assert _alerts(c) == [] and _overdue_raised(stack) == 0
    # Restarted between the check-in and its deadline (15 minutes and the grace of 30):
    # the new process's clock, handed a time past the deadline, raises it once.
    with Stack(s) as stack, stack.client() as c:
        app = stack.runtime("outreach").app
        real = app.tick
        late: list[datetime] = []

        def past_the_deadline(now: datetime) -> None:
            late.append(now)
            real(now + timedelta(minutes=50))

        app.tick = past_the_deadline  # type: ignore[method-assign]
        items = wait_for(lambda: _alerts(c), 20, 0.1, "the safety alert")
        assert [(i["id"], i["missing"]) for i in items] == [(mid, [b])]
        seen = len(late)
        wait_for(lambda: len(late) >= seen + 5, 10, 0.05, "more ticks")
        assert _overdue_raised(stack) == 1 and len(_alerts(c)) == 1
        with stack.client(Role.SUPPORTER, sub=a) as sa:
            assert sa.get("/outreach/alerts").status_code == 403
            assert sa.post(f"/outreach/alerts/{mid}/resolve",
                           json={"what_was_done": "x"}).status_code == 403
        meeting = _ok(c.get(f"/outreach/meetings/{mid}"))
        assert meeting["alert"]["missing"] == [b] and meeting["alert"]["resolved_at"] is None
        resolved = _ok(c.post(f"/outreach/alerts/{mid}/resolve",
                              json={"what_was_done": "rang b: home safe, phone had died"}))
        assert resolved["alert"]["what_was_done"] == "rang b: home safe, phone had died"
        assert _alerts(c) == []
        (closed,) = _alerts(c, "all")
        assert closed["resolved_at"] is not None and closed["resolved_by"]
        r = c.post(f"/outreach/alerts/{mid}/resolve", json={"what_was_done": "again"})
        assert r.status_code == 409
        seen = len(late)
        wait_for(lambda: len(late) >= seen + 3, 10, 0.05, "ticks after the resolution")
        assert _overdue_raised(stack) == 1 and _alerts(c) == []


def test_a_deactivated_supporter_cannot_attend_and_erasure_reaches_the_address(
        stack: Stack) -> None:
    """Both ends of the bus, through the API: the shift service deactivates a supporter
    and outreach refuses them as an attendee; the contact service erases a caller and
    their meeting's address reads ``[erased]`` while its decision trail stays."""
    with stack.client() as c:
        a, b, gone = _supporters(c, 3)
        r = c.post("/contact/callers", json={"alias": "Robin", "phone": "07700900987"})
        assert r.status_code == 201, r.text
        ref = r.json()["caller_ref"]
        mid = _request(c, caller_ref=ref)["id"]
        _ok(c.post(f"/outreach/meetings/{mid}/risk-assessments",
                   json={"level": "low", "factors": ["animals"], "mitigations": "cat"}))
        _ok(c.post(f"/outreach/meetings/{mid}/approve", json={"conditions": "phones on"}))
        # Outreach knows all three as able to attend; then the shift service deactivates
        # one, and once that has reached outreach over the bus, naming them is refused.
        engine = stack.runtime("outreach").engine
        wait_for(lambda: all(roster.why_not_attending(engine, s) is None
                             for s in (a, b, gone)), 30, 0.1, "the roster to have them")
        assert c.post(f"/shift/supporters/{gone}/deactivate",
                      json={"reason": "moved away"}).status_code == 200
        wait_for(lambda: roster.why_not_attending(engine, gone) == "deactivated", 30, 0.1,
                 "the deactivation to reach outreach")
        r = c.post(f"/outreach/meetings/{mid}/attendees", json={"supporter_ids": [a, gone]})
        assert r.status_code == 422 and "deactivated" in r.text, r.text
        problem = r.json()
        assert gone in problem["detail"] and c.get(
            f"/outreach/meetings/{mid}").json()["status"] == "approved"
        scheduled = wait_for(lambda: (r := c.post(f"/outreach/meetings/{mid}/attendees",
                                                  json={"supporter_ids": [a, b]}))
                             .status_code == 200 and r.json(), 30, 0.2, "a and b named")
        assert scheduled["status"] == "scheduled"

        assert c.get(f"/outreach/meetings/{mid}").json()["address"] == ADDRESS
        assert c.delete(f"/contact/callers/{ref}/personal-data").status_code == 200
        erased = wait_for(lambda: (m := c.get(f"/outreach/meetings/{mid}").json())
                          ["address"] == "[erased]" and m, 30, 0.2, "erasure in outreach")
        assert erased["reason"] == "[erased]" and erased["status"] == "scheduled"
        assert [e["event"] for e in erased["trail"]] == [
            "Requested", "RiskAssessed", "Approved", "Scheduled"]
        r = c.post("/outreach/meetings", json={
            "caller_ref": ref, "kind": "community", "venue": "the library cafe",
            "proposed_at": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
            "expected_minutes": 45, "reason": "again"})
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
