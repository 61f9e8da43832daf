"""The shift service over real HTTP (SQLite): status codes, problems, headers, roles and
bad input; the use cases themselves are the application tier's (``test_app.py``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.shift.domain import LONDON
from shared.web.auth import Role
from tests.support import PROBLEM, Stack, contact_body, wait_for

NOW = datetime.now(UTC)
TODAY = NOW.astimezone(LONDON).date()
HOUR = timedelta(hours=1)
ALL_ITEMS = {"phone": True, "phone_charged": True, "resource_booklet": True,
             "service_directory": True}


def _events(stack: Stack) -> int:
    return int(stack.runtime("shift").app.max_notification_id())


def _supporter(c: httpx.Client, trained: bool = True, **fields: Any) -> dict[str, Any]:
    body = {"name": "Ann Example", "phone": "07700 900123", "email": "ann@example.org",
            "start_date": "2026-01-05"}
    body.update(fields)
    r = c.post("/shift/supporters", json=body)
    assert r.status_code == 201, r.text
    s = dict(r.json())
    if trained:
        for course in ("induction", "mental_health_first_aid", "safeguarding_adults"):
            r = c.post(f"/shift/supporters/{s['id']}/training",
                       json={"course": course, "completed_on": "2026-01-10"})
            assert r.status_code == 200, r.text
            s = dict(r.json())
    return s


def _extra(c: httpx.Client, starts: datetime, hours: float = 6, required: int = 2
           ) -> dict[str, Any]:
    r = c.post("/shift/shifts", json={"starts_at": starts.isoformat(),
                                      "ends_at": (starts + hours * HOUR).isoformat(),
                                      "required": required})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _errors(r: httpx.Response) -> list[str]:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM
    return sorted(e["field"] for e in r.json()["errors"])


def _week(days_ahead: int) -> str:
    iso = (TODAY + timedelta(days=days_ahead)).isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


def test_supporters_register_once_per_key_train_and_show_what_is_missing(
        stack: Stack) -> None:
    with stack.client() as c:
        body = {"name": "Ann Example", "phone": "07700 900123", "start_date": "2026-01-05"}
        r = c.post("/shift/supporters", json=body, headers={"Idempotency-Key": "reg-1"})
        assert r.status_code == 201 and r.headers["etag"] == '"1"'
        s = r.json()
        assert r.headers["location"] == f"/shift/supporters/{s['id']}"
        assert (s["name"], s["phone"], s["role"], s["eligible"]) == (
            "Ann Example", "+447700900123", "supporter", False)
        assert s["missing"] == ["induction", "mental_health_first_aid", "safeguarding_adults"]
        again = c.post("/shift/supporters", json=body, headers={"Idempotency-Key": "reg-1"})
        assert again.json() == s and _events(stack) == 1
        r = c.post(f"/shift/supporters/{s['id']}/training", headers={"If-Match": '"7"'},
                   json={"course": "induction", "completed_on": "2026-01-10"})
        assert r.status_code == 412 and r.headers["etag"] == '"1"'
        trained = _supporter(c)
        assert trained["eligible"] and trained["missing"] == []
        r = c.post(f"/shift/supporters/{trained['id']}/supervisions",
                   json={"kind": "group", "on": TODAY.isoformat(), "notes": "all well"})
        assert r.status_code == 200
        assert r.json()["last_supervision"] == TODAY.isoformat()
        assert r.json()["supervisions"][0]["notes"] == "all well"
        assert not r.json()["supervision_overdue"]
        r = c.get(f"/shift/supporters/{trained['id']}")
        assert r.headers["etag"] == f'"{r.json()["version"]}"'
        page = c.get("/shift/supporters", params={"limit": 1}).json()
        assert [p["id"] for p in page["items"]] == [s["id"]] and page["next_cursor"]
        assert c.get(f"/shift/supporters/{uuid.uuid4()}").status_code == 404


def test_who_may_do_what(stack: Stack) -> None:
    with stack.client(Role.SUPPORTER) as c:
        assert c.post("/shift/supporters", json={}).status_code == 403
        assert c.get("/shift/coverage").status_code == 403
        assert c.get("/shift/rota/template").status_code == 200
        r = c.get("/shift/shifts", params={"from": NOW.isoformat(),
                                           "to": (NOW + HOUR).isoformat()})
        assert r.status_code == 200
    with stack.client(Role.PARTNER) as c:
        assert c.get("/shift/on-call").status_code == 200
        assert c.get("/shift/shifts/" + str(uuid.uuid4())).status_code == 403
    with stack.client(Role.AUDITOR) as c:
        assert c.get("/shift/on-call").status_code == 403
    with stack.client(None) as c:
        r = c.get("/shift/on-call")
        assert r.status_code == 401 and r.headers["content-type"] == PROBLEM


def test_bad_input_is_422_naming_the_field_and_stores_nothing(stack: Stack) -> None:
    with stack.client() as c:
        r = c.post("/shift/supporters", json={"name": " ", "start_date": 20260105,
                                              "email": "not-an-email", "role": "boss",
                                              "surprise": 1})
        assert _errors(r) == ["body.email", "body.name", "body.role", "body.start_date",
                              "body.surprise"]
        for day in ("2026-01-05T00:00:00Z", "05/01/2026", "2026-02-30"):
            r = c.post("/shift/supporters", json={"name": "Bo", "start_date": day})
            assert _errors(r) == ["body.start_date"], day
        r = c.post("/shift/supporters", json={"name": "Bo", "start_date": "1999-12-31"})
        assert _errors(r) == ["body.start_date"] and r.json()["errors"][0]["code"] == "rule"
        r = c.post("/shift/supporters", json={"name": "Bo", "phone": "12345 678",
                                              "start_date": "2026-01-05"})
        assert _errors(r) == ["body.phone"]
        assert _errors(c.post("/shift/rota/weeks/2026-W54/publish")) == ["path.iso_week"]
        assert _errors(c.post("/shift/rota/weeks/2026-49/publish")) == ["path.iso_week"]
        far = c.post(f"/shift/rota/weeks/{_week(800)}/publish")
        assert _errors(far) == ["path.iso_week"] and "its shifts" in far.json()["detail"]
        r = c.put("/shift/rota/template", json={"slots": [
            {"weekday": "sat", "starts": "25:00", "ends": "02:00", "required": 11}]})
        assert _errors(r) == ["body.slots.0.required", "body.slots.0.starts"]
        r = c.put("/shift/rota/template", json={"slots": [
            {"weekday": "sat", "starts": "20:00", "ends": "02:00"},
            {"weekday": "sat", "starts": "20:00", "ends": "23:00"}]})
        assert _errors(r) == ["body.slots.1.starts"]
        r = c.post("/shift/shifts", json={"starts_at": NOW.isoformat(),
                                          "ends_at": (NOW - HOUR).isoformat()})
        assert _errors(r) == ["body.ends_at"]
        assert _errors(c.get("/shift/shifts")) == ["query.from", "query.to"]
        r = c.get("/shift/shifts", params={"from": NOW.isoformat(), "to": NOW.isoformat()})
        assert _errors(r) == ["query.to"]
        r = c.get("/shift/coverage", params={"cursor": "not-a-cursor"})
        assert _errors(r) == ["query.cursor"]
        assert _errors(c.get("/shift/debriefs", params={"status": "late"})) == ["query.status"]
        r = c.post(f"/shift/bags/{uuid.uuid4()}/handovers",
                   json={"from_supporter_id": " x", "to_supporter_id": "y",
                         "items_checked": {"phone": "maybe", "torch": True}})
        assert _errors(r) == ["body.from_supporter_id", "body.items_checked.phone",
                              "body.items_checked.torch"]
    assert _events(stack) == 0


def test_publish_read_assign_swap_and_unassign(stack: Stack) -> None:
    with stack.client() as c:
        week = _week(14)
        r = c.post(f"/shift/rota/weeks/{week}/publish")
        assert r.status_code == 200 and r.json()["created"] == 5
        shifts = r.json()["shifts"]
        assert c.post(f"/shift/rota/weeks/{week}/publish").json()["created"] == 0
        window = {"from": shifts[0]["starts_at"], "to": shifts[-1]["ends_at"]}
        listed = c.get("/shift/shifts", params=window).json()["items"]
        assert [s["id"] for s in listed] == [s["id"] for s in shifts]
        assert {s["coverage"] for s in listed} == {"empty"}
        a, b, x = _supporter(c), _supporter(c), _supporter(c)
        untrained = _supporter(c, trained=False)
        first = shifts[0]["id"]
        r = c.post(f"/shift/shifts/{first}/assignments", json={"supporter_id": a["id"]})
        assert r.status_code == 201 and r.headers["etag"] == '"2"'
        assert r.headers["location"] == f"/shift/shifts/{first}/assignments/{a['id']}"
        assert r.json()["coverage"] == "short"
        r = c.post(f"/shift/shifts/{first}/assignments", json={"supporter_id": untrained["id"]})
        assert r.status_code == 409 and "not eligible" in r.json()["detail"]
        r = c.post(f"/shift/shifts/{first}/assignments", json={"supporter_id": b["id"]},
                   headers={"If-Match": '"1"'})
        assert r.status_code == 412
        c.post(f"/shift/shifts/{first}/assignments", json={"supporter_id": b["id"]})
        r = c.post(f"/shift/shifts/{first}/assignments", json={"supporter_id": x["id"]})
        assert r.status_code == 409 and "already has its 2" in r.json()["detail"]
        r = c.post(f"/shift/shifts/{first}/assignments",
                   json={"supporter_id": str(uuid.uuid4())})
        assert _errors(r) == ["body.supporter_id"]
        r = c.post(f"/shift/shifts/{first}/swaps",
                   json={"from_supporter_id": b["id"], "to_supporter_id": x["id"]})
        assert r.status_code == 200 and r.json()["assignments"] == sorted([a["id"], x["id"]])
        path = f"/shift/shifts/{first}/assignments/{a['id']}"
        assert _errors(c.delete(path)) == ["body"]
        r = c.request("DELETE", path, json={"reason": "unwell"})
        assert r.status_code == 200 and r.json()["assignments"] == [x["id"]]
        assert c.request("DELETE", path, json={"reason": "again"}).status_code == 404
        gaps = c.get("/shift/coverage", params=window).json()["items"]
        assert len(gaps) == 5 and gaps[0]["coverage"] == "short"
        r = c.post(f"/shift/supporters/{x['id']}/deactivate", json={"reason": "moved"})
        assert r.status_code == 200 and not r.json()["active"]
        assert c.get(f"/shift/shifts/{first}").json()["assignments"] == []


def test_the_supporter_themself_checks_in_and_on_call_shows_it(stack: Stack) -> None:
    with stack.client() as c:
        a, b = _supporter(c), _supporter(c)
        shift = _extra(c, NOW - timedelta(minutes=10))
        c.post(f"/shift/shifts/{shift['id']}/assignments", json={"supporter_id": a["id"]})
    with stack.client(Role.SUPPORTER, sub=b["id"]) as c:
        r = c.post(f"/shift/shifts/{shift['id']}/check-in")
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM
    with stack.client(Role.SUPPORTER, sub=a["id"]) as c:
        r = c.post(f"/shift/shifts/{shift['id']}/check-in")
        assert r.status_code == 200 and r.json()["checked_in"] == [a["id"]]
        assert c.post(f"/shift/shifts/{shift['id']}/check-in").status_code == 409
    with stack.client(Role.PARTNER) as c:
        on = c.get("/shift/on-call").json()
        assert [(s["id"], s["checked_in"]) for s in on["shifts"]] == [(shift["id"], [a["id"]])]
        later = c.get("/shift/on-call", params={"at": (NOW + 7 * HOUR).isoformat()})
        assert later.json()["shifts"] == []
        assert _errors(c.get("/shift/on-call", params={"at": "tonight"})) == ["query.at"]


def test_the_bag_passes_from_its_holder_and_keeps_its_history(stack: Stack) -> None:
    coordinator = str(uuid.uuid4())
    with stack.client(sub=coordinator) as c:
        a, b = _supporter(c), _supporter(c)
        r = c.post("/shift/bags", json={"label": "Bag 1"}, headers={"Idempotency-Key": "b1"})
        assert r.status_code == 201 and r.json()["holder"] == coordinator
        bag = r.json()
        assert c.post("/shift/bags", json={"label": "Bag 1"},
                      headers={"Idempotency-Key": "b1"}).json()["id"] == bag["id"]
        url = f"/shift/bags/{bag['id']}/handovers"
        r = c.post(url, json={"from_supporter_id": a["id"], "to_supporter_id": b["id"],
                              "items_checked": ALL_ITEMS})
        assert r.status_code == 409 and "does not hold" in r.json()["detail"]
        r = c.post(url, json={"from_supporter_id": coordinator, "to_supporter_id": a["id"],
                              "items_checked": {**ALL_ITEMS, "phone_charged": False},
                              "notes": "charger at home"})
        assert r.status_code == 201
        assert r.headers["location"] == f"/shift/bags/{bag['id']}#handover-1"
        (h,) = r.json()["history"]
        assert (h["missing"], h["notes"], r.json()["holder"]) == (
            ["phone_charged"], "charger at home", a["id"])
    with stack.client(Role.SUPPORTER, sub=a["id"]) as c:
        r = c.post(url, json={"from_supporter_id": a["id"], "to_supporter_id": b["id"],
                              "items_checked": ALL_ITEMS})
        assert r.status_code == 201 and r.json()["holder"] == b["id"]
    with stack.client(Role.SUPPORTER, sub=b["id"]) as c:
        seen = c.get(f"/shift/bags/{bag['id']}").json()["history"]
        assert [h["notes"] for h in seen] == [None, None]  # not a party to the first
        assert c.get("/shift/bags").json()["items"][0]["holder"] == b["id"]


def test_a_distressing_contact_opens_debriefs_the_coordinator_completes(
        stack: Stack) -> None:
    with stack.client() as c:
        a, b = _supporter(c), _supporter(c)
        body = contact_body(started_at=(NOW - HOUR).isoformat(), ended_at=None,
                            supporter_ids=[a["id"], b["id"]], distressing=True)
        wait_for(lambda: c.post("/contact/contacts", json=body).status_code == 201, 20,
                 0.2, "the contact service to know the supporters")
        items = wait_for(lambda: len(c.get("/shift/debriefs", params={"status": "open"})
                                     .json()["items"]) == 2 and c.get(
            "/shift/debriefs", params={"status": "open"}).json()["items"], 20, 0.1,
            "two debriefs")
        assert {i["supporter_id"] for i in items} == {a["id"], b["id"]}
        assert not any(i["overdue"] for i in items)
        first = items[0]
        url = f"/shift/debriefs/{first['id']}/complete"
        assert _errors(c.post(url, json={"on": "yesterday"})) == ["body.on"]
        r = c.post(url, json={"on": TODAY.isoformat()}, headers={"If-Match": '"1"'})
        assert r.status_code == 200 and r.json()["status"] == "complete"
        assert r.headers["etag"] == '"2"'
        assert c.post(url, json={"on": TODAY.isoformat()}).status_code == 422
        assert len(c.get("/shift/debriefs", params={"status": "open"}).json()["items"]) == 1
        assert c.get(f"/shift/debriefs/{uuid.uuid4()}").status_code == 404
