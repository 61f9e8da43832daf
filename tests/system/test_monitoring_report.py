"""The monitoring report end to end, over real NATS and HTTP, on SQLite and PostgreSQL:
a month built through the contact, shift and outreach APIs (never by writing the read
model), each figure read back from ``GET /reporting/monthly``; the London month
boundary (00:30 on 1 April BST is April's; 23:30 UTC on 31 October is October's, back
on GMT); the year; every event delivered again changing no figure; a partner's copy
with small numbers suppressed; and the CSV.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import nats
import pytest

from services.reporting.report import london_month
from services.shift.domain.values import london_today
from shared.messaging.envelope import IntegrationEvent
from shared.web.auth import Role
from tests.support import Stack, contact_body, wait_for

TRAINING = ("induction", "mental_health_first_aid", "safeguarding_adults")
NOW = datetime.now(UTC)


def _ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return dict(r.json())


def _at(minutes: int) -> str:
    # From the moment of the request, not of the import: in a long run a shift set to
    # start in ten minutes from the import may have started before it is filled.
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


def _supporters(c: httpx.Client, n: int) -> list[str]:
    ids = []
    for i in range(n):
        sid = _ok(c.post("/shift/supporters", json={"name": f"Supporter {i}",
                                                    "start_date": "2026-01-05"}), 201)["id"]
        for course in TRAINING:
            _ok(c.post(f"/shift/supporters/{sid}/training",
                       json={"course": course, "completed_on": "2026-01-10"}))
        ids.append(sid)
    return ids


def _shift(c: httpx.Client, starts_in_min: int, crew: list[str]) -> str:
    shift = _ok(c.post("/shift/shifts", json={"starts_at": _at(starts_in_min),
                                              "ends_at": _at(starts_in_min + 30),
                                              "required": 2}), 201)["id"]
    for sid in crew:
        r = c.post(f"/shift/shifts/{shift}/assignments", json={"supporter_id": sid})
        assert r.status_code in (200, 201), r.text
    return str(shift)


def _log(c: httpx.Client, **fields: Any) -> dict[str, Any]:
    """Logged once the contact service has the supporters it names from the bus."""
    made: list[dict[str, Any]] = []

    def logged() -> bool:
        r = c.post("/contact/contacts", json=contact_body(**fields))
        assert r.status_code in (201, 422), r.text
        if r.status_code == 201:
            made.append(r.json())
        return r.status_code == 201

    wait_for(logged, 30, 0.2, "the contact logged")
    return made[0]


def _meeting(c: httpx.Client, caller_ref: str) -> str:
    return str(_ok(c.post("/outreach/meetings", json={
        "caller_ref": caller_ref, "kind": "home", "address": "1 Test Row, Leeds",
        "proposed_at": _at(60), "expected_minutes": 60, "reason": "asked for a visit"}),
        201)["id"])


def _scenario(c: httpx.Client) -> None:
    """This London month: four answered contacts and a missed call, two callers (one
    new, one met in October), referrals, meetings, shifts and debriefs; and contacts
    either side of two month boundaries."""
    a, b = _supporters(c, 2)
    full = _shift(c, 10, [a, b])
    _shift(c, 50, [a])  # short
    _shift(c, 90, [])  # empty
    ann = _ok(c.post("/contact/callers", json={"gender": "female", "age_band": "25_31"}),
              201)["caller_ref"]
    bo = _ok(c.post("/contact/callers", json={}), 201)["caller_ref"]
    # Earlier months, at the London boundaries
    _log(c, caller_ref=bo, started_at="2026-10-31T23:30:00+00:00", ended_at=None)  # Oct, GMT
    _log(c, started_at="2026-09-30T23:30:00+00:00", ended_at=None)  # 00:30 1 Oct BST
    _log(c, started_at="2026-03-31T23:30:00+00:00", ended_at=None)  # 00:30 1 Apr BST
    # This month
    first = _log(c, caller_ref=ann, shift_id=full, started_at=_at(-40), ended_at=None,
                 issues=["bereavement", "housing"], caller_is="person_in_crisis",
                 supporter_ids=[a, b], distressing=True,
                 follow_up={"needed": True, "by": _at(90), "what": "ring her"})
    _log(c, caller_ref=ann, shift_id=full, started_at=_at(-35), ended_at=None,
         issues=["housing"])
    third = _log(c, caller_ref=bo, channel="text", direction="outbound",
                 started_at=_at(-30), ended_at=None, issues=["self_harm"])
    _log(c, shift_id=full, started_at=_at(-25), ended_at=None, issues=["other"],
         caller_is="professional")
    _log(c, answered=False, issues=[], phone="07700 900123", started_at=_at(-20),
         ended_at=None)  # missed: a call-back due within the hour
    url = f"/contact/contacts/{first['id']}"
    _ok(c.post(f"{url}/risk-assessments", json={"level": "high", "decision": "safety plan"}),
        201)
    _ok(c.post(f"/contact/contacts/{third['id']}/risk-assessments",
               json={"level": "low", "decision": "none needed"}), 201)
    _ok(c.post(f"{url}/escalations", json={"kind": "crisis_team", "reason": "plan"}), 201)
    _ok(c.post(f"{url}/follow-ups/1/complete", json={"outcome": "she is safe"}))
    refs = [_ok(c.post("/contact/referrals", json={
        "source": source, "caller": {"gender": "male"}, "consent_to_contact": True}),
        201)["id"] for source in ("gp", "self", "cmht")]
    _ok(c.post(f"/contact/referrals/{refs[0]}/accept", json={"reason": "in our area"}))
    _ok(c.post(f"/contact/referrals/{refs[1]}/decline", json={"reason": "not for us"}))
    approved, declined, cancelled = (_meeting(c, ann) for _ in range(3))
    _ok(c.post(f"/outreach/meetings/{approved}/risk-assessments",
               json={"level": "low", "factors": []}))
    _ok(c.post(f"/outreach/meetings/{approved}/approve", json={}))
    _ok(c.post(f"/outreach/meetings/{declined}/decline", json={"reason": "too far"}))
    _ok(c.post(f"/outreach/meetings/{cancelled}/cancel", json={"reason": "caller asked"}))
    debriefs = wait_for(lambda: len(items := c.get("/shift/debriefs").json()["items"]) == 2
                        and items, 30, 0.2, "two debriefs opened")
    _ok(c.post(f"/shift/debriefs/{debriefs[0]['id']}/complete",
               json={"on": london_today().isoformat()}))  # now: past midnight too


def cell(count: Any, percent: float | None) -> dict[str, Any]:
    return {"count": count, "percent": percent}


EXPECTED_CONTACTS = {
    "total": 4,
    "by_channel": {"phone": cell(3, 75.0), "text": cell(1, 25.0)},
    "by_direction": {"inbound": cell(3, 75.0), "outbound": cell(1, 25.0)},
    "by_caller_is": {"not_recorded": cell(2, 50.0), "person_in_crisis": cell(1, 25.0),
                     "professional": cell(1, 25.0)},
    "by_issue": {"bereavement": cell(1, 25.0), "housing": cell(2, 50.0),
                 "other": cell(1, 25.0), "self_harm": cell(1, 25.0)},
    "by_risk_level": {"high": cell(1, 25.0), "low": cell(1, 25.0),
                      "not_assessed": cell(2, 50.0)},
    "by_shift_slot": {"extra": cell(3, 75.0)},
    "outside_shifts": 1,
    "missed_calls": 1,
    "signposting": {},
}


def _report(c: httpx.Client, path: str = "monthly", **params: str) -> dict[str, Any]:
    return _ok(c.get(f"/reporting/{path}", params=params))


def _settled(c: httpx.Client, month: str) -> dict[str, Any]:
    """The month's report once every event above has reached reporting."""
    def done() -> dict[str, Any] | None:
        r = _report(c, month=month)
        complete = (r["contacts"]["total"] == 4 and r["debriefs"]["completed"] == 1
                    and r["meetings"]["cancelled"] == 1 and r["referrals"]["declined"] == 1
                    and r["escalations"]["total"] == 1 and r["follow_ups"]["completed"] == 1
                    and r["contacts"]["by_risk_level"].get("low") is not None)
        return r if complete else None
    return dict(wait_for(done, 30, 0.2, "reporting to count the month"))


