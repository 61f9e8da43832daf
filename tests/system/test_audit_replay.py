"""Replay as of a moment and exports verified offline, over real HTTP and NATS, on SQLite
and PostgreSQL.

- A home visit requested, risk-assessed and approved: replayed as of a moment before
  its approval it is not approved; as of after, approved by the coordinator on
  assessment 1. The auditor sees no address or free text, the coordinator does, and
  after the caller's erasure the coordinator sees ``[erased]``.
- A contact's risk trail as of a moment (and its caller found by ``caller_ref``).
- Roles: 403 for a supporter, 401 without a token; 404 before it existed or unknown;
  422 for a time without its offset.
- ``solidarity audit replay`` prints the same as the auditor sees, as a timeline.
- ``solidarity audit export`` of a period, ``verify --file`` clean; one byte of one
  exported event changed in the file, or one event removed: rejected at that id.
"""

from __future__ import annotations

import argparse
import base64
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services import audit_cli
from shared.config import Settings
from shared.web.auth import Role
from tests.support import PROBLEM, Stack, contact_body, stack_settings, wait_for

ADDRESS = "Flat 3, 14 Chapel Street, Leeds"
COORDINATOR = "coord-replay-1"


def _ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return dict(r.json())


def _moment() -> datetime:
    """A moment strictly between what was stored before and what is stored after."""
    time.sleep(0.02)
    now = datetime.now(UTC)
    time.sleep(0.02)
    return now


def _replay(c: httpx.Client, service: str, ident: str,
            as_of: datetime | None = None) -> httpx.Response:
    params = {"as_of": as_of.isoformat()} if as_of is not None else None
    return c.get(f"/{service}/audit/aggregates/{ident}", params=params)


def _home_visit(c: httpx.Client, caller_ref: str) -> tuple[str, datetime, datetime]:
    """A home visit requested and assessed, then approved; the moments before the
    request and between the assessment and the approval."""
    before_it = _moment()
    mid = _ok(c.post("/outreach/meetings", json={
        "caller_ref": caller_ref, "kind": "home", "address": ADDRESS,
        "proposed_at": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
        "expected_minutes": 60, "reason": "asked for a visit after discharge"}), 201)["id"]
    _ok(c.post(f"/outreach/meetings/{mid}/risk-assessments",
               json={"level": "medium", "factors": ["others_in_home"],
                     "mitigations": "the brother is told"}))
    between = _moment()
    _ok(c.post(f"/outreach/meetings/{mid}/approve", json={"conditions": "phones on"}))
    return str(mid), before_it, between


