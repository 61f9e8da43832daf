"""The HTTP conventions, against the real stack: auth, problems, idempotency, ETags,
the /events log and OpenAPI, on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shared.web.auth import Role
from tests.support import PROBLEM, Stack, contact_body, stored_events

# Every endpoint, and who may use it. `None` in a role's place: the endpoint is public.
SAMPLE_ID = "00000000-0000-4000-8000-000000000000"
MATRIX: list[tuple[str, str, dict[str, object] | None, set[Role] | None]] = [
    ("POST", "/contact/contacts", contact_body(), {Role.SUPPORTER, Role.COORDINATOR}),
    ("GET", f"/contact/contacts/{SAMPLE_ID}", None,
     {Role.SUPPORTER, Role.COORDINATOR, Role.AUDITOR}),
    ("PATCH", f"/contact/contacts/{SAMPLE_ID}", {"reason": "x", "issues": ["housing"]},
     {Role.SUPPORTER, Role.COORDINATOR}),
    ("GET", "/reporting/monthly?month=2026-11", None,
     {Role.COORDINATOR, Role.AUDITOR, Role.PARTNER}),
    ("GET", "/reporting/year?start=2026-04", None,
     {Role.COORDINATOR, Role.AUDITOR, Role.PARTNER}),
    ("POST", "/reporting/rebuild", None, {Role.COORDINATOR}),
    *[("GET", f"/{s}/events", None, {Role.AUDITOR, Role.COORDINATOR})
      for s in ("shift", "contact", "outreach", "reporting")],
    *[("GET", f"/{s}/health", None, None) for s in ("shift", "contact", "outreach", "reporting")],
]


def test_authorisation_matrix(stack: Stack) -> None:
    for method, path, body, allowed in MATRIX:
        with stack.client(role=None) as anon:
            r = anon.request(method, path, json=body)
            if allowed is None:
                assert r.status_code == 200, (method, path, r.status_code)
                continue
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.headers["content-type"] == PROBLEM
            assert r.headers["www-authenticate"].startswith("Bearer")
        for role in Role:
            with stack.client(role) as c:
                r = c.request(method, path, json=body)
            if role in allowed:
                # Allowed: anything but 401/403 (the sample id may not exist: 404).
                assert r.status_code in (200, 201, 404), (method, path, role, r.text)
            else:
                assert r.status_code == 403, (method, path, role, r.status_code)
                assert r.headers["content-type"] == PROBLEM
                assert role.value in r.json()["detail"]


def test_bad_tokens_are_401(stack: Stack) -> None:
    with stack.client(role=None) as c:
        for header in ("Bearer not-a-jwt", "Basic abc", "Bearer"):
            r = c.get("/contact/events", headers={"Authorization": header})
            assert r.status_code == 401, header
        from shared.web.auth import issue_token

        forged = issue_token("another-secret-of-enough-length-0000", sub="x", role="coordinator")
        r = c.get("/contact/events", headers={"Authorization": f"Bearer {forged}"})
        assert r.status_code == 401
        expired = issue_token(stack.settings.effective_jwt_secret, sub="x", role="coordinator",
                              ttl_s=-10)
        r = c.get("/contact/events", headers={"Authorization": f"Bearer {expired}"})
        assert r.status_code == 401 and "expired" in r.json()["detail"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"channel": "fax"}, "body.channel"),
        ({"channel": 7}, "body.channel"),
        ({"issues": []}, "body.issues"),
        ({"issues": ["housing", "unicorns"]}, "body.issues.1"),
        ({"issues": "housing"}, "body.issues"),
        ({"started_at": "yesterday"}, "body.started_at"),
        ({"started_at": "2026-11-28T22:00:00"}, "body.started_at"),  # no offset
        ({"ended_at": "2026-11-28T21:00:00+00:00"}, "body.ended_at"),  # before the start
        ({"started_at": "2099-01-01T00:00:00+00:00", "ended_at": None}, "body.started_at"),
        ({"surprise": 1}, "body.surprise"),
    ],
)
def test_bad_contacts_are_422_naming_the_field_and_store_nothing(
    stack: Stack, change: dict[str, object], field: str
) -> None:
    before = stored_events(stack)
    with stack.client() as c:
        r = c.post("/contact/contacts", json=contact_body(**change))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    assert {"type", "title", "status", "detail", "errors"} <= problem.keys()
    assert field in [e["field"] for e in problem["errors"]], problem
    assert stored_events(stack) == before


def test_malformed_and_oversize_bodies(stack: Stack) -> None:
    before = stored_events(stack)
    with stack.client() as c:
        r = c.post("/contact/contacts", content=b"{not json",
                   headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
        big = contact_body(padding="x" * (stack.settings.max_body_bytes + 10))
        r = c.post("/contact/contacts", json=big)
        assert r.status_code == 413 and r.headers["content-type"] == PROBLEM

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            yield b'{"channel": "phone", "x": "'
            for _ in range(200):
                yield b"y" * 1024
            yield b'"}'

        r = c.post("/contact/contacts", content=chunks(),
                   headers={"content-type": "application/json"})
        assert r.status_code == 413
        r = c.get("/contact/contacts/not-a-uuid")
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "path.contact_id"
        r = c.get("/reporting/monthly", params={"month": "2026-13"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "query.month"
        r = c.get("/contact/nowhere")
        assert r.status_code == 404 and r.headers["content-type"] == PROBLEM
    assert stored_events(stack) == before


def test_created_contact_201_location_etag_and_get(stack: Stack) -> None:
    with stack.client(Role.SUPPORTER, sub="supporter-7") as c:
        r = c.post("/contact/contacts", json=contact_body())
        assert r.status_code == 201
        body = r.json()
        assert r.headers["location"] == f"/contact/contacts/{body['id']}"
        assert r.headers["etag"] == '"1"'
        assert body["logged_by"] == "supporter-7"
        got = c.get(r.headers["location"])
        assert got.status_code == 200 and got.json() == body
        assert got.headers["etag"] == '"1"'
        r = c.patch(r.headers["location"], headers={"If-Match": '"1"'},
                    json={"reason": "sheet re-read", "ended_at": "2026-11-28T22:40:00+00:00"})
        assert r.status_code == 200 and r.headers["etag"] == '"2"'
        assert r.json()["ended_at"].startswith("2026-11-28T22:40")
        r = c.patch(f"/contact/contacts/{body['id']}", json={"issues": ["housing"]})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.reason"
        r = c.patch(f"/contact/contacts/{SAMPLE_ID}", json={"reason": "x", "issues": ["abuse"]})
        assert r.status_code == 404


def test_idempotency_key_returns_the_first_result(stack: Stack) -> None:
    before = stored_events(stack)
    with stack.client(sub="coordinator-1") as c:
        headers = {"Idempotency-Key": "sheet-2026-11-28-01"}
        first = c.post("/contact/contacts", json=contact_body(), headers=headers)
        again = c.post("/contact/contacts", json=contact_body(), headers=headers)
        assert first.status_code == again.status_code == 201
        assert first.json() == again.json()
        assert first.headers["location"] == again.headers["location"]
        assert stored_events(stack) == before + 1
        other = c.post("/contact/contacts", json=contact_body(channel="text"), headers=headers)
        assert other.status_code == 422
        assert "Idempotency-Key" in other.json()["detail"]
        # A failed request does not use up the key.
        bad = c.post("/contact/contacts", json=contact_body(channel="fax"),
                     headers={"Idempotency-Key": "k2"})
        assert bad.status_code == 422
        good = c.post("/contact/contacts", json=contact_body(), headers={"Idempotency-Key": "k2"})
        assert good.status_code == 201
    # Keys belong to their principal: another user's same key is a new request.
    with stack.client(sub="coordinator-2") as c:
        r = c.post("/contact/contacts", json=contact_body(), headers=headers)
        assert r.status_code == 201 and r.json()["id"] != first.json()["id"]
    assert stored_events(stack) == before + 3


def test_events_log_pages_and_chains(stack: Stack) -> None:
    with stack.client() as c:
        for _ in range(5):
            assert c.post("/contact/contacts", json=contact_body()).status_code == 201
        page = c.get("/contact/events", params={"limit": 2}).json()
        ids = [e["notification_id"] for e in page["items"]]
        assert ids == [1, 2] and page["next_cursor"] == "2"
        assert page["items"][0]["previous_notification_id"] == 0
        rest = c.get("/contact/events", params={"cursor": page["next_cursor"], "limit": 10}).json()
        assert [e["notification_id"] for e in rest["items"]] == [3, 4, 5]
        assert [e["previous_notification_id"] for e in rest["items"]] == [2, 3, 4]
        assert rest["next_cursor"] is None
        event = rest["items"][0]
        assert event["type"] == "ContactLogged"
        assert event["service"] == "contact" and event["aggregate_type"] == "Contact"
        assert set(event["data"]) == {
            "contact_id", "channel", "direction", "answered", "started_at", "ended_at",
            "issues", "caller_is", "caller_ref", "age_band", "gender", "shift_id",
            "supporter_ids", "signposted_to",
        }
        assert c.get("/contact/events", params={"cursor": "abc"}).status_code == 422
        assert c.get("/contact/events", params={"limit": 0}).status_code == 422


def test_request_and_correlation_ids(stack: Stack) -> None:
    with stack.client() as c:
        r = c.post("/contact/contacts", json=contact_body(),
                   headers={"X-Correlation-ID": "0b6f8a3e-9c1d-4e2f-8a7b-1c2d3e4f5a6b"})
        assert r.headers["x-correlation-id"] == "0b6f8a3e-9c1d-4e2f-8a7b-1c2d3e4f5a6b"
        assert len(r.headers["x-request-id"]) == 32
        events = c.get("/contact/events").json()["items"]
        assert events[-1]["correlation_id"] == "0b6f8a3e-9c1d-4e2f-8a7b-1c2d3e4f5a6b"


def test_openapi_states_roles_for_every_endpoint(stack: Stack) -> None:
    spec = httpx.get(f"{stack.url}/openapi.json").json()
    operations = [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
    ]
    assert len(operations) >= 13
    for path, method, op in operations:
        assert "Roles:" in op.get("description", ""), (method, path)


def test_future_dates_beyond_skew_refused_but_within_accepted(stack: Stack) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    with stack.client() as c:
        r = c.post("/contact/contacts", json=contact_body(started_at=soon, ended_at=None))
        assert r.status_code == 201
