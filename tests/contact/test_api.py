"""The contact service over real HTTP, on SQLite and PostgreSQL: callers, history and
its audit, erasure, contacts and their views, risk, follow-ups, referrals, directory."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.reporting.handlers import london_month
from shared.eventstore import readtables
from shared.web.auth import Role
from tests.contact.rota import RotaFeed
from tests.support import PROBLEM, Stack, contact_body, stored_events, wait_for


def _caller(stack: Stack, **fields: Any) -> dict[str, Any]:
    body = {"alias": "Sunny", "phone": "07700 900123", "gender": "female", "age_band": "25_31",
            "consent_to_keep_history": True, "consent_to_text": True}
    body.update(fields)
    with stack.client() as c:
        r = c.post("/contact/callers", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _recent(minutes: int = 30) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()


def _rota(stack: Stack) -> RotaFeed:
    """The shift service's rota, published straight into the contact service."""
    return RotaFeed(stack.runtime("contact"))


def _log(stack: Stack, role: Role = Role.SUPPORTER, sub: str | None = None, **fields: Any
         ) -> dict[str, Any]:
    """Logged by a supporter of the rota (a new one unless ``sub``), who is named on it."""
    sub = sub or _rota(stack).supporter()
    body = contact_body(started_at=_recent(), ended_at=None, supporter_ids=[sub])
    body.update(fields)
    with stack.client(role, sub=sub) as c:
        r = c.post("/contact/contacts", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_register_lookup_and_duplicate_numbers(stack: Stack) -> None:
    caller = _caller(stack)
    assert caller["caller_ref"].startswith("C-") and caller["has_phone"]
    assert caller["alias"] == "Sunny"
    with stack.client(Role.SUPPORTER) as c:
        for written in ("+447700900123", "+44 7700 900 123", "07700900123"):
            r = c.get("/contact/callers/lookup", params={"phone": written})
            assert r.status_code == 200 and r.json()["caller_ref"] == caller["caller_ref"]
        assert c.get("/contact/callers/lookup",
                     params={"phone": "07700 900999"}).status_code == 404
        r = c.get("/contact/callers/lookup", params={"phone": "not a phone"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "query.phone"
        before = stored_events(stack)
        r = c.post("/contact/callers", json={"phone": "+44 7700 900123"})
        assert r.status_code == 409 and r.headers["content-type"] == PROBLEM
        assert "07700" not in r.text
        assert stored_events(stack) == before
        r = c.get(f"/contact/callers/{caller['caller_ref']}")
        assert r.status_code == 200 and r.headers["etag"] == '"1"'
        r = c.patch(f"/contact/callers/{caller['caller_ref']}", json={"consent_to_text": False},
                    headers={"If-Match": '"1"'})
        assert r.status_code == 200 and r.json()["consent_to_text"] is False
        assert c.get("/contact/callers/C-ZZZZZZZZ").status_code == 404
        # Not the shape of a caller_ref: no such resource (and /callers/lookup is never
        # taken for one: a PATCH there is a 405 naming GET).
        assert c.get("/contact/callers/robert").status_code == 404
        r = c.patch("/contact/callers/lookup", json={"consent_to_text": False})
        assert r.status_code == 405 and r.headers["allow"] == "GET"


def test_history_needs_purpose_consent_and_a_supporter_on_shift(stack: Stack) -> None:
    caller = _caller(stack)
    ref = caller["caller_ref"]
    rota = _rota(stack)
    named = rota.supporter()  # named on both contacts, on no shift
    first = _log(stack, caller_ref=ref, summary="Talked about her brother", sub=named,
                 started_at=_recent(60))
    second = _log(stack, caller_ref=ref, summary="Rang again after the funeral", sub=named,
                  started_at=_recent(10))
    on_shift = rota.on_shift()  # tonight's first call: has logged nothing yet
    ended = rota.on_shift(started=timedelta(hours=8))  # ended two hours ago
    url = f"/contact/callers/{ref}/history"
    with stack.client(Role.COORDINATOR, sub="coord-1") as c:
        assert c.get(url).status_code == 422  # purpose is required
        r = c.get(url, params={"purpose": "caller rang again"})
        assert r.status_code == 200
        items = r.json()["items"]
        assert [i["id"] for i in items] == [second["id"], first["id"]]  # newest first
        assert items[0]["summary"] == "Rang again after the funeral"
    with stack.client(Role.SUPPORTER, sub=on_shift) as c:
        r = c.get(url, params={"purpose": "rang again"})
        assert r.status_code == 200 and r.json()["items"][0]["summary"] is not None
    for off in (ended, named, "sup-off-shift"):  # naming them put nobody on shift
        with stack.client(Role.SUPPORTER, sub=off) as c:
            r = c.get(url, params={"purpose": "curious"})
            assert r.status_code == 403 and r.headers["content-type"] == PROBLEM, off
            assert "on shift" in r.json()["detail"]
    with stack.client(Role.AUDITOR) as c:
        assert c.get(url, params={"purpose": "audit"}).status_code == 403
    # Every read is itself recorded, with who read it.
    with stack.client(Role.AUDITOR) as c:
        events = c.get("/contact/events", params={"limit": 1000}).json()["items"]
    reads = [e for e in events if e["type"] == "CallerHistoryRead"]
    assert sorted(e["actor"] for e in reads) == sorted(["coord-1", on_shift])
    assert "purpose" not in reads[0]["data"]
    # Without consent to keep history: refused.
    other = _caller(stack, phone="07700 900456", consent_to_keep_history=False)
    with stack.client(Role.COORDINATOR) as c:
        r = c.get(f"/contact/callers/{other['caller_ref']}/history", params={"purpose": "x" * 5})
        assert r.status_code == 403 and "consented" in r.json()["detail"]


def test_role_based_views_of_contacts(stack: Stack) -> None:
    caller = _caller(stack)
    me = _rota(stack).supporter()
    mine = _log(stack, sub=me, caller_ref=caller["caller_ref"], summary="Private words")
    _log(stack, summary="Someone else's call")
    with stack.client(Role.SUPPORTER, sub=me) as c:
        items = c.get("/contact/contacts").json()["items"]
        by_id = {i["id"]: i for i in items}
        assert by_id[mine["id"]]["summary"] == "Private words"
        others = [i for i in items if i["id"] != mine["id"]]
        assert others and all(i["summary"] is None for i in others)
        assert c.get(f"/contact/contacts/{others[0]['id']}").json()["summary"] is None
    with stack.client(Role.COORDINATOR) as c:
        items = c.get("/contact/contacts").json()["items"]
        assert {i["summary"] for i in items} == {"Private words", "Someone else's call"}
        filtered = c.get("/contact/contacts", params={"caller_ref": caller["caller_ref"]})
        assert [i["id"] for i in filtered.json()["items"]] == [mine["id"]]
    with stack.client(Role.AUDITOR) as c:
        items = c.get("/contact/contacts").json()["items"]
        assert len(items) == 2 and all(i["summary"] is None for i in items)
        full = c.get(f"/contact/contacts/{mine['id']}").json()
        assert full["summary"] is None and full["issues"] == ["social_isolation"]
    with stack.client(Role.PARTNER) as c:
        assert c.get("/contact/contacts").status_code == 403


def test_contacts_list_pages_and_filters_by_date(stack: Stack) -> None:
    for minutes in (50, 40, 30, 20, 10):
        _log(stack, started_at=_recent(minutes))
    with stack.client() as c:
        page = c.get("/contact/contacts", params={"limit": 2}).json()
        assert len(page["items"]) == 2 and page["next_cursor"]
        rest = c.get("/contact/contacts",
                     params={"limit": 10, "cursor": page["next_cursor"]}).json()
        assert len(rest["items"]) == 3 and rest["next_cursor"] is None
        starts = [i["started_at"] for i in page["items"] + rest["items"]]
        assert starts == sorted(starts, reverse=True)
        window = c.get("/contact/contacts", params={"from": _recent(35), "to": _recent(15)})
        assert len(window.json()["items"]) == 2
        r = c.get("/contact/contacts", params={"cursor": "nonsense"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "query.cursor"


def test_risk_trail_escalation_and_closing_rule(stack: Stack) -> None:
    contact = _log(stack, issues=["suicidal_thoughts"])
    url = f"/contact/contacts/{contact['id']}"
    with stack.client(Role.SUPPORTER, sub=contact["supporter_ids"][0]) as c:
        r = c.post(f"{url}/risk-assessments", json={
            "level": "immediate", "factors": "plan and means", "decision": "stay on the line",
            "reasoning": "said they had tablets"})
        assert r.status_code == 201 and r.headers["location"].endswith("/risk-assessments/1")
        assert r.json()["id"] == f"{contact['id']}/1"
        assert r.json()["reasoning"] == "said they had tablets"
        before = stored_events(stack)
        r = c.post(f"{url}/close", json={})
        assert r.status_code == 422 and "immediate" in r.json()["detail"]
        assert stored_events(stack) == before
        r = c.post(f"{url}/escalations", json={"kind": "emergency_services",
                                                "reason": "ambulance called",
                                                "reference": "CAD 1234"})
        assert r.status_code == 201 and r.json()["kind"] == "emergency_services"
        r = c.post(f"{url}/risk-assessments", json={"level": "medium", "decision": "safety plan"})
        assert r.status_code == 201 and r.json()["supersedes"] == 1
        trail = c.get(url).json()["risk_trail"]
        assert [t["level"] for t in trail] == ["immediate", "medium"]
        assert c.get(f"{url}/risk-assessments/1").json()["decision"] == "stay on the line"
        assert c.get(f"{url}/risk-assessments/9").status_code == 404
        r = c.post(f"{url}/close", json={})
        assert r.status_code == 200 and r.json()["closed"] is True
        assert c.post(f"{url}/close", json={}).status_code == 422
        bad = c.post(f"{url}/risk-assessments", json={"level": "extreme", "decision": "x"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.level"
    with stack.client(Role.AUDITOR) as c:
        trail = c.get(url).json()["risk_trail"]
        assert trail[0]["level"] == "immediate" and trail[0]["reasoning"] is None
    with stack.client(Role.AUDITOR) as c:
        types = [e["type"] for e in c.get("/contact/events").json()["items"]]
    assert {"RiskAssessed", "ContactEscalated", "ContactClosed"} <= set(types)


def test_immediate_risk_closes_with_a_reason_for_no_escalation(stack: Stack) -> None:
    contact = _log(stack, issues=["overdose"])
    url = f"/contact/contacts/{contact['id']}"
    with stack.client(Role.SUPPORTER, sub=contact["supporter_ids"][0]) as c:
        c.post(f"{url}/risk-assessments", json={"level": "immediate", "decision": "x"})
        r = c.post(f"{url}/close",
                   json={"no_escalation_reason": "caller already with paramedics"})
        assert r.status_code == 200 and r.json()["closed"]


def test_missed_calls_follow_ups_and_reporting(stack: Stack) -> None:
    shift = "6a1f2e5d-7c90-4b8e-9d3c-0b7f8b8e4f2a"
    missed = _log(stack, answered=False, issues=[], phone="07700 900777", shift_id=shift)
    assert missed["follow_ups"][0]["kind"] == "call_back"
    now = datetime.now(UTC)
    tonight = _rota(stack).shift(now - timedelta(hours=1), now + timedelta(hours=5))
    withheld = _log(stack, answered=False, issues=[])  # no call-back possible
    assert withheld["shift_id"] == tonight  # the rota's shift on at its start
    with stack.client(Role.SUPPORTER, sub="sup-1") as c:
        r = c.post("/contact/contacts", json=contact_body(channel="text", answered=False,
                                                          issues=[]))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.answered"
        later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        due = c.get("/contact/follow-ups", params={"due_before": later}).json()["items"]
        assert [(d["contact_id"], d["kind"]) for d in due] == [(missed["id"], "call_back")]
        r = c.post(f"/contact/contacts/{missed['id']}/follow-ups/1/complete",
                   json={"outcome": "rang back, all fine"})
        assert r.status_code == 200
        assert c.get("/contact/follow-ups", params={"due_before": later}).json()["items"] == []
        assert c.post(f"/contact/contacts/{missed['id']}/follow-ups/1/complete",
                      json={}).status_code == 422
        assert c.post(f"/contact/contacts/{missed['id']}/follow-ups/7/complete",
                      json={}).status_code == 404
    _log(stack)  # one answered call
    month = london_month(datetime.now(UTC))
    with stack.client(Role.COORDINATOR) as c:
        def report() -> dict[str, Any]:
            return dict(c.get("/reporting/monthly", params={"month": month}).json())
        def calls() -> int:
            contacts = report()["contacts"]
            return int(contacts["total"]) + int(contacts["missed_calls"])
        wait_for(lambda: calls() == 3, what="reporting to count the calls")
        r = report()["contacts"]
        assert r["total"] == 1 and r["missed_calls"] == 2


def test_distressing_call_publishes_a_debrief_request(stack: Stack) -> None:
    pair = [_rota(stack).supporter(), _rota(stack).supporter()]
    _log(stack, distressing=True, supporter_ids=pair)
    with stack.client(Role.AUDITOR) as c:
        events = c.get("/contact/events").json()["items"]
    debrief = [e for e in events if e["type"] == "DebriefRequested"]
    assert debrief and debrief[0]["data"]["supporter_ids"] == pair


def test_referrals_queue_and_decisions(stack: Stack) -> None:
    with stack.client(Role.PARTNER, sub="lambeth-gp-system") as c:
        before = stored_events(stack)
        r = c.post("/contact/referrals", json={"source": "gp", "consent_to_contact": False,
                                                "caller": {"alias": "Pat"}})
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "body.consent_to_contact"
        assert stored_events(stack) == before
        r = c.post("/contact/referrals", json={
            "source": "gp", "referrer_organisation": "Stockwell Practice",
            "caller": {"alias": "Pat", "phone": "07700 900321", "age_band": "41_50"},
            "reason": "low mood since redundancy", "consent_to_contact": True})
        assert r.status_code == 201, r.text
        referral = r.json()
        assert r.headers["location"] == f"/contact/referrals/{referral['id']}"
        mine = c.get("/contact/referrals").json()["items"]  # its own, as status only
        assert [(i["id"], i["reason"]) for i in mine] == [(referral["id"], None)]
    with stack.client(Role.COORDINATOR) as c:
        queue = c.get("/contact/referrals", params={"status": "received"}).json()["items"]
        assert [q["id"] for q in queue] == [referral["id"]]
        assert queue[0]["reason"] == "low mood since redundancy"
        r = c.post(f"/contact/referrals/{referral['id']}/accept", json={"reason": "in area"})
        assert r.status_code == 200 and r.json()["status"] == "accepted"
        assert c.post(f"/contact/referrals/{referral['id']}/decline",
                      json={"reason": "x"}).status_code == 422
        assert c.get("/contact/referrals", params={"status": "received"}).json()["items"] == []
        assert c.get("/contact/referrals", params={"status": "lost"}).status_code == 422
        # An existing caller, and an old paper record entered with its date.
        known = c.get("/contact/callers/lookup", params={"phone": "07700900321"}).json()
        r = c.post("/contact/referrals", json={
            "source": "self", "caller_ref": known["caller_ref"], "consent_to_contact": True,
            "received_at": "2026-10-03T11:00:00+01:00"})
        assert r.status_code == 201 and r.json()["received_at"].startswith("2026-10-03T10:00")


def test_directory_search_by_need_and_london_opening_hours(stack: Stack) -> None:
    entry = {"name": "Cruse Bereavement Support", "helps_with": ["bereavement"],
             "phone": "0808 808 1677",
             "opening_hours": [{"day": "sun", "opens": "18:00", "closes": "23:00"}],
             "address": "Lambeth", "notes": "Evening line at weekends"}
    with stack.client(Role.COORDINATOR) as c:
        r = c.post("/contact/directory", json=entry)
        assert r.status_code == 201
        cruse = r.json()
        r = c.post("/contact/directory", json={
            "name": "Housing advice", "helps_with": ["housing"],
            "opening_hours": [{"day": "mon", "opens": "09:00", "closes": "17:00"}]})
        housing = r.json()
        bad = c.post("/contact/directory", json={**entry, "helps_with": ["unicorns"]})
        assert bad.status_code == 422
    sunday_22 = "2026-11-29T22:00:00+00:00"  # Sunday, GMT
    with stack.client(Role.SUPPORTER, sub="sup-1") as c:
        found = c.get("/contact/directory",
                      params={"need": "bereavement", "open_at": sunday_22}).json()["items"]
        assert [f["id"] for f in found] == [cruse["id"]]
        assert c.get("/contact/directory", params={"need": "bereavement",
                                                   "open_at": "2026-11-29T23:30:00+00:00"}
                     ).json()["items"] == []
        assert len(c.get("/contact/directory").json()["items"]) == 2
        # Signposting names directory entries; an unknown one is refused.
        ok = c.post("/contact/contacts", json=contact_body(
            started_at=_recent(), ended_at=None, signposted_to=[cruse["id"]]))
        assert ok.status_code == 201 and ok.json()["signposted_to"] == [cruse["id"]]
        unknown = c.post("/contact/contacts", json=contact_body(
            started_at=_recent(), ended_at=None,
            signposted_to=["00000000-0000-4000-8000-000000000000"]))
        assert unknown.status_code == 422
        assert c.post("/contact/directory", json=entry).status_code == 403
    with stack.client(Role.COORDINATOR) as c:
        url = f"/contact/directory/{housing['id']}"
        stale = c.put(url, json={**entry, "name": "Renamed"}, headers={"If-Match": '"9"'})
        assert stale.status_code == 412
        r = c.put(url, json={"name": "Lambeth Housing Advice", "helps_with": ["housing"]},
                  headers={"If-Match": '"1"'})
        assert r.status_code == 200 and r.json()["version"] == 2
        assert c.delete(url).status_code == 204
        assert c.get(url).status_code == 404
        assert c.delete(url).status_code == 404
        # Reports count signposting per service, by the service's name.
        month = london_month(datetime.now(UTC))
        wait_for(lambda: c.get("/reporting/monthly", params={"month": month}
                               ).json()["contacts"]["signposting"]
                         == {"Cruse Bereavement Support": 1},
                 what="signposting counted")


def test_erasure_shreds_personal_data_but_keeps_the_counts(stack: Stack) -> None:
    caller = _caller(stack, alias="Marigold", phone="07700 900555")
    ref = caller["caller_ref"]
    contact = _log(stack, caller_ref=ref, summary="Spoke about Marigold's sister",
                   issues=["bereavement"])
    month = london_month(datetime.now(UTC))
    with stack.client(Role.COORDINATOR) as c:
        def counted() -> int:
            report = c.get("/reporting/monthly", params={"month": month}).json()
            return int(report["contacts"]["total"])
        wait_for(lambda: counted() == 1, what="the contact counted")
        with stack.client(Role.SUPPORTER) as s:
            assert s.delete(f"/contact/callers/{ref}/personal-data").status_code == 403
        r = c.delete(f"/contact/callers/{ref}/personal-data")
        assert r.status_code == 200 and r.json() == {"caller_ref": ref, "erased": True}
        again = c.delete(f"/contact/callers/{ref}/personal-data")  # idempotent
        assert again.status_code == 200 and again.json()["erased"] is True
        assert c.get("/contact/callers/lookup", params={"phone": "07700900555"}).status_code == 404
        got = c.get(f"/contact/callers/{ref}").json()
        assert got["alias"] == "[erased]" and got["erased"] is True
        assert got["has_phone"] is False
        full = c.get(f"/contact/contacts/{contact['id']}").json()
        assert full["summary"] == "[erased]" and full["issues"] == ["bereavement"]
        listed = c.get("/contact/contacts", params={"caller_ref": ref}).json()["items"]
        assert listed[0]["summary"] == "[erased]"
        # The coded history stays readable, and the read is still recorded.
        history = c.get(f"/contact/callers/{ref}/history", params={"purpose": "check"})
        assert history.status_code == 200
        assert history.json()["items"][0]["summary"] == "[erased]"
        assert history.json()["items"][0]["issues"] == ["bereavement"]
        # The store still has every event, and reporting's counts are unchanged.
        events = c.get("/contact/events", params={"limit": 1000}).json()["items"]
        assert [e["type"] for e in events].count("CallerErased") == 1
        assert [e["type"] for e in events].count("CallerHistoryRead") == 1
        time.sleep(0.5)
        assert counted() == 1
        # The same number can be registered afresh, as a new caller.
        again = c.post("/contact/callers", json={"phone": "07700 900555"})
        assert again.status_code == 201 and again.json()["caller_ref"] != ref





BAD_INPUT: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/contact/callers", {"gender": "woman"}, "body.gender"),
    ("POST", "/contact/callers", {"age_band": 30}, "body.age_band"),
    ("POST", "/contact/callers", {"consent_to_text": "maybe"}, "body.consent_to_text"),
    ("POST", "/contact/callers", {"alias": "x" * 201}, "body.alias"),
    ("POST", "/contact/callers", {"phone": "+33 6 12 34 56 78"}, "body.phone"),
    ("POST", "/contact/callers", {"nickname": "Jo"}, "body.nickname"),
    ("POST", "/contact/contacts", contact_body(direction="sideways"), "body.direction"),
    ("POST", "/contact/contacts", contact_body(caller_is="neighbour"), "body.caller_is"),
    ("POST", "/contact/contacts", contact_body(caller_ref="bob"), "body.caller_ref"),
    ("POST", "/contact/contacts", contact_body(caller_ref="C-ZZZZZZZZ"), "caller_ref"),
    ("POST", "/contact/contacts", contact_body(shift_id="tonight"), "body.shift_id"),
    ("POST", "/contact/contacts", contact_body(supporter_ids="sup-1"), "body.supporter_ids"),
    ("POST", "/contact/contacts", contact_body(supporter_ids=["sup-1"]),
     "body.supporter_ids.0"),
    ("POST", "/contact/contacts", contact_body(
        supporter_ids=["00000000-0000-4000-8000-000000000009"]), "body.supporter_ids"),
    ("POST", "/contact/contacts", contact_body(summary="x" * 5001), "body.summary"),
    ("POST", "/contact/contacts", contact_body(distressing="very"), "body.distressing"),
    ("POST", "/contact/contacts", contact_body(follow_up={"by": "soon"}), "body.follow_up.by"),
    ("POST", "/contact/contacts", contact_body(phone="not a number", answered=False, issues=[]),
     "body.phone"),
    ("POST", "/contact/referrals", {"source": "police", "consent_to_contact": True,
                                    "caller": {}}, "body.source"),
    ("POST", "/contact/referrals", {"source": "gp", "consent_to_contact": True},
     "body.caller_ref"),
    ("POST", "/contact/referrals", {"source": "gp", "consent_to_contact": True, "caller": {},
                                    "received_at": "2099-01-01T00:00:00+00:00"},
     "body.received_at"),
    ("POST", "/contact/directory", {"name": "X", "helps_with": ["housing"],
                                    "opening_hours": [{"day": "sunday", "opens": "09:00",
                                                       "closes": "17:00"}]},
     "body.opening_hours.0.day"),
    ("POST", "/contact/directory", {"name": "X", "helps_with": []}, "body.helps_with"),
]


def test_bad_input_is_422_naming_the_field_and_stores_nothing(stack: Stack) -> None:
    with stack.client(Role.COORDINATOR) as c:
        contact = c.post("/contact/contacts", json=contact_body(started_at=_recent(),
                                                                ended_at=None)).json()
        url = f"/contact/contacts/{contact['id']}"
        cases = [
            *BAD_INPUT,
            ("POST", f"{url}/risk-assessments", {"level": "high"}, "body.decision"),
            ("POST", f"{url}/risk-assessments", {"level": 3, "decision": "x"}, "body.level"),
            ("POST", f"{url}/escalations", {"kind": "police", "reason": "x"}, "body.kind"),
            ("POST", f"{url}/escalations", {"kind": "gp"}, "body.reason"),
            ("PATCH", url, {"reason": "x", "ended_at": "2020-01-01T00:00:00+00:00"},
             "body.ended_at"),
        ]
        before = stored_events(stack)
        for method, path, body, field in cases:
            r = c.request(method, path, json=body)
            assert r.status_code == 422, (path, body, r.status_code, r.text)
            assert r.headers["content-type"] == PROBLEM
            fields = [e["field"] for e in r.json().get("errors", [])]
            assert field in fields or field in r.json()["detail"], (path, body, r.json())
        assert stored_events(stack) == before


def test_nothing_personal_can_be_recorded_for_an_erased_caller(stack: Stack) -> None:
    caller = _caller(stack, phone="07700 900888")
    ref = caller["caller_ref"]
    contact = _log(stack, caller_ref=ref, summary="before erasure")
    with stack.client(Role.COORDINATOR) as c:
        assert c.delete(f"/contact/callers/{ref}/personal-data").status_code == 200
        before = stored_events(stack)
        url = f"/contact/contacts/{contact['id']}"
        for method, path, body in [
            ("POST", "/contact/contacts", contact_body(caller_ref=ref, summary="after")),
            ("POST", f"{url}/risk-assessments", {"level": "low", "decision": "after"}),
            ("POST", f"{url}/escalations", {"kind": "gp", "reason": "after"}),
            ("PATCH", f"/contact/callers/{ref}", {"consent_to_text": True}),
        ]:
            r = c.request(method, path, json=body)
            assert r.status_code == 422, (path, r.status_code, r.text)
        assert stored_events(stack) == before
        assert c.get(url).json()["summary"] == "[erased]"


def test_every_list_pages_with_a_cursor(stack: Stack) -> None:
    def pages(c: Any, path: str, **params: Any) -> list[list[str]]:
        out, cursor = [], None
        while True:
            q = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
            body = c.get(path, params=q).json()
            out.append([i.get("id") or f"{i['contact_id']}/{i['n']}" for i in body["items"]])
            cursor = body["next_cursor"]
            if cursor is None:
                return out

    with stack.client(Role.COORDINATOR, sub="coord-1") as c:
        for name in ("Alpha", "Bravo", "Charlie"):
            c.post("/contact/directory", json={"name": name, "helps_with": ["housing"]})
            c.post("/contact/referrals", json={"source": "self", "consent_to_contact": True,
                                                "caller": {"alias": name}})
        for digits in ("101", "102", "103"):
            c.post("/contact/contacts", json=contact_body(
                started_at=_recent(), ended_at=None, answered=False, issues=[],
                phone=f"07700 900{digits}"))
        later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        for path, params in (("/contact/directory", {}), ("/contact/referrals", {}),
                             ("/contact/follow-ups", {"due_before": later}),
                             ("/contact/contacts", {})):
            got = pages(c, path, **params)
            flat = [i for page in got for i in page]
            assert [len(p) for p in got] == [2, 1], (path, got)
            assert len(set(flat)) == 3, path
        assert c.get("/contact/referrals", params={"cursor": "bad"}).status_code == 422
        # A cursor of one list is not accepted by another.
        other = c.get("/contact/directory", params={"limit": 1}).json()["next_cursor"]
        r = c.get("/contact/referrals", params={"cursor": other})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "query.cursor"


# ------------------------------------------------------------ hardening (issue 7)

OUT_OF_RANGE = ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00")


def _field_of(r: Any) -> list[str]:
    return [e["field"] for e in r.json().get("errors", [])]


def test_times_are_iso_strings_with_an_offset_in_range_or_422(stack: Stack) -> None:
    """A time is an ISO 8601 string with an offset: never a number, never a value whose
    UTC form overflows (422, not 500), whichever field or query parameter holds it."""
    with stack.client(Role.COORDINATOR) as c:
        contact = c.post("/contact/contacts", json=contact_body(started_at=_recent(),
                                                                ended_at=None)).json()
        before = stored_events(stack)
        cases: list[tuple[str, str, Any, str]] = []
        for bad in (0, "0", "1700000000", 1.5, *OUT_OF_RANGE):
            cases += [
                ("POST", "/contact/contacts", contact_body(started_at=bad, ended_at=None),
                 "body.started_at"),
                ("POST", "/contact/contacts", contact_body(started_at=_recent(), ended_at=bad),
                 "body.ended_at"),
                ("POST", "/contact/contacts", contact_body(
                    started_at=_recent(), ended_at=None, follow_up={"by": bad}),
                 "body.follow_up.by"),
                ("POST", "/contact/referrals", {"source": "gp", "consent_to_contact": True,
                                                "caller": {}, "received_at": bad},
                 "body.received_at"),
                ("PATCH", f"/contact/contacts/{contact['id']}",
                 {"reason": "typo", "ended_at": bad}, "body.ended_at"),
            ]
        for method, path, body, field in cases:
            r = c.request(method, path, json=body)
            assert r.status_code == 422, (path, body, r.status_code, r.text)
            assert field in _field_of(r), (path, body, r.json())
        # Plausible is the domain's rule, answered the same way: 422 naming the field.
        r = c.post("/contact/contacts", json=contact_body(
            started_at="1999-12-31T23:59:59+00:00", ended_at=None))
        assert r.status_code == 422 and _field_of(r) == ["body.started_at"]
        assert stored_events(stack) == before
        for path, name in (("/contact/contacts", "from"), ("/contact/contacts", "to"),
                           ("/contact/follow-ups", "due_before"),
                           ("/contact/directory", "open_at")):
            for bad in (*OUT_OF_RANGE, "0", "1700000000"):
                r = c.get(path, params={name: bad})
                assert r.status_code == 422, (path, name, bad, r.status_code, r.text)
                assert _field_of(r) == [f"query.{name}"], (path, name, bad, r.json())


def test_supporter_ids_name_supporters_of_the_rota_or_422(stack: Stack) -> None:
    """No more free text in supporter_ids: a name or a comma is not an id (422 naming the
    item), and an id the shift service never published, or deactivated, is 422 too;
    nothing is stored and the value is not echoed."""
    rota = _rota(stack)
    known, gone = rota.supporter(), rota.supporter()
    rota.deactivate(gone)
    before = stored_events(stack)
    with stack.client(Role.SUPPORTER, sub=known) as c:
        for ids, field in ((["Wilhelmina Frobisher"], "body.supporter_ids.0"),
                           ([known, "other,supp-b"], "body.supporter_ids.1"),
                           ([known, gone], "body.supporter_ids"),
                           ([str(uuid.uuid4())], "body.supporter_ids")):
            r = c.post("/contact/contacts", json=contact_body(supporter_ids=ids))
            assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
            assert _field_of(r) == [field], r.text
            assert "Wilhelmina" not in r.text and "supp-b" not in r.text
        assert stored_events(stack) == before
        r = c.post("/contact/contacts", json=contact_body(supporter_ids=[known.upper()],
                                                          summary="Private words"))
        assert r.status_code == 201 and r.json()["supporter_ids"] == [known]
        assert r.json()["summary"] == "Private words"
    with stack.client(Role.SUPPORTER, sub=f"{known},{gone}") as c:
        assert c.get("/contact/contacts").json()["items"][0]["summary"] is None


def test_bad_cursors_long_strings_and_huge_numbers_are_422_never_500(stack: Stack) -> None:
    contact = _log(stack, answered=False, issues=[], phone="07700 900101")
    url = f"/contact/contacts/{contact['id']}"
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    with stack.client(Role.SUPPORTER, sub="sup-1") as c:
        due = contact["follow_ups"][0]["due_by"]
        for n in ("99999999999999999999", "\u00b2"):
            cursor = readtables.encode_cursor("follow-ups", due, contact["id"], n)
            r = c.get("/contact/follow-ups", params={"due_before": later, "cursor": cursor})
            assert r.status_code == 422 and _field_of(r) == ["query.cursor"], r.text
        for path in (f"{url}/risk-assessments/{10**30}", f"{url}/escalations/{10**30}"):
            r = c.get(path)
            assert r.status_code == 422 and _field_of(r) == ["path.n"], (path, r.text)
        r = c.post(f"{url}/follow-ups/{10**30}/complete", json={})
        assert r.status_code == 422 and _field_of(r) == ["path.n"], r.text
        before = stored_events(stack)
        r = c.post("/contact/contacts", json=contact_body(supporter_ids=["s" * 101]))
        assert r.status_code == 422 and _field_of(r) == ["body.supporter_ids.0"], r.text
        assert stored_events(stack) == before


def test_a_partner_learns_nothing_of_who_calls_the_line(stack: Stack) -> None:
    known = _caller(stack, phone="07700 900321")
    erased = _caller(stack, phone="07700 900322")
    with stack.client(Role.COORDINATOR) as c:
        assert c.delete(f"/contact/callers/{erased['caller_ref']}/personal-data"
                        ).status_code == 200
    referral = {"source": "gp", "referrer_organisation": "Stockwell Practice",
                "reason": "low mood", "consent_to_contact": True}
    with stack.client(Role.PARTNER, sub="gp-system") as c:
        answers = {}
        for who, phone in (("known", "07700 900321"), ("new", "07700 900323"),
                           ("erased", "07700 900322")):
            r = c.post("/contact/referrals", json={**referral, "caller": {
                "alias": "Pat", "phone": phone}})
            assert r.status_code == 201, (who, r.text)
            answers[who] = r.json()
        shapes = {tuple(sorted(a)) for a in answers.values()}
        assert len(shapes) == 1
        assert {a["caller_ref"] for a in answers.values()} == {None}
        assert len({(a["status"], a["version"], a["reason"]) for a in answers.values()}) == 1
        problems = []
        for ref in (known["caller_ref"], "C-ZZZZZZZZ", erased["caller_ref"]):
            r = c.post("/contact/referrals", json={**referral, "caller_ref": ref})
            problems.append((r.status_code, r.json()["detail"], _field_of(r)))
        assert len(set(map(repr, problems))) == 1 and problems[0][0] == 422
        assert problems[0][2] == ["body.caller_ref"]
    with stack.client(Role.COORDINATOR) as c:  # inside, matched to the known caller
        got = c.get(f"/contact/referrals/{answers['known']['id']}").json()
        assert got["caller_ref"] == known["caller_ref"]
        assert got["referrer_organisation"] == "Stockwell Practice"
        caller = c.get(f"/contact/callers/{known['caller_ref']}").json()
        assert caller["alias"] == "Sunny"  # not written over by the referrer
        r = c.post("/contact/referrals", json={**referral, "caller_ref": known["caller_ref"]})
        assert r.status_code == 201 and r.json()["caller_ref"] == known["caller_ref"]
        c.delete(f"/contact/callers/{known['caller_ref']}/personal-data")
        got = c.get(f"/contact/referrals/{answers['known']['id']}").json()
        assert got["referrer_organisation"] == "[erased]"


def test_an_idempotent_retry_gets_the_first_answer_not_the_state_since(stack: Stack) -> None:
    key = {"Idempotency-Key": "retry-1"}
    body = {"source": "gp", "consent_to_contact": True, "caller": {"alias": "Pat"},
            "reason": "low mood"}
    with stack.client(Role.PARTNER, sub="gp-system") as partner:
        first = partner.post("/contact/referrals", json=body, headers=key)
        assert first.status_code == 201
    with stack.client(Role.COORDINATOR, sub="coord-1") as c:
        decided = c.post(f"/contact/referrals/{first.json()['id']}/decline",
                         json={"reason": "out of area, private note"})
        assert decided.status_code == 200
        entry = c.post("/contact/directory", headers=key,
                       json={"name": "Night Line", "helps_with": ["bereavement"]})
        assert entry.status_code == 201
        assert c.delete(entry.headers["location"]).status_code == 204
        again = c.post("/contact/directory", headers=key,
                       json={"name": "Night Line", "helps_with": ["bereavement"]})
        assert (again.status_code, again.json()) == (201, entry.json())
        assert again.headers["location"] == entry.headers["location"]
    with stack.client(Role.PARTNER, sub="gp-system") as partner:
        replay = partner.post("/contact/referrals", json=body, headers=key)
    assert replay.status_code == 201 and replay.json() == first.json()
    assert replay.json()["status"] == "received" and replay.json()["decided_by"] is None
    assert "private note" not in replay.text
    assert (replay.headers["location"], replay.headers["etag"]) == (
        first.headers["location"], first.headers["etag"])