def test_a_home_visit_as_of_before_and_after_its_approval(stack: Stack) -> None:
    with stack.client(Role.COORDINATOR, sub=COORDINATOR) as c, \
            stack.client(Role.AUDITOR) as auditor:
        ref = _ok(c.post("/contact/callers", json={"alias": "Bluebell"}), 201)["caller_ref"]
        mid, before_it, between = _home_visit(c, ref)

        early = _ok(_replay(auditor, "outreach", mid, between))
        assert early["type"] == "Meeting" and early["version"] == 2
        assert early["state"]["status"] == "risk_assessed"
        assert early["state"]["approval"] is None
        assert [e["type"] for e in early["events"]] == ["Meeting.Requested",
                                                        "Meeting.RiskAssessed"]
        assert early["events"][1]["decision"] == {"n": 1, "level": "medium",
                                                  "factors": ["others_in_home"],
                                                  "mitigations": None}

        late = _ok(_replay(auditor, "outreach", mid))  # as of now
        assert late["version"] == 3 and late["state"]["status"] == "approved"
        approval = late["state"]["approval"]
        assert approval["approved_by"] == COORDINATOR and approval["assessment_n"] == 1
        assert [a["n"] for a in late["state"]["assessments"]] == [1]
        approved = late["events"][-1]
        assert approved["type"] == "Meeting.Approved" and approved["actor"] == COORDINATOR
        assert approved["decision"] == {"by": COORDINATOR, "assessment_n": 1,
                                        "self_approved": False, "conditions": None}
        assert [t["event"] for t in late["state"]["trail"]] == [
            "Requested", "RiskAssessed", "Approved"]
        # The auditor: no address, no free text, anywhere in the answer.
        assert late["state"]["address"] is None and late["state"]["reason"] is None
        for text in ("Chapel", "discharge", "brother", "phones on", "pd1:"):
            assert text not in json.dumps(late)

        seen = c.get(f"/outreach/audit/aggregates/{mid}",  # the coordinator sees them
                     params={"purpose": "the coroner's inquiry"}).json()
        assert seen["state"]["address"] == ADDRESS
        assert seen["events"][-1]["decision"]["conditions"] == "phones on"
        assert seen["state"]["trail"][1]["mitigations"] == "the brother is told"

        # Who read what: the coordinator's replay showed personal data, so it was
        # recorded (the auditor's, coded only, was not); the purpose for the
        # coordinator's eyes only.
        def replays(doc: dict[str, Any]) -> list[tuple[str, str | None]]:
            return [(r["by"], r["purpose"]) for r in doc["reads"]
                    if r["kind"] == "audit_replay"]

        assert replays(_ok(_replay(auditor, "outreach", mid))) == [(COORDINATOR, None)]
        assert replays(_ok(_replay(c, "outreach", mid))) == [
            (COORDINATOR, "the coroner's inquiry")]

        gone = _replay(auditor, "outreach", mid, before_it)
        assert gone.status_code == 404 and gone.headers["content-type"] == PROBLEM
        assert "did not exist yet" in gone.json()["detail"]
        naive = _replay(auditor, "outreach", mid, between.replace(tzinfo=None))
        assert naive.status_code == 422
        assert [e["field"] for e in naive.json()["errors"]] == ["query.as_of"]
        assert auditor.get("/outreach/audit/aggregates/00000000-0000-4000-8000-0000000000ff"
                           ).status_code == 404
        bad = auditor.get("/outreach/audit/aggregates/not-an-id")
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == \
            "path.aggregate_id"
        with stack.client(Role.SUPPORTER) as supporter, stack.client(None) as anon:
            assert _replay(supporter, "outreach", mid).status_code == 403
            assert _replay(anon, "outreach", mid).status_code == 401

        # Erased: the coordinator sees [erased] (outreach learns it from the bus).
        assert c.delete(f"/contact/callers/{ref}/personal-data").status_code == 200
        erased = wait_for(lambda: (r := _ok(_replay(c, "outreach", mid)))["state"]
                          ["address"] == "[erased]" and r, 30, 0.2, "erasure in outreach")
        assert erased["events"][-1]["decision"]["conditions"] == "[erased]"
        assert erased["state"]["status"] == "approved"  # the coded record stays


def test_a_contacts_risk_trail_as_of_a_moment(stack: Stack) -> None:
    with stack.client(Role.COORDINATOR, sub=COORDINATOR) as c, \
            stack.client(Role.AUDITOR) as auditor:
        ref = _ok(c.post("/contact/callers", json={"alias": "Heron"}), 201)["caller_ref"]
        cid = _ok(c.post("/contact/contacts", json=contact_body(caller_ref=ref)), 201)["id"]
        _ok(c.post(f"/contact/contacts/{cid}/risk-assessments",
                   json={"level": "medium", "decision": "keep talking",
                         "reasoning": "has a plan for tonight"}), 201)
        between = _moment()
        _ok(c.post(f"/contact/contacts/{cid}/risk-assessments",
                   json={"level": "immediate", "decision": "ring 999"}), 201)
        _ok(c.post(f"/contact/contacts/{cid}/escalations",
                   json={"kind": "emergency_services", "reason": "said goodbye"}), 201)

        then = _ok(_replay(auditor, "contact", cid, between))
        assert then["type"] == "Contact" and then["state"]["risk_level"] == "medium"
        assert len(then["state"]["risk_trail"]) == 1 and then["state"]["escalations"] == []
        now = _ok(_replay(auditor, "contact", cid))
        assert now["state"]["risk_level"] == "immediate"
        decisions = [(e["type"], e["decision"]) for e in now["events"] if e["decision"]]
        assert [t for t, _ in decisions] == ["Contact.RiskAssessed", "Contact.RiskAssessed",
                                             "Contact.Escalated"]
        assert decisions[0][1]["level"] == "medium" and decisions[0][1]["decision"] is None
        assert decisions[2][1]["kind"] == "emergency_services"
        assert "goodbye" not in json.dumps(now) and "plan for tonight" not in json.dumps(now)
        mine = _ok(_replay(c, "contact", cid, between))
        assert mine["state"]["risk_trail"][0]["reasoning"] == "has a plan for tonight"
        caller = _ok(_replay(auditor, "contact", ref))  # found by caller_ref
        assert caller["type"] == "Caller" and caller["state"]["caller_ref"] == ref
        assert caller["state"]["alias"] is None
        with stack.client(Role.SUPPORTER) as supporter:
            assert _replay(supporter, "contact", cid).status_code == 403


