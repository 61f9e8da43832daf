"""The outreach API over real HTTP and NATS, on SQLite (the application tier and
``tests/system/test_outreach_flow.py`` run on both stores): bad input is a 422 naming
the field with nothing stored, If-Match and Idempotency-Key, the approval rules as
problems, and who sees what."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.config import Settings
from shared.web.auth import Role
from tests.support import PROBLEM, Stack, stack_settings


@pytest.fixture
def api(tmp_path: Path, nats_url: str) -> Iterator[Stack]:
    with Stack(stack_settings(Settings(data_dir=tmp_path / "var"), nats_url=nats_url)) as st:
        yield st


def _body(**overrides: Any) -> dict[str, Any]:
    body = {"caller_ref": "C-0000ABCD", "kind": "community", "venue": "the cafe on Briggate",
            "proposed_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
            "expected_minutes": 60, "reason": "a coffee and a chat"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def _fields(r: httpx.Response) -> list[str]:
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
    return [e["field"] for e in r.json().get("errors", [])]


def test_bad_input_is_a_422_naming_the_field_and_stores_nothing(api: Stack) -> None:
    with api.client() as c:
        past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        for body, field in (
                (_body(venue=None), "body.venue"),
                (_body(address="1 High St"), "body.address"),
                (_body(kind="home", venue=None), "body.address"),
                (_body(expected_minutes=5), "body.expected_minutes"),
                (_body(caller_ref="Sunny"), "body.caller_ref"),
                (_body(proposed_at=past), "body.proposed_at"),
                (_body(proposed_at="2026-12-01T10:00:00"), "body.proposed_at"),
                (_body(colour="red"), "body.colour")):
            assert field in _fields(c.post("/outreach/meetings", json=body)), body
        assert c.get("/outreach/meetings").json()["items"] == []
        assert api.runtime("outreach").app.max_notification_id() == 0
        mid = c.post("/outreach/meetings", json=_body()).json()["id"]
        for path, body, field in (
                ("risk-assessments", {"level": "extreme"}, "body.level"),
                ("risk-assessments", {"level": "low", "factors": ["ghosts"]},
                 "body.factors.0"),
                ("attendees", {"supporter_ids": ["one"]}, "body.supporter_ids"),
                ("check-in", {"expected_minutes": 0}, "body.expected_minutes")):
            assert field in _fields(c.post(f"/outreach/meetings/{mid}/{path}", json=body))
        assert c.get("/outreach/meetings", params={"status": "sleeping"}).status_code == 422
        assert c.get("/outreach/meetings/not-an-id").status_code == 422
        assert c.get(f"/outreach/meetings/{mid}").json()["version"] == 1


def test_if_match_and_idempotency_key(api: Stack) -> None:
    with api.client() as c:
        body = _body()
        first = c.post("/outreach/meetings", json=body, headers={"Idempotency-Key": "k1"})
        again = c.post("/outreach/meetings", json=body, headers={"Idempotency-Key": "k1"})
        assert first.status_code == again.status_code == 201
        assert first.json()["id"] == again.json()["id"] and first.headers["ETag"] == '"1"'
        assert len(c.get("/outreach/meetings").json()["items"]) == 1
        mid = first.json()["id"]
        stale = c.post(f"/outreach/meetings/{mid}/risk-assessments",
                       json={"level": "low"}, headers={"If-Match": '"7"'})
        assert stale.status_code == 412
        r = c.post(f"/outreach/meetings/{mid}/risk-assessments", json={"level": "low"},
                   headers={"If-Match": '"1"'})
        assert r.status_code == 200 and r.headers["ETag"] == '"2"'


def test_the_approval_rules_as_problems(api: Stack) -> None:
    with api.client(Role.SUPPORTER, sub="sup-1") as s, api.client() as c:
        own = s.post("/outreach/meetings", json=_body()).json()["id"]
        s.post(f"/outreach/meetings/{own}/risk-assessments", json={"level": "low"})
        r = s.post(f"/outreach/meetings/{own}/approve", json={})
        assert r.status_code == 200 and r.json()["approval"]["self_approved"] is True
        home = s.post("/outreach/meetings", json=_body(kind="home", venue=None,
                                                       address="1 High St")).json()["id"]
        s.post(f"/outreach/meetings/{home}/risk-assessments", json={"level": "low"})
        assert s.post(f"/outreach/meetings/{home}/approve", json={}).status_code == 403
        assert s.post(f"/outreach/meetings/{home}/decline",
                      json={"reason": "x"}).status_code == 403
        c.post(f"/outreach/meetings/{home}/risk-assessments",
               json={"level": "high", "factors": ["known_violence"]})
        r = c.post(f"/outreach/meetings/{home}/approve", json={})
        assert r.status_code == 422 and "community" in r.json()["detail"]
        trail = c.get(f"/outreach/meetings/{home}").json()["assessments"]
        assert [(a["n"], a["level"]) for a in trail] == [(1, "low"), (2, "high")]


def test_who_sees_what(api: Stack) -> None:
    with api.client(Role.SUPPORTER, sub="sup-1") as s, api.client() as c, \
            api.client(Role.AUDITOR) as a, api.client(Role.SUPPORTER) as other:
        mid = s.post("/outreach/meetings", json=_body(kind="home", venue=None,
                                                      address="1 High St")).json()["id"]
        c.post(f"/outreach/meetings/{mid}/risk-assessments",
               json={"level": "medium", "mitigations": "go in daylight"})
        for client, address, mitigations in ((s, "1 High St", "go in daylight"),
                                             (c, "1 High St", "go in daylight"),
                                             (a, None, None)):
            got = client.get(f"/outreach/meetings/{mid}").json()
            assert got["address"] == address, client
            assert got["assessments"][0]["mitigations"] == mitigations
            assert got["trail"][1]["mitigations"] == mitigations
            assert got["trail"][1]["event"] == "RiskAssessed" and got["trail"][1]["actor"]
        assert other.get(f"/outreach/meetings/{mid}").status_code == 404
        assert other.post(f"/outreach/meetings/{mid}/cancel",
                          json={"reason": "x"}).status_code == 404
        assert [m["id"] for m in a.get("/outreach/meetings").json()["items"]] == [mid]
