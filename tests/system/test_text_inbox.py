"""The text inbox, against the real stack (real NATS, HTTP) on both stores: the list of
threads newest message first (ids, counts and times, never a body or a number), claims
(one claimant; 409 naming who holds it; concurrent claims: one wins), release and
hand-over, closing like a call, reopening within the window and a new thread after it,
and ``solidarity sms-in`` posting a signed text to the running system."""

from __future__ import annotations

import os
import subprocess
import threading
from typing import Any

import httpx

from shared.config import Settings
from shared.sms import twilio_signature
from shared.web.auth import Role
from tests.contact.rota import RotaFeed
from tests.support import PROBLEM, Stack, stack_settings, stored_events, venv_bin

INBOUND = "/contact/texts/inbound"
LINE = "+447700900000"
NUMBERS = ("+447700900301", "+447700900302", "+447700900303")  # Ofcom's drama range
PHRASE = "periwinkle harbour"


def _text(stack: Stack, number: str, body: str) -> str:
    """A signed inbound text, as the provider posts it; the thread it went to."""
    params = {"From": number, "To": LINE, "Body": body,
              "MessageSid": "SM" + os.urandom(16).hex()}
    url = f"{stack.url}{INBOUND}"
    app: Any = stack.runtime("contact").app
    token = app.texts.auth_token
    r = httpx.post(url, data=params, timeout=30,
                   headers={"X-Twilio-Signature": twilio_signature(token, url, params)})
    assert r.status_code == 200, r.text
    return r.headers["location"].rsplit("/", 1)[-1]