def _cli(capsys: pytest.CaptureFixture[str], settings: Settings, **args: Any
         ) -> tuple[int, str, str]:
    code = audit_cli.cmd_audit(argparse.Namespace(**args), settings)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_replay_on_a_terminal_and_an_export_verified_offline(
        settings: Settings, nats_url: str, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    s = stack_settings(settings, nats_url=nats_url)
    with Stack(s) as stack, stack.client(Role.COORDINATOR, sub=COORDINATOR) as c:
        start = _moment()
        ref = _ok(c.post("/contact/callers", json={"alias": "Wren"}), 201)["caller_ref"]
        mid, _before, between = _home_visit(c, ref)
        end = _moment()
        _ok(c.post("/outreach/meetings", json={  # after the period: not exported
            "caller_ref": ref, "kind": "community", "venue": "the library cafe",
            "proposed_at": (datetime.now(UTC) + timedelta(hours=3)).isoformat(),
            "expected_minutes": 30, "reason": "again"}), 201)
        assert stack.runtime("outreach").checkpoint() is not None  # signed: covers it
        signer = stack.runtime("outreach").signer
        assert signer is not None
        key = signer.public_key

    code, out, _ = _cli(capsys, s, action="replay", service="outreach", aggregate=mid,
                        as_of=between, format="text")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"outreach Meeting {mid} as of ") and "version 2" in lines[0]
    steps = [line for line in lines if " v" in line and " by " in line]
    assert len(steps) == 2 and "Meeting.RiskAssessed" in steps[1]
    assert "UTC)" in steps[0] and ("GMT" in steps[0] or "BST" in steps[0])
    assert "level=medium" in steps[1] and "Chapel" not in out and "brother" not in out
    code, out, _ = _cli(capsys, s, action="replay", service="outreach", aggregate=mid,
                        as_of=None, format="json")
    assert code == 0 and json.loads(out)["state"]["approval"]["assessment_n"] == 1
    code, _, err = _cli(capsys, s, action="replay", service="outreach", aggregate=mid,
                        as_of=start - timedelta(days=1), format="text")
    assert code == 1 and "did not exist yet" in err

    out_file = tmp_path / "outreach-export.json"
    code, out, err = _cli(capsys, s, action="export", service="outreach", start=start,
                          end=end, out=out_file)
    assert code == 0, err
    doc = json.loads(out_file.read_text())
    assert [e["originator_version"] for e in doc["events"]] == [1, 2, 3]
    assert len(doc["after"]) == 1 and doc["checkpoints"]
    assert b"Chapel" not in out_file.read_bytes()  # sealed in the store: ciphertext here

    code, out, _ = _cli(capsys, Settings(), action="verify", file=out_file, json=False,
                        trust=None, service=None)
    assert code == 0 and out.startswith("outreach: clean: 3 events"), out
    assert "not checked against trusted ones" in out
    code, out, _ = _cli(capsys, Settings(), action="verify", file=out_file, json=False,
                        trust=[key], service=None)
    assert code == 0 and "trusted" not in out, out
    stranger = base64.b64encode(bytes(32)).decode()
    code, out, _ = _cli(capsys, Settings(), action="verify", file=out_file, json=False,
                        trust=[stranger], service=None)
    assert code == 1 and "CHECKPOINT_SIGNATURE" in out, out

    ids = [e["notification_id"] for e in doc["events"]]
    changed = json.loads(json.dumps(doc))
    state = bytearray(base64.b64decode(changed["events"][1]["state"]))
    state[len(state) // 2] ^= 0x01
    changed["events"][1]["state"] = base64.b64encode(bytes(state)).decode()
    (tmp_path / "changed.json").write_text(json.dumps(changed))
    code, out, _ = _cli(capsys, Settings(), action="verify", file=tmp_path / "changed.json",
                        json=True, trust=None, service=None)
    problem = json.loads(out)["problem"]
    assert code == 1 and (problem["kind"], problem["notification_id"]) == ("changed", ids[1])

    removed = json.loads(json.dumps(doc))
    del removed["events"][1]
    (tmp_path / "removed.json").write_text(json.dumps(removed))
    code, out, _ = _cli(capsys, Settings(), action="verify", file=tmp_path / "removed.json",
                        json=False, trust=None, service=None)
    assert code == 1 and f"DELETED at notification {ids[1]}" in out