async def _redeliver_everything(url: str) -> int:
    """Every message of the three streams published again under new message ids (so
    JetStream does not de-duplicate them): the consumers see each event twice."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    n = 0
    for stream in ("SOLIDARITY_CONTACT", "SOLIDARITY_SHIFT", "SOLIDARITY_OUTREACH"):
        info = await js.stream_info(stream)
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(stream, seq)
            event = IntegrationEvent.from_bytes(msg.data or b"")
            await js.publish(event.subject, event.to_bytes(),
                             headers={"Nats-Msg-Id": f"again-{event.msg_id}"})
            n += 1
    await nc.close()
    return n


def test_the_monitoring_report_counts_what_the_services_did(stack: Stack,
                                                            nats_url: str) -> None:
    if london_month(NOW - timedelta(hours=2)) != london_month(NOW + timedelta(hours=3)):
        pytest.skip("too near the end of a London month for a scenario of this month")
    month = london_month(NOW)
    with stack.client() as c:
        _scenario(c)
        r = _settled(c, month)
        first_day = f"{month}-01"
        assert r["period"]["from"] == first_day and r["period"]["to"][:7] == month
        assert r["contacts"] == EXPECTED_CONTACTS
        assert r["callers"] == {
            "unique": 2, "new": 1, "repeat": 1,
            "by_gender": {"female": cell(1, 100.0), "not_disclosed": cell(1, None)},
            "by_age_band": {"25_31": cell(1, 100.0), "not_disclosed": cell(1, None)}}
        assert r["referrals"] == {"total": 3, "by_source": {
            "cmht": cell(1, 33.3), "gp": cell(1, 33.3), "self": cell(1, 33.3)},
            "accepted": 1, "declined": 1}
        assert r["escalations"] == {"total": 1, "by_kind": {"crisis_team": cell(1, 100.0)}}
        assert r["meetings"] == {"requested": 3, "approved": 1, "declined": 1,
                                 "completed": 0, "cancelled": 1,
                                 "by_kind": {"home": cell(3, 100.0)}, "safety_alerts": 0}
        assert r["shifts"] == {"published": 3, "fully_covered": 1, "short": 1, "empty": 1,
                               "coverage_percent": 33.3}
        assert r["debriefs"] == {"opened": 2, "completed": 1, "overdue": 0}
        # the agreed follow-up (done) and the missed call's call-back (due within the hour)
        assert r["follow_ups"] == {"due": 2, "completed": 1, "overdue": 0}

        # The London month boundary, either way of the clock changes
        october = _report(c, month="2026-10")
        assert october["period"] == {"from": "2026-10-01", "to": "2026-10-31"}
        assert october["contacts"]["total"] == 2
        assert october["callers"]["unique"] == 1 and october["callers"]["new"] == 1
        assert _report(c, month="2026-04")["contacts"]["total"] == 1
        assert _report(c, month="2026-03")["contacts"]["total"] == 0
        assert _report(c, month="2026-09")["contacts"]["total"] == 0

        # The financial year: counted over the year, with its months
        year = _report(c, "year", start="2026-04")
        assert year["period"] == {"from": "2026-04-01", "to": "2027-03-31"}
        assert year["contacts"]["total"] == 7 and year["contacts"]["missed_calls"] == 1
        assert year["callers"]["unique"] == 2 and year["callers"]["repeat"] == 2
        totals = {m["month"]: m["contacts"]["total"] for m in year["months"]}
        assert len(totals) == 12 and sum(totals.values()) == 7
        assert (totals["2026-04"], totals["2026-10"], totals[month]) == (1, 2, 4)
        assert {m["month"]: m["callers"]["unique"] for m in year["months"]}[month] == 2

        # Every event delivered again changes no figure
        consumers = stack.runtime("reporting").consumers
        before = sum(x.duplicate_count for x in consumers)
        sent = asyncio.run(_redeliver_everything(nats_url))
        wait_for(lambda: sum(x.duplicate_count for x in consumers) >= before + sent, 30,
                 0.2, "the duplicates seen")
        assert _report(c, month=month) == r
        assert _report(c, "year", start="2026-04") == year

    # A partner: small numbers suppressed, and what would give them away withheld
    with stack.client(Role.PARTNER) as p:
        seen = _report(p, month=month)
        assert seen["contacts"]["total"] == "<5" and seen["contacts"]["missed_calls"] == "<5"
        assert seen["contacts"]["by_channel"] == {"phone": cell("<5", None),
                                                  "text": cell("<5", None)}
        assert seen["shifts"]["coverage_percent"] is None
        assert seen["meetings"]["completed"] == 0  # 0 gives no one away
        assert seen["period"] == r["period"]
        seen_year = _report(p, "year", start="2026-04")
        assert seen_year["contacts"]["total"] == 7
        assert {m["contacts"]["total"] for m in seen_year["months"]} <= {0, "<5", None}
        r_csv = p.get("/reporting/monthly", params={"month": month, "format": "csv"})
        assert r_csv.status_code == 200
        assert r_csv.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(r_csv.text)))
        assert rows[0] == ["section", "breakdown", "code", "count", "percent"]
        assert ["contacts", "", "total", "<5", ""] in rows

    with stack.client(Role.AUDITOR) as auditor:
        rows = list(csv.reader(io.StringIO(auditor.get(
            "/reporting/year", params={"start": "2026-04", "format": "csv"}).text)))
        assert ["contacts", "by_issue", "housing", "2", "28.6"] in rows
        assert ["months", "2026-10", "contacts.total", "2", ""] in rows
        for params in ({"month": "2026-13"}, {"month": "1999-12"}, {}):
            bad = auditor.get("/reporting/monthly", params=params)
            assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.month"
        bad = auditor.get("/reporting/year", params={"start": "2026-4"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.start"
        bad = auditor.get("/reporting/monthly", params={"month": month, "format": "xml"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.format"
    with stack.client(Role.SUPPORTER) as s:
        assert s.get("/reporting/monthly", params={"month": month}).status_code == 403
