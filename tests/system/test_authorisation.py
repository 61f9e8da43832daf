"""The authorisation matrix: every endpoint of every service, every role, and no token.

The roles an endpoint allows are read from its OpenAPI description ("Roles: ..."),
and checked against what the API does; a table pins the roles of the endpoints where
a mistake would do most harm, so a wrong description cannot pass unnoticed.
"""

from __future__ import annotations

import re

import httpx

from shared.web.auth import Role
from tests.support import Stack

SAMPLES = {
    "contact_id": "00000000-0000-4000-8000-000000000001",
    "referral_id": "00000000-0000-4000-8000-000000000002",
    "entry_id": "00000000-0000-4000-8000-000000000003",
    "caller_ref": "C-0000ZZZZ",
    "n": "1",
}
QUERIES = {
    "/reporting/monthly": {"month": "2026-11"},
    "/reporting/year": {"start": "2026-04"},
    "/contact/callers/lookup": {"phone": "07700900999"},
    "/contact/callers/{caller_ref}/history": {"purpose": "authorisation test"},
}
PINNED: dict[tuple[str, str], set[str] | None] = {
    ("DELETE", "/contact/callers/{caller_ref}/personal-data"): {"coordinator"},
    ("GET", "/contact/callers/{caller_ref}/history"): {"supporter", "coordinator"},
    ("GET", "/contact/events"): {"auditor", "coordinator"},
    ("GET", "/contact/contacts"): {"supporter", "coordinator", "auditor"},
    ("POST", "/contact/referrals"): {"coordinator", "partner"},
    ("GET", "/contact/referrals"): {"coordinator", "partner"},
    ("GET", "/contact/referrals/{referral_id}"): {"coordinator", "partner"},
    ("POST", "/contact/directory"): {"coordinator"},
    ("GET", "/contact/directory"): {"supporter", "coordinator"},
    ("POST", "/reporting/rebuild"): {"coordinator"},
    ("GET", "/reporting/monthly"): {"coordinator", "auditor", "partner"},
    ("GET", "/reporting/year"): {"coordinator", "auditor", "partner"},
    ("GET", "/reporting/dashboard"): {"coordinator"},
    ("GET", "/reporting/dashboard/stream"): {"coordinator"},  # Accept */*: one event
    ("GET", "/contact/health"): None,
    ("POST", "/outreach/meetings/{meeting_id}/approve"): {"supporter", "coordinator"},
    ("POST", "/outreach/meetings/{meeting_id}/decline"): {"coordinator"},
    ("GET", "/outreach/meetings/{meeting_id}"): {"supporter", "coordinator", "auditor"},
    ("GET", "/outreach/alerts"): {"coordinator"},
    ("POST", "/outreach/alerts/{alert_id}/resolve"): {"coordinator"},
    ("GET", "/contact/audit/aggregates/{aggregate_id}"): {"auditor", "coordinator"},
    ("GET", "/shift/audit/aggregates/{aggregate_id}"): {"auditor", "coordinator"},
    ("GET", "/outreach/audit/aggregates/{aggregate_id}"): {"auditor", "coordinator"},
}
ON_SHIFT_ONLY = {("GET", "/contact/callers/{caller_ref}/history"),
                 ("GET", "/contact/texts/{contact_id}"),
                 ("GET", "/contact/texts"),
                 ("POST", "/contact/texts/{contact_id}/claim")}
NO_BEARER = {("POST", "/contact/texts/inbound")}  # the SMS provider signs its requests



class _Samples(dict[str, str]):
    """A sample for each path parameter: the named ones, else a UUID (an id that exists
    nowhere: authorisation is decided before the resource is looked up)."""

    def __missing__(self, key: str) -> str:
        return "00000000-0000-4000-8000-0000000000ff"


def _allowed(description: str) -> set[str] | None:
    match = re.search(r"Roles: ([^.]*)\.", description)
    assert match, "every endpoint states its roles"
    text = match.group(1)
    if text.startswith(("public", "none")):
        return None
    return {r.strip() for r in text.split(",")}


def _operations(stack: Stack) -> list[tuple[str, str, set[str] | None]]:
    spec = httpx.get(f"{stack.url}/openapi.json").json()
    out = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            out.append((method.upper(), path, _allowed(op.get("description", ""))))
    return out


def test_every_endpoint_every_role(stack: Stack) -> None:
    operations = _operations(stack)
    assert len(operations) >= 40
    seen = {(m, p) for m, p, _ in operations}
    assert set(PINNED) <= seen
    for method, path, allowed in operations:
        if (method, path) in PINNED:
            assert allowed == PINNED[(method, path)], (method, path, allowed)
        url = path.format_map(_Samples(SAMPLES))
        params = QUERIES.get(path)
        if (method, path) in NO_BEARER:  # unsigned: refused whoever sends it
            for role in (None, *Role):
                with stack.client(role) as c:
                    r = c.request(method, url, data={"From": "07700900999", "To": "x",
                                                     "Body": "hi", "MessageSid": "SM1"})
                assert r.status_code == 403, (method, path, role, r.status_code)
            continue
        with stack.client(role=None) as anon:
            r = anon.request(method, url, params=params, json={})
        if allowed is None:
            assert r.status_code == 200, (method, path, r.status_code)
            continue
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers["content-type"] == "application/problem+json"
        for role in Role:
            with stack.client(role) as c:
                r = c.request(method, url, params=params, json={})
            if (method, path) in ON_SHIFT_ONLY and role == Role.SUPPORTER:
                # Allowed by role, and then only on shift: this supporter took no calls.
                assert r.status_code == 403 and "on shift" in r.json()["detail"]
            elif role.value in allowed:
                assert r.status_code not in (401, 403), (method, path, role, r.text)
                assert r.status_code < 500, (method, path, role, r.text)
            else:
                assert r.status_code == 403, (method, path, role, r.status_code)
