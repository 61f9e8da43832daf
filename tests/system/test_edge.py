"""The edge of every service, over real HTTP on both stores: bodies and queries that
must not reach an endpoint, the 405 ``Allow`` header, positions and ``If-Match`` that
must be 64-bit ASCII numbers, the correlation id, token bounds, the headers every
response carries, what the public health answer shows, a store that cannot be reached,
and the production command's refusal to start without its secrets."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from shared.messaging.nats_server import free_port
from shared.web.auth import ALGORITHM, Role
from tests.support import PROBLEM, Stack, Up, contact_body, stored_events, venv_bin, wait_for
from tests.support.helpers import stream_messages

VALIDATION = "https://solidarity.example/problems/validation"
UUID_RE = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
ROOT = Path(__file__).resolve().parents[2]


def _fields(r: httpx.Response) -> list[str]:
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    assert problem["type"] == VALIDATION, problem
    return [e["field"] for e in problem["errors"]]


# ---------------------------------------------------------------- 1. bodies and queries


def test_bodies_not_utf8_json_or_too_deep_are_refused_and_store_nothing(stack: Stack) -> None:
    before = stored_events(stack)
    text = json.dumps(contact_body(summary="Caller asked about the café"), ensure_ascii=False)
    with stack.client() as c:
        for body in (text.encode("latin-1"), text.encode("utf-16"),
                     text.encode("utf-16-le"), text.encode("utf-32")):
            r = c.post("/contact/contacts", content=body,
                       headers={"content-type": "application/json"})
            assert _fields(r) == ["body"], body[:8]
        r = c.post("/contact/contacts", content=text.encode("latin-1"),
                   headers={"content-type": "application/json; charset=latin-1"})
        assert r.status_code == 415 and r.headers["content-type"] == PROBLEM
        assert r.json()["type"].endswith("/unsupported-media-type")
        r = c.post("/contact/contacts", content=text.encode(),
                   headers={"content-type": "application/json; charset=utf-16"})
        assert r.status_code == 415
        r = c.post("/contact/contacts", content=b"[" * 10_000 + b"]" * 10_000,
                   headers={"content-type": "application/json"})
        assert _fields(r) == ["body"]
        nested: Any = "x"
        for _ in range(40):
            nested = {"a": nested}
        r = c.post("/contact/contacts", json=contact_body(follow_up=nested))
        assert _fields(r) == ["body"]
        r = c.put(f"/contact/directory/{'0' * 8}-0000-4000-8000-{'0' * 12}",
                  content=b"[" * 5000, headers={"content-type": "application/merge-patch+json"})
        assert _fields(r) == ["body"]
        # UTF-8 with a charset that says so is fine.
        r = c.post("/contact/contacts", content=text.encode(),
                   headers={"content-type": "application/json; charset=UTF-8"})
        assert r.status_code == 201, r.text
    assert stored_events(stack) == before + 1


def test_nul_characters_are_422_naming_each_field_and_never_echoed(stack: Stack) -> None:
    before = stored_events(stack)
    with stack.client() as c:
        r = c.post("/contact/contacts", json=contact_body(
            supporter_ids=["supp-a", "07700900991\u0000Wilhelmina"], summary="ok\u0000"))
        assert _fields(r) == ["body.supporter_ids.1", "body.summary"]
        assert "Wilhelmina" not in r.text and "07700900991" not in r.text
        r = c.post("/contact/directory", json={"name": "Samaritans\u0000",
                                               "helps_with": ["bereavement"]})
        assert _fields(r) == ["body.name"]
        r = c.post("/contact/contacts", content=json.dumps(
            {**contact_body(), "\u0000": 1}).encode(), headers={"content-type":
                                                              "application/json"})
        assert _fields(r) == ["body.\\u0000"]
        r = c.get("/contact/callers/C-0000ZZZZ/history",
                  params={"purpose": "audit\u0000Wilhelmina"})
        assert _fields(r) == ["query.purpose"]
        assert "Wilhelmina" not in r.text
        r = c.get("/contact/events?limit=5&cursor=%00")
        assert _fields(r) == ["query.cursor"]
        # A backslash before u0000 is text, and a "%00" spelled out is text too.
        r = c.post("/contact/contacts", json=contact_body(summary="see C:\\u0000"))
        assert r.status_code == 201, r.text
        r = c.get("/contact/events", params={"limit": 1, "cursor": "%00"})
        assert _fields(r) == ["query.cursor"]  # not a number: paging says so
    assert stored_events(stack) == before + 1


# ---------------------------------------------------------------- 2. 405


def test_405_allow_lists_every_method_of_the_path(stack: Stack) -> None:
    with stack.client() as c:
        for method, path, expected in [
            ("DELETE", "/contact/contacts", {"GET", "POST"}),
            ("PUT", f"/contact/contacts/{'1' * 8}-1111-4111-8111-{'1' * 12}",
             {"GET", "PATCH"}),
            ("POST", f"/contact/directory/{'1' * 8}-1111-4111-8111-{'1' * 12}",
             {"GET", "PUT", "DELETE"}),
            ("DELETE", "/contact/health", {"GET"}),
        ]:
            r = c.request(method, path)
            assert r.status_code == 405, (method, path, r.status_code)
            assert r.headers["content-type"] == PROBLEM
            assert {m.strip() for m in r.headers["allow"].split(",")} == expected, path


# ---------------------------------------------------------------- 3. positions, If-Match


def test_positions_and_if_match_are_ascii_64_bit_numbers(stack: Stack) -> None:
    with stack.client() as c:
        for params, field in [({"after": "9223372036854775808"}, "query.after"),
                              ({"after": "99999999999999999999"}, "query.after"),
                              ({"cursor": "99999999999999999999"}, "query.cursor"),
                              ({"cursor": "9223372036854775808"}, "query.cursor"),
                              ({"cursor": "²"}, "query.cursor"),
                              ({"cursor": "\u0661"}, "query.cursor")]:
            r = c.get("/reporting/events", params=params)
            assert _fields(r) == [field], params
        r = c.get("/contact/events?cursor=%C2%B2")
        assert _fields(r) == ["query.cursor"]
        for params in ({"after": str(2**63 - 1)}, {"cursor": str(2**63 - 1)}):
            r = c.get("/contact/events", params=params)
            assert r.status_code == 200 and r.json()["items"] == [], r.text
        created = c.post("/contact/contacts", json=contact_body())
        assert created.status_code == 201
        location = created.headers["location"]
        before = stored_events(stack)
        fix = {"reason": "re-read", "issues": ["housing"]}
        for tag in (b'"\xb2"', b'"\xd9\xa1"', b'"' + b"9" * 20 + b'"',
                    b'"' + b"1" * 400 + b'"', b'W/"\xb2"', b'"-1"', b'" 1"'):
            r = c.patch(location, json=fix, headers={"If-Match": tag})
            assert r.status_code == 412, (tag, r.status_code, r.text)
            assert r.headers["content-type"] == PROBLEM
        assert stored_events(stack) == before
        r = c.patch(location, json=fix, headers={"If-Match": '"1"'})
        assert r.status_code == 200 and r.headers["etag"] == '"2"'


# ---------------------------------------------------------------- 4. correlation id


def test_the_correlation_id_is_an_opaque_uuid_or_a_fresh_one(stack: Stack,
                                                              nats_url: str) -> None:
    personal = "07700900991-Wilhelmina.Frobisher"
    with stack.client() as c:
        r = c.post("/contact/contacts", json=contact_body(),
                   headers={"X-Correlation-ID": personal})
        assert r.status_code == 201
        fresh = r.headers["x-correlation-id"]
        assert fresh != personal and UUID_RE.match(fresh), fresh
        events = c.get("/contact/events").json()["items"]
        assert events[-1]["correlation_id"] == fresh
        given = "0b6f8a3e-9c1d-4e2f-8a7b-1c2d3e4f5a6b"
        r = c.post("/contact/contacts", json=contact_body(),
                   headers={"X-Correlation-ID": given})
        assert r.headers["x-correlation-id"] == given
        assert c.get("/contact/events").json()["items"][-1]["correlation_id"] == given
        r = c.get("/contact/health", headers={"X-Correlation-ID": "corr-123"})
        assert r.headers["x-correlation-id"] != "corr-123"
    published = wait_for(lambda: (lambda m: m if len(m) == 2 else None)(
        asyncio.run(stream_messages(nats_url, "contact"))), what="both events on the bus")
    assert [json.loads(m)["correlation_id"] for m in published] == [fresh, given]
    assert not any(b"Wilhelmina" in m or b"07700900991" in m for m in published)


# ---------------------------------------------------------------- 5. tokens


def test_tokens_need_a_bounded_sub_a_numeric_exp_and_a_bounded_lifetime(stack: Stack) -> None:
    secret = stack.settings.effective_jwt_secret
    now = int(time.time())

    def token(**claims: Any) -> str:
        base: dict[str, Any] = {"sub": "coord-1", "role": "coordinator", "name": "C",
                                "iss": "solidarity", "iat": now, "exp": now + 600}
        base.update(claims)
        return jwt.encode({k: v for k, v in base.items() if v is not None}, secret,
                          algorithm=ALGORITHM)

    before = stored_events(stack)
    with stack.client(role=None) as c:
        for claims in ({"sub": ""}, {"sub": "s" * 101}, {"sub": "a\u0000b"}, {"sub": "a\nb"},
                       {"exp": str(now + 600)}, {"iat": None}, {"exp": 253402300799},
                       {"exp": now + 43200 + 120}):
            auth = {"Authorization": f"Bearer {token(**claims)}"}
            r = c.post("/contact/contacts", json=contact_body(), headers=auth)
            assert r.status_code == 401, (claims, r.status_code)
            assert r.headers["content-type"] == PROBLEM
            assert r.headers["www-authenticate"].startswith("Bearer")
        assert stored_events(stack) == before
        auth = {"Authorization": f"Bearer {token(sub='s' * 100, exp=now + 43200)}"}
        r = c.post("/contact/contacts", json=contact_body(), headers=auth)
        assert r.status_code == 201 and r.json()["logged_by"] == "s" * 100


# ---------------------------------------------------------------- 7. headers


def test_every_response_is_nosniff_and_no_store(stack: Stack) -> None:
    with stack.client() as c, stack.client(role=None) as anon:
        responses = [
            anon.get("/contact/health"), anon.get("/contact/events"),
            c.get("/contact/events"), c.post("/contact/contacts", json=contact_body()),
            c.get("/contact/nowhere"), c.delete("/contact/contacts"),
            c.post("/contact/contacts", json={"channel": "fax"}),
            c.post("/contact/contacts", content=b"x" * 70_000,
                   headers={"content-type": "application/json"}),
            c.post("/contact/contacts", content=b"{}",
                   headers={"content-type": "application/json; charset=latin-1"}),
            anon.get("/openapi.json"), anon.get("/docs"),
        ]
    statuses = {r.status_code for r in responses}
    assert {200, 201, 401, 404, 405, 413, 415, 422} <= statuses
    for r in responses:
        assert r.headers["x-content-type-options"] == "nosniff", r.request.url
        assert r.headers.get_list("cache-control") == ["no-store"], r.request.url


# ---------------------------------------------------------------- 8. health


PUBLIC_HEALTH = {"service", "status", "live", "ready"}


def test_public_health_says_up_or_down_and_details_need_a_role(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = ("shift", "contact", "outreach", "reporting")
    with stack.client(role=None) as anon:
        for s in services:
            r = anon.get(f"/{s}/health")
            assert r.status_code == 200 and set(r.json()) == PUBLIC_HEALTH, r.text
            assert r.json()["ready"] is True
        r = anon.get("/contact/health", params={"probe": "ready"})
        assert r.status_code == 200 and set(r.json()) == PUBLIC_HEALTH
        # Public: a token that is not valid gets the public answer, not a 401.
        r = anon.get("/contact/health", headers={"Authorization": "Bearer not-a-jwt"})
        assert r.status_code == 200 and set(r.json()) == PUBLIC_HEALTH
    for role in (Role.SUPPORTER, Role.PARTNER):
        with stack.client(role) as c:
            assert set(c.get("/reporting/health").json()) == PUBLIC_HEALTH
    for role in (Role.COORDINATOR, Role.AUDITOR):
        with stack.client(role) as c:
            body = c.get("/reporting/health").json()
            assert {"store", "nats", "relay", "consumers"} <= set(body), body
            assert body["store"]["status"] == "ok" and "head" in body["store"]
            assert any(x["durable"] == "reporting-from-contact" for x in body["consumers"])
            assert "lag" in c.get("/contact/health").json()["relay"]

    def unreachable() -> int:
        raise OperationalError("SELECT max(id)", {}, Exception("connection refused"))

    monkeypatch.setattr(stack.runtime("contact").app, "max_notification_id", unreachable)
    with stack.client(role=None) as anon, stack.client(Role.AUDITOR) as auditor:
        r = anon.get("/contact/health", params={"probe": "ready"})
        assert r.status_code == 503 and set(r.json()) == PUBLIC_HEALTH
        assert r.json()["ready"] is False
        r = auditor.get("/contact/health", params={"probe": "ready"})
        assert r.status_code == 503 and r.json()["store"]["status"] == "error"
        assert "SELECT" not in r.text


# ---------------------------------------------------------------- 9. store unreachable


def test_a_store_that_cannot_be_reached_is_a_503_problem(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real driver error: a PostgreSQL that is not there, with a password in its URL.
    dead = sa.create_engine(f"postgresql+psycopg://solidarity:pw-07700900991@127.0.0.1:"
                            f"{free_port()}/solidarity")

    def unreachable(*_args: Any, **_kwargs: Any) -> Any:
        with dead.connect() as conn:
            conn.execute(sa.text("SELECT * FROM v_contacts WHERE phone = :p"),
                         {"p": "07700900991"})

    app = stack.runtime("contact").app
    monkeypatch.setattr(app, "integration_events", unreachable)
    monkeypatch.setattr(app, "save", unreachable)
    with stack.client() as c:
        for r in (c.get("/contact/events"),
                  c.post("/contact/contacts", json=contact_body(),
                         headers={"Idempotency-Key": "sheet-1"})):
            assert r.status_code == 503, r.text
            assert r.headers["content-type"] == PROBLEM
            assert r.headers["retry-after"] == "5"
            assert r.json()["type"].endswith("/store-unavailable")
            for leak in ("SELECT", "07700900991", "127.0.0.1", "v_contacts", "psycopg"):
                assert leak not in r.text
    monkeypatch.undo()
    with stack.client() as c:
        r = c.post("/contact/contacts", json=contact_body(), headers={"Idempotency-Key":
                                                                       "sheet-1"})
        assert r.status_code == 201, r.text
    dead.dispose()


# ---------------------------------------------------------------- 6. serve's secrets


def test_serve_refuses_to_start_without_its_secrets(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOLIDARITY_")}
    env.update(SOLIDARITY_DATA_DIR=str(tmp_path / "var"), SOLIDARITY_NATS_URL="nats://x:4222")
    out = subprocess.run([venv_bin("solidarity"), "serve", "contact", "--port",
                          str(free_port())], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2, out
    assert "SOLIDARITY_JWT_SECRET" in out.stderr and "SOLIDARITY_MASTER_KEY" in out.stderr
    assert not (tmp_path / "var" / "secrets").exists()


@pytest.mark.e2e
def test_up_prints_no_token_when_redirected_and_sends_no_server_header(tmp_path: Path) -> None:
    with Up(tmp_path / "var", free_port()) as up:
        banner = up.output()
        assert "solidarity token --role coordinator" in banner, banner
        assert "eyJ" not in banner, "a token in a redirected banner lands in log files"
        r = httpx.get(f"{up.url}/contact/health")
        assert r.status_code == 200 and "server" not in r.headers, r.headers
        # The hint works at once (the signing secret is made at start, not on first use).
        r = httpx.get(f"{up.url}/contact/events",
                      headers={"Authorization": f"Bearer {up.token()}"})
        assert r.status_code == 200, r.text
        assert r.headers["x-content-type-options"] == "nosniff"
        secrets_dir = tmp_path / "var" / "secrets"
        assert secrets_dir.stat().st_mode & 0o077 == 0
        assert all(p.stat().st_mode & 0o077 == 0 for p in secrets_dir.iterdir())