def _inbox(c: httpx.Client, **params: Any) -> dict[str, Any]:
    r = c.get("/contact/texts", params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _post(c: httpx.Client, contact_id: str, action: str, **body: Any) -> httpx.Response:
    return c.post(f"/contact/texts/{contact_id}/{action}", json=body or None)


def _set_issues(c: httpx.Client, contact_id: str) -> None:
    r = c.patch(f"/contact/contacts/{contact_id}",
                json={"issues": ["social_isolation"], "reason": "what the thread was about"})
    assert r.status_code == 200, r.text


def _thread(c: httpx.Client, contact_id: str) -> dict[str, Any]:
    r = c.get(f"/contact/texts/{contact_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


# ---------------------------------------------------------------------------- the list


def test_the_inbox_lists_threads_newest_message_first_with_counts_only(stack: Stack) -> None:
    rota = RotaFeed(stack.runtime("contact"))
    me = rota.on_shift()
    first = _text(stack, NUMBERS[0], f"hello {PHRASE}")
    second = _text(stack, NUMBERS[1], "is anyone there")
    assert _text(stack, NUMBERS[0], "still here") == first  # first now has the newest
    with stack.client(Role.SUPPORTER, sub=me) as c:
        r = c.post(f"/contact/texts/{second}/reply", json={"body": "we are here"})
        assert r.status_code == 201, r.text
        page = _inbox(c)
        assert [i["contact_id"] for i in page["items"]] == [second, first]  # the reply
        by_id = {i["contact_id"]: i for i in page["items"]}
        assert (by_id[first]["messages"], by_id[first]["unread"]) == (2, 2)
        assert (by_id[second]["messages"], by_id[second]["unread"]) == (2, 0)
        item = by_id[first]
        assert item["status"] == "unclaimed" and item["claimed_by"] is None
        assert item["caller_ref"].startswith("C-") and item["risk_level"] is None
        assert item["last_message_at"] >= item["started_at"]
        assert set(item) == {"contact_id", "caller_ref", "status", "claimed_by", "started_at",
                             "last_message_at", "messages", "unread", "risk_level"}
        # Never a body or a number in the list.
        assert PHRASE not in r.text and "7700900301" not in c.get("/contact/texts").text

        # Keyset paging, one at a time, in the same order.
        one = _inbox(c, limit=1)
        assert [i["contact_id"] for i in one["items"]] == [second] and one["next_cursor"]
        two = _inbox(c, limit=1, cursor=one["next_cursor"])
        assert [i["contact_id"] for i in two["items"]] == [first] and two["next_cursor"] is None

        # A new text from the caller waits for an answer again, and the thread goes first.
        assert _text(stack, NUMBERS[1], "thanks") == second
        assert [(i["contact_id"], i["unread"]) for i in _inbox(c)["items"]] == [
            (second, 1), (first, 2)]
        # Risk assessed on the thread shows in the list.
        r = c.post(f"/contact/contacts/{first}/risk-assessments",
                   json={"level": "low", "decision": "keep talking"})
        assert r.status_code == 201, r.text
        assert {i["contact_id"]: i["risk_level"] for i in _inbox(c)["items"]}[first] == "low"

        for bad in ({"status": "waiting"}, {"cursor": "not-a-cursor"}, {"limit": 0}):
            r = c.get("/contact/texts", params=bad)
            assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, bad
            assert f"query.{next(iter(bad))}" in [e["field"] for e in r.json()["errors"]]

    # The coordinator may; a supporter only on shift; an auditor never.
    with stack.client(Role.COORDINATOR) as c:
        assert len(_inbox(c)["items"]) == 2
    with stack.client(Role.SUPPORTER, sub=rota.supporter()) as c:
        r = c.get("/contact/texts")
        assert r.status_code == 403 and "on shift" in r.json()["detail"]
    with stack.client(Role.AUDITOR) as c:
        assert c.get("/contact/texts").status_code == 403


def test_the_inbox_is_rebuilt_from_the_events(stack: Stack) -> None:
    me = RotaFeed(stack.runtime("contact")).on_shift()
    a = _text(stack, NUMBERS[0], "one")
    _text(stack, NUMBERS[1], "two")
    with stack.client(Role.SUPPORTER, sub=me) as c:
        assert _post(c, a, "claim").status_code == 200
        before = _inbox(c)
        stack.runtime("contact").projections["contact-views"].drop()
        assert _inbox(c) == before


# ------------------------------------------------------------------------------ claims


def test_claim_release_and_hand_over(stack: Stack) -> None:
    rota = RotaFeed(stack.runtime("contact"))
    a, b, off = rota.on_shift(), rota.on_shift(), rota.supporter()
    with stack.client(Role.COORDINATOR) as coordinator:
        r = coordinator.post("/contact/contacts", json={
            "channel": "text", "started_at": "2026-11-28T22:00:00+00:00",
            "issues": ["social_isolation"], "summary": f"asked about {PHRASE}"})
        assert r.status_code == 201, r.text
        logged = r.json()["id"]
    thread = _text(stack, NUMBERS[0], "hello")
    with stack.client(Role.SUPPORTER, sub=a) as ca, stack.client(Role.SUPPORTER, sub=b) as cb:
        r = _post(ca, thread, "claim")
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["claimed_by"]) == ("open", a)
        assert r.headers["etag"] == f'"{r.json()["version"]}"'
        assert [m["body"] for m in r.json()["messages"]] == ["hello"]
        # The claimant counts among the thread's handlers.
        assert a in ca.get(f"/contact/contacts/{thread}").json()["supporter_ids"]
        events = stored_events(stack)
        again = _post(ca, thread, "claim")
        assert again.status_code == 200 and again.json()["claimed_by"] == a
        assert stored_events(stack) == events  # nothing new recorded

        taken = _post(cb, thread, "claim")
        assert taken.status_code == 409 and taken.headers["content-type"] == PROBLEM
        assert "taken" in taken.json()["detail"] and a in taken.json()["detail"]
        assert _post(cb, thread, "release").status_code == 403
        assert _post(cb, thread, "hand-over", to=a).status_code == 403
        for to in (off, "not-a-supporter"):  # off shift, or no supporter at all
            r = _post(ca, thread, "hand-over", to=to)
            assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
            assert "body.to" in [e["field"] for e in r.json()["errors"]], r.json()
        assert stored_events(stack) == events

        r = _post(ca, thread, "hand-over", to=b)
        assert r.status_code == 200 and r.json()["claimed_by"] == b, r.text
        assert {a, b} <= set(ca.get(f"/contact/contacts/{thread}").json()["supporter_ids"])
        assert [i["claimed_by"] for i in _inbox(ca, status="open")["items"]] == [b]
        assert _post(ca, thread, "release").status_code == 403  # no longer a's
        r = _post(cb, thread, "release")
        assert r.status_code == 200 and r.json()["status"] == "unclaimed"
        assert r.json()["claimed_by"] is None
        # The text logged through POST /contact/contacts is a thread too (older).
        assert [i["contact_id"] for i in _inbox(cb, status="unclaimed")["items"]] == [
            thread, logged]
        assert _inbox(cb, status="open")["items"] == []

    with stack.client(Role.SUPPORTER, sub=off) as c:  # off shift: may not claim
        r = _post(c, thread, "claim")
        assert r.status_code == 403 and "on shift" in r.json()["detail"]
    with stack.client(Role.COORDINATOR) as c:
        r = _post(c, thread, "hand-over", to=a)  # the coordinator, of an unclaimed one
        assert r.status_code == 200 and r.json()["claimed_by"] == a
        r = _post(c, thread, "release")
        assert r.status_code == 200 and r.json()["claimed_by"] is None
        r = c.post(f"/contact/texts/{thread}/hand-over", json={})
        assert r.status_code == 422 and "body.to" in [e["field"] for e in r.json()["errors"]]
        assert _post(c, "00000000-0000-4000-8000-000000000001", "claim").status_code == 404

    # A text logged with a summary: its free text for the coordinator and its handlers,
    # among them whoever claims it.
    with stack.client(Role.SUPPORTER, sub=b) as cb:
        assert _thread(cb, logged)["summary"] is None
        r = _post(cb, logged, "claim")
        assert r.status_code == 200 and r.json()["summary"] == f"asked about {PHRASE}"
        assert r.json()["issues"] == ["social_isolation"]


def test_concurrent_claims_one_wins_the_others_are_409(stack: Stack) -> None:
    rota = RotaFeed(stack.runtime("contact"))
    thread = _text(stack, NUMBERS[0], "hello")  # before they are on shift: not on call
    supporters = [rota.on_shift() for _ in range(4)]
    results: dict[str, httpx.Response] = {}
    start = threading.Barrier(len(supporters))

    def claim(sid: str) -> None:
        with stack.client(Role.SUPPORTER, sub=sid) as c:
            start.wait()
            results[sid] = _post(c, thread, "claim")

    workers = [threading.Thread(target=claim, args=(s,)) for s in supporters]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    codes = sorted(r.status_code for r in results.values())
    assert codes == [200, 409, 409, 409], {s: r.text for s, r in results.items()}
    (winner,) = [s for s, r in results.items() if r.status_code == 200]
    for s, r in results.items():
        if s != winner:
            assert winner in r.json()["detail"]
    with stack.client(Role.COORDINATOR) as c:
        assert _thread(c, thread)["claimed_by"] == winner
        handlers = c.get(f"/contact/contacts/{thread}").json()["supporter_ids"]
        assert handlers == [winner]  # only the winner joined its handlers


# ----------------------------------------------------------- closing, reopening, sms-in


def test_a_thread_closes_like_a_call_and_reopens_within_the_window(stack: Stack) -> None:
    me = RotaFeed(stack.runtime("contact")).on_shift()
    thread = _text(stack, NUMBERS[0], "hello")
    with stack.client(Role.SUPPORTER, sub=me) as c:
        assert _post(c, thread, "claim").status_code == 200
        events = stored_events(stack)
        r = c.post(f"/contact/contacts/{thread}/close", json={})
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
        (error,) = r.json()["errors"]
        assert error["field"] == "body.issues" and "PATCH /contact/contacts" in error["message"]
        assert stored_events(stack) == events
        _set_issues(c, thread)
        # At immediate risk, an escalation (or the reason for none) first, as for a call.
        r = c.post(f"/contact/contacts/{thread}/risk-assessments",
                   json={"level": "immediate", "decision": "call 999 with them"})
        assert r.status_code == 201, r.text
        assert c.post(f"/contact/contacts/{thread}/close", json={}).status_code == 422
        r = c.post(f"/contact/contacts/{thread}/close",
                   json={"no_escalation_reason": "they are with a friend who called 999"})
        assert r.status_code == 200, r.text
        closed = _thread(c, thread)
        assert (closed["status"], closed["claimed_by"], closed["closed"]) == (
            "closed", None, True)
        assert closed["issues"] == ["social_isolation"] and closed["risk_level"] == "immediate"
        r = _post(c, thread, "claim")
        assert r.status_code in (409, 422) and "closed" in r.json()["detail"]
        assert [i["contact_id"] for i in _inbox(c, status="closed")["items"]] == [thread]

        # The caller texts again within the window: the same thread, reopened, unclaimed.
        assert _text(stack, NUMBERS[0], "me again") == thread
        reopened = _thread(c, thread)
        assert (reopened["status"], reopened["claimed_by"]) == ("unclaimed", None)
        assert [m["body"] for m in reopened["messages"]] == ["hello", "me again"]
        assert [i["contact_id"] for i in _inbox(c, status="unclaimed")["items"]] == [thread]
        assert _inbox(c, status="closed")["items"] == []
        with stack.client() as coordinator:
            types = [e["type"] for e in coordinator.get("/contact/events",
                                                        params={"limit": 5000}).json()["items"]]
        # The thread's own events (the read of it just now is recorded apart).
        types = [t for t in types if t != "RecordReadRecorded"]
        assert types[-2:] == ["ContactReopened", "TextReceived"]


def test_after_the_window_a_text_opens_a_new_thread(settings: Settings, nats_url: str) -> None:
    with Stack(stack_settings(settings, nats_url=nats_url, text_reopen_window_h=0)) as stack:
        thread = _text(stack, NUMBERS[0], "hello")
        with stack.client() as c:
            _set_issues(c, thread)
            assert c.post(f"/contact/contacts/{thread}/close", json={}).status_code == 200
            again = _text(stack, NUMBERS[0], "me again")
            assert again != thread
            assert _thread(c, thread)["status"] == "closed"
            fresh = _thread(c, again)
            assert fresh["status"] == "unclaimed" and fresh["caller_ref"] == _thread(
                c, thread)["caller_ref"]
            assert [m["body"] for m in fresh["messages"]] == ["me again"]


def _sms_in(stack: Stack, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_bin("solidarity"), "sms-in", *args], capture_output=True, text=True,
        timeout=60, check=False,
        env={**os.environ, "SOLIDARITY_DATA_DIR": str(stack.settings.data_dir),
             "SOLIDARITY_PORT": str(stack.settings.port), **env})


def test_sms_in_posts_a_signed_text_and_prints_the_thread_only(stack: Stack) -> None:
    body = f"can anyone talk {PHRASE}"
    ran = _sms_in(stack, "--from", "07700 900303", "--body", body)
    assert ran.returncode == 0, ran.stderr
    assert "7700" not in ran.stdout + ran.stderr and PHRASE not in ran.stdout + ran.stderr
    status, contact_id = ran.stdout.split()
    assert status == "200"
    with stack.client() as c:
        thread = _thread(c, contact_id)
    assert [m["body"] for m in thread["messages"]] == [body]
    # Again, at the contact service's URL given: the same thread.
    ran = _sms_in(stack, "--url", f"{stack.url}{INBOUND}", "--from", NUMBERS[2],
                  "--body", "me again")
    assert ran.returncode == 0 and ran.stdout.split() == ["200", contact_id], ran.stderr
    out = ran.stdout + ran.stderr
    assert "7700" not in out and PHRASE not in out and "me again" not in out
    # Signed with another token: the webhook refuses it, and the command says so.
    events = stored_events(stack)
    ran = _sms_in(stack, "--from", NUMBERS[2], "--body", "x",
                  SOLIDARITY_SMS_AUTH_TOKEN="not-the-token")
    assert ran.returncode == 1 and ran.stderr.startswith("403"), ran.stderr
    assert stored_events(stack) == events
