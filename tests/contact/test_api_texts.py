"""Texts, against the real stack on both stores: the SMS provider's signed webhook,
idempotency on MessageSid, replies through the outbox adapter, consent, erasure, and
that a number or a message body never reaches a file, an event, the bus or a log."""

from __future__ import annotations

import asyncio
import io
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from shared.config import Settings
from shared.messaging.envelope import IntegrationEvent
from shared.sms import SmsSendError, sms_inbound, sms_outbox, twilio_signature
from shared.web.auth import Role
from tests.contact.rota import RotaFeed
from tests.support import (
    PROBLEM,
    Stack,
    contact_body,
    stack_settings,
    stored_events,
    stream_messages,
    wait_for,
)

NUMBER = "+447700900123"  # Ofcom's drama range: never a real person
NUMBER_DIGITS = "7700900123"  # as it would appear in any format (07700 900123, +44...)
LINE = "+447700900000"
PHRASE = "marmalade lighthouse"
INBOUND = "/contact/texts/inbound"



def _app(stack: Stack) -> Any:
    return stack.runtime("contact").app


def _on_shift(stack: Stack) -> str:
    """A supporter on the rota, on a shift that is on now (their token's `sub`)."""
    return RotaFeed(stack.runtime("contact")).on_shift()


def _params(sid: str, body: str, sender: str = NUMBER, **extra: str) -> dict[str, str]:
    return {"From": sender, "To": LINE, "Body": body, "MessageSid": sid,
            "AccountSid": "AC" + "0" * 32, "NumMedia": "0", "FromCountry": "GB", **extra}


def _post_text(stack: Stack, params: dict[str, str], *, signed_url: str | None = None,
               token: str | None = None, signature: str | None = None,
               headers: dict[str, str] | None = None) -> httpx.Response:
    """Post as the provider does: form-encoded, signed over the URL it called."""
    url = f"{stack.url}{INBOUND}"
    if signature is None:
        signature = twilio_signature(token or _app(stack).texts.auth_token, signed_url or url,
                                     params)
    return httpx.post(url, data=params,
                      headers={"X-Twilio-Signature": signature, **(headers or {})}, timeout=30)


def _caller_ref(stack: Stack, number: str = NUMBER) -> str:
    with stack.client(Role.SUPPORTER) as c:
        r = c.get("/contact/callers/lookup", params={"phone": number})
    assert r.status_code == 200, r.text
    return str(r.json()["caller_ref"])


def _text_threads(stack: Stack, caller_ref: str) -> list[dict[str, Any]]:
    with stack.client() as c:
        r = c.get("/contact/contacts", params={"caller_ref": caller_ref})
    assert r.status_code == 200, r.text
    return [i for i in r.json()["items"] if i["channel"] == "text"]


def _thread(stack: Stack, contact_id: str, role: Role = Role.SUPPORTER) -> dict[str, Any]:
    with stack.client(role, sub=_on_shift(stack) if role == Role.SUPPORTER else None) as c:
        r = c.get(f"/contact/texts/{contact_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def _outbox(stack: Stack) -> list[dict[str, Any]]:
    with stack.runtime("contact").engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(sms_outbox)).mappings()]


def _taken(stack: Stack) -> int:
    with stack.runtime("contact").engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(sms_inbound)).scalar()
                   or 0)


# ------------------------------------------------------------------------ inbound


def test_signed_text_creates_caller_and_thread_and_later_texts_append(stack: Stack) -> None:
    r = _post_text(stack, _params("SM" + "1" * 32, f"is anyone there? {PHRASE}"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/xml")
    assert r.text.endswith("<Response/>")

    ref = _caller_ref(stack)
    with stack.client(Role.SUPPORTER) as c:
        caller = c.get(f"/contact/callers/{ref}").json()
    # Texting in opts in to replies in the conversation, and to nothing more.
    assert caller["consent_to_text"] is True and caller["consent_to_keep_history"] is False
    assert caller["has_phone"] is True

    (item,) = _text_threads(stack, ref)
    assert item["direction"] == "inbound" and item["closed"] is False
    thread = _thread(stack, item["id"])
    assert thread["caller_ref"] == ref and thread["can_reply"] is True
    assert [(m["n"], m["direction"], m["body"], m["by"]) for m in thread["messages"]] == [
        (1, "inbound", f"is anyone there? {PHRASE}", None)]

    # The same number, written as it may arrive, appends to the same open thread.
    r = _post_text(stack, _params("SM" + "2" * 32, "still here", sender="+44 7700 900123"))
    assert r.status_code == 200, r.text
    assert [t["id"] for t in _text_threads(stack, ref)] == [item["id"]]
    thread = _thread(stack, item["id"], Role.COORDINATOR)
    assert [m["body"] for m in thread["messages"]] == [f"is anyone there? {PHRASE}",
                                                       "still here"]
    assert thread["messages"][0]["at"] <= thread["messages"][1]["at"]

    # Once the conversation is closed (its issues set first, as for a call), the next
    # text within SOLIDARITY_TEXT_REOPEN_WINDOW_H of its last message reopens it (after
    # the window it opens a new one: tests/system/test_text_inbox.py).
    with stack.client() as c:
        r = c.post(f"/contact/contacts/{item['id']}/close", json={})
        assert r.status_code == 422 and "issues" in r.text
        assert c.patch(f"/contact/contacts/{item['id']}",
                       json={"issues": ["social_isolation"], "reason": "set"}
                       ).status_code == 200
        assert c.post(f"/contact/contacts/{item['id']}/close", json={}).status_code == 200
    r = _post_text(stack, _params("SM" + "3" * 32, "me again"))
    assert r.status_code == 200 and r.headers["location"] == f"/contact/texts/{item['id']}"
    assert [t["id"] for t in _text_threads(stack, ref)] == [item["id"]]
    thread = _thread(stack, item["id"])
    assert thread["closed"] is False and thread["status"] == "unclaimed"
    assert [m["body"] for m in thread["messages"]][-1] == "me again"


def test_wrong_or_missing_signature_is_403_and_stores_nothing(stack: Stack) -> None:
    before, taken = stored_events(stack), _taken(stack)
    params = _params("SM" + "4" * 32, PHRASE)
    attempts = [
        _post_text(stack, params, token="not-the-auth-token"),
        _post_text(stack, params, signed_url="https://elsewhere.example/contact/texts/inbound"),
        _post_text(stack, params, signature="GvWf1cFY/Q7PnoempGyD5oXAezc="),
        httpx.post(f"{stack.url}{INBOUND}", data=params),  # no signature at all
        # Signed, then tampered with: another body under the original signature.
        _post_text(stack, {**params, "Body": "changed"},
                   signature=twilio_signature(_app(stack).texts.auth_token,
                                              f"{stack.url}{INBOUND}", params)),
        # A bearer token is no substitute for the provider's signature.
        _post_text(stack, params, signature="",
                   headers={"Authorization": f"Bearer {stack.token(Role.COORDINATOR)}"}),
    ]
    for r in attempts:
        assert r.status_code == 403, r.text
        assert r.headers["content-type"] == PROBLEM
        assert "X-Twilio-Signature" in r.json()["detail"]
    assert stored_events(stack) == before and _taken(stack) == taken
    with stack.client() as c:
        assert c.get("/contact/callers/lookup", params={"phone": NUMBER}).status_code == 404


def test_replayed_message_sid_creates_nothing_new(stack: Stack) -> None:
    params = _params("SM" + "5" * 32, "hello")
    first = _post_text(stack, params)
    assert first.status_code == 200
    after_first = stored_events(stack)
    for _ in range(3):
        again = _post_text(stack, params)
        assert again.status_code == 200 and again.text == first.text
    assert stored_events(stack) == after_first
    (item,) = _text_threads(stack, _caller_ref(stack))
    assert len(_thread(stack, item["id"])["messages"]) == 1


def test_a_message_being_taken_is_409_until_its_reservation_is_abandoned(
        stack: Stack) -> None:
    sid = "SM" + "c" * 32
    engine = stack.runtime("contact").engine
    with engine.begin() as conn:  # as if another request were taking it right now
        conn.execute(sa.insert(sms_inbound).values(message_sid=sid, state="pending",
                                                   contact_id=None,
                                                   created_at=datetime.now(UTC)))
    before = stored_events(stack)
    r = _post_text(stack, _params(sid, "hello"))
    assert r.status_code == 409 and r.headers["content-type"] == PROBLEM
    assert stored_events(stack) == before
    with engine.begin() as conn:  # ... or had crashed before finishing, long ago
        conn.execute(sa.update(sms_inbound).where(sms_inbound.c.message_sid == sid)
                     .values(created_at=datetime.now(UTC) - timedelta(minutes=5)))
    assert _post_text(stack, _params(sid, "hello")).status_code == 200
    (item,) = _text_threads(stack, _caller_ref(stack))
    assert [m["body"] for m in _thread(stack, item["id"])["messages"]] == ["hello"]
    assert _post_text(stack, _params(sid, "hello")).status_code == 200
    assert len(_thread(stack, item["id"])["messages"]) == 1


def test_bad_webhook_input_is_4xx_naming_the_field_and_stores_nothing(stack: Stack) -> None:
    before = stored_events(stack)
    cases = [
        (_params("SM" + "6" * 32, "hi", sender="+12025550123"), "body.From"),  # not UK
        ({k: v for k, v in _params("SM" + "6" * 32, "hi").items() if k != "MessageSid"},
         "body.MessageSid"),
        (_params("SM/../6", "hi"), "body.MessageSid"),
        (_params("SM" + "6" * 32, "x" * 1601), "body.Body"),
    ]
    for params, field in cases:
        r = _post_text(stack, params)
        assert r.status_code == 422, (field, r.text)
        assert r.headers["content-type"] == PROBLEM
        assert field in [e["field"] for e in r.json()["errors"]], r.json()
        assert "+1202" not in r.text and "x" * 50 not in r.text  # values not echoed
    r = httpx.post(f"{stack.url}{INBOUND}", json=_params("SM" + "6" * 32, "hi"),
                   headers={"X-Twilio-Signature": "x"})
    assert r.status_code == 415 and r.headers["content-type"] == PROBLEM
    assert stored_events(stack) == before and _taken(stack) == 0


def test_concurrent_texts_from_a_new_number_make_one_caller_and_one_thread(
        stack: Stack) -> None:
    results: list[int] = []

    def send(i: int) -> None:
        results.append(_post_text(stack, _params(f"SM{i:032d}", f"part {i}")).status_code)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [200] * 6
    (item,) = _text_threads(stack, _caller_ref(stack))
    bodies = [m["body"] for m in _thread(stack, item["id"])["messages"]]
    assert sorted(bodies) == [f"part {i}" for i in range(6)]


def test_the_configured_public_webhook_url_is_the_one_signed(settings: Settings,
                                                             nats_url: str) -> None:
    public = "https://line.example/contact/texts/inbound?line=lambeth"
    s = stack_settings(settings, nats_url=nats_url, sms_webhook_url=public,
                       sms_auth_token="a-provider-token")
    with Stack(s) as st:
        assert _app(st).texts.auth_token == "a-provider-token"
        params = _params("SM" + "7" * 32, "hi")
        assert _post_text(st, params).status_code == 403  # signed over the request URL
        assert _post_text(st, params, signed_url=public).status_code == 200
        assert _post_text(st, params, signed_url=public.replace("https://line.example",
                                                                "https://line.example:443")
                          ).status_code == 200  # a replay, signed with the default port


# ------------------------------------------------------------------------ replies


def _texting_caller(stack: Stack) -> tuple[str, str]:
    assert _post_text(stack, _params("SM" + "8" * 32, "can someone text me back")
                      ).status_code == 200
    ref = _caller_ref(stack)
    (item,) = _text_threads(stack, ref)
    return ref, item["id"]


def test_reply_to_a_consenting_caller_is_sent_to_the_outbox_sealed(stack: Stack) -> None:
    ref, contact_id = _texting_caller(stack)
    reply = f"Hello, this is the line. {PHRASE} is a lovely phrase."
    me = _on_shift(stack)
    with stack.client(Role.SUPPORTER, sub=me) as c:
        r = c.post(f"/contact/texts/{contact_id}/reply", json={"body": reply})
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/contact/texts/{contact_id}#m2"
    message = r.json()
    assert message["n"] == 2 and message["direction"] == "outbound"
    assert message["body"] == reply and message["by"] == me
    assert message["delivery"] == "outbox" and message["provider_ref"].startswith("outbox-")
    thread = _thread(stack, contact_id)
    assert r.headers["etag"] == f'"{thread["version"]}"'
    assert thread["messages"][1] == message

    (row,) = _outbox(stack)
    assert row["ref"] == message["provider_ref"] and row["status"] == "pending"
    caller_id = str(_app(stack).get_caller(ref).id)
    assert row["subject_id"] == caller_id
    for column, value in row.items():
        assert NUMBER_DIGITS not in str(value), column
        assert PHRASE not in str(value) and "Hello, this is" not in str(value), column
    keys = _app(stack).keys
    assert row["recipient"].startswith(f"pd1:{caller_id}:")
    assert keys.open(row["recipient"]) == NUMBER and keys.open(row["body"]) == reply
    assert _app(stack).texts.sender.pending()[0]["to"] == NUMBER


def test_reply_refused_without_consent_to_text(stack: Stack) -> None:
    with stack.client(Role.SUPPORTER, sub=_on_shift(stack)) as c:
        r = c.post("/contact/callers", json={"phone": "07700 900456", "consent_to_text": False,
                                             "consent_to_keep_history": True})
        assert r.status_code == 201, r.text
        ref = r.json()["caller_ref"]
        r = c.post("/contact/contacts", json=contact_body(channel="text", caller_ref=ref))
        assert r.status_code == 201, r.text
        contact_id = r.json()["id"]
        before = stored_events(stack)
        r = c.post(f"/contact/texts/{contact_id}/reply", json={"body": "hello"})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == PROBLEM
        assert "consented" in r.json()["detail"]
        assert stored_events(stack) == before and _outbox(stack) == []
        assert c.get(f"/contact/texts/{contact_id}").json()["can_reply"] is False

        # Consent recorded: the reply goes.
        assert c.patch(f"/contact/callers/{ref}", json={"consent_to_text": True}
                       ).status_code == 200
        r = c.post(f"/contact/texts/{contact_id}/reply", json={"body": "hello"})
        assert r.status_code == 201, r.text
        assert r.headers["location"] == f"/contact/texts/{contact_id}#m1"

        # An anonymous text contact has nobody to reply to; a phone call is no thread.
        anon = c.post("/contact/contacts", json=contact_body(channel="text")).json()["id"]
        r = c.post(f"/contact/texts/{anon}/reply", json={"body": "hello"})
        assert r.status_code == 422 and "no known caller" in r.json()["detail"]
        call = c.post("/contact/contacts", json=contact_body()).json()["id"]
        assert c.get(f"/contact/texts/{call}").status_code == 404
        assert c.post(f"/contact/texts/{call}/reply", json={"body": "x"}).status_code == 422


def test_reply_validation_roles_and_idempotency(stack: Stack) -> None:
    _, contact_id = _texting_caller(stack)
    path = f"/contact/texts/{contact_id}"
    before = stored_events(stack)
    with stack.client(Role.COORDINATOR) as c:
        for body, field in [({"body": ""}, "body.body"), ({"body": "   "}, "body.body"),
                            ({"body": "x" * 1601}, "body.body"), ({}, "body.body"),
                            ({"body": "hi", "to": NUMBER}, "body.to")]:
            r = c.post(f"{path}/reply", json=body)
            assert r.status_code == 422, body
            assert field in [e["field"] for e in r.json()["errors"]]
    assert stored_events(stack) == before
    for role in (Role.AUDITOR, Role.PARTNER):
        with stack.client(role) as c:
            assert c.get(path).status_code == 403
            assert c.post(f"{path}/reply", json={"body": "hi"}).status_code == 403
    with stack.client(role=None) as c:
        assert c.get(path).status_code == 401
        assert c.post(f"{path}/reply", json={"body": "hi"}).status_code == 401
    with stack.client(Role.SUPPORTER, sub=_on_shift(stack)) as c:
        key = {"Idempotency-Key": "reply-1"}
        first = c.post(f"{path}/reply", json={"body": "x" * 1600}, headers=key)
        again = c.post(f"{path}/reply", json={"body": "x" * 1600}, headers=key)
        assert first.status_code == again.status_code == 201
        assert first.json() == again.json() and first.headers["location"] == again.headers[
            "location"]
    assert len(_outbox(stack)) == 1, "a retried reply is never sent twice"
    assert stored_events(stack) == before + 1


def test_a_provider_failure_is_502_and_records_nothing(stack: Stack) -> None:
    _, contact_id = _texting_caller(stack)

    class Refusing:
        def send(self, to_e164: str, body: str) -> str:
            raise SmsSendError("the SMS provider refused the message (HTTP 400, code 21610)")

    app = _app(stack)
    original, app.texts.sender = app.texts.sender, Refusing()
    try:
        before = stored_events(stack)
        with stack.client(Role.SUPPORTER, sub=_on_shift(stack)) as c:
            r = c.post(f"/contact/texts/{contact_id}/reply", json={"body": "hello"})
        assert r.status_code == 502 and r.headers["content-type"] == PROBLEM
        assert "21610" in r.json()["detail"]
        assert stored_events(stack) == before
    finally:
        app.texts.sender = original


def test_erasure_shreds_the_thread_and_stops_replies(stack: Stack) -> None:
    ref, contact_id = _texting_caller(stack)
    with stack.client(Role.SUPPORTER, sub=_on_shift(stack)) as c:
        assert c.post(f"/contact/texts/{contact_id}/reply",
                      json={"body": f"we are here {PHRASE}"}).status_code == 201
    with stack.client() as c:
        assert c.delete(f"/contact/callers/{ref}/personal-data").status_code == 200
        thread = c.get(f"/contact/texts/{contact_id}").json()
        assert [m["body"] for m in thread["messages"]] == ["[erased]", "[erased]"]
        assert [m["direction"] for m in thread["messages"]] == ["inbound", "outbound"]
        assert thread["can_reply"] is False
        r = c.post(f"/contact/texts/{contact_id}/reply", json={"body": "hello?"})
        assert r.status_code == 422
    (row,) = _outbox(stack)
    assert _app(stack).keys.open(row["body"]) is None
    assert _app(stack).keys.open(row["recipient"]) is None
    # The number is forgotten: a new text from it is a new caller and a new thread.
    assert _post_text(stack, _params("SM" + "9" * 32, "hi again")).status_code == 200
    new_ref = _caller_ref(stack)
    assert new_ref != ref
    (item,) = _text_threads(stack, new_ref)
    assert item["id"] != contact_id


def test_a_new_text_goes_to_the_supporters_on_call_who_read_and_answer_it_on_shift(
        stack: Stack) -> None:
    rota = RotaFeed(stack.runtime("contact"))
    now = datetime.now(UTC)
    a, b, off = rota.supporter(), rota.supporter(), rota.supporter()
    tonight = rota.shift(now - timedelta(hours=1), now + timedelta(hours=5), a, b)
    rota.shift(now - timedelta(hours=9), now - timedelta(hours=3), off)
    _, contact_id = _texting_caller(stack)
    with stack.client(Role.SUPPORTER, sub=a) as c:
        contact = c.get(f"/contact/contacts/{contact_id}").json()
        assert sorted(contact["supporter_ids"]) == sorted([a, b])
        assert contact["shift_id"] == tonight
        assert c.get(f"/contact/texts/{contact_id}").status_code == 200
        r = c.post(f"/contact/texts/{contact_id}/reply", json={"body": "We're here."})
        assert r.status_code == 201 and r.json()["by"] == a
    before = stored_events(stack)
    with stack.client(Role.SUPPORTER, sub=off) as c:  # their shift ended three hours ago
        for r in (c.get(f"/contact/texts/{contact_id}"),
                  c.post(f"/contact/texts/{contact_id}/reply", json={"body": "hello"})):
            assert r.status_code == 403 and r.headers["content-type"] == PROBLEM
            assert "on shift" in r.json()["detail"]
    assert stored_events(stack) == before and len(_outbox(stack)) == 1


# ------------------------------------------------------------------------ privacy


async def _stream_raw(url: str, service: str) -> list[bytes]:
    """Every message in the service's stream, as the bytes NATS holds."""
    return await stream_messages(url, service)


def _files_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file())


def _postgres_contents(stack: Stack) -> str:
    engine = stack.runtime("contact").engine
    out = []
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                out.append(repr(tuple(bytes(v) if isinstance(v, memoryview) else v
                                      for v in row)))
    return "\n".join(out)


def test_number_and_body_reach_no_file_event_bus_or_log(settings: Settings,
                                                        nats_url: str) -> None:
    from shared.logging import configure_logging

    logs = io.StringIO()
    real_stderr = sys.stderr
    sys.stderr = logs
    configure_logging("json", "DEBUG")
    try:
        with Stack(stack_settings(settings, nats_url=nats_url)) as st:
            assert _post_text(st, _params("SM" + "a" * 32, f"tonight {PHRASE} again")
                              ).status_code == 200
            assert _post_text(st, _params("SM" + "a" * 32, f"tonight {PHRASE} again")
                              ).status_code == 200  # a replay
            assert _post_text(st, _params("SM" + "b" * 32, PHRASE), token="wrong"
                              ).status_code == 403
            ref = _caller_ref(st)
            (item,) = _text_threads(st, ref)
            with st.client(Role.SUPPORTER, sub=_on_shift(st)) as c:
                r = c.post(f"/contact/texts/{item['id']}/reply",
                           json={"body": f"Thank you. {PHRASE} noted."})
                assert r.status_code == 201, r.text
            app = _app(st)
            head = app.max_notification_id()
            relay = st.runtime("contact").relay
            wait_for(lambda: relay.positions.get() == head, what="the relay to publish all")

            with st.client(Role.AUDITOR) as c:
                events = c.get("/contact/events", params={"limit": 1000})
            assert events.status_code == 200
            raw = asyncio.run(_stream_raw(nats_url, "contact"))
            published = [IntegrationEvent.from_bytes(m) for m in raw]
            assert len(published) == head
            types = [e.type for e in published]
            assert "TextReceived" in types and "TextSent" in types
            bus = b"\n".join(raw).decode()
            for e in published:
                if e.type in {"TextReceived", "TextSent"}:
                    assert set(e.data) == {"contact_id", "at"}
            stored = _postgres_contents(st) if settings.is_postgres else ""
            sqlite = _files_bytes(st.settings.data_dir)
    finally:
        sys.stderr = real_stderr
        configure_logging("console", "WARNING")

    log_text = logs.getvalue()
    assert "/contact/texts/inbound" in log_text  # the access log did run
    for needle in (NUMBER_DIGITS, PHRASE, "07700 900123"):
        assert needle.encode() not in sqlite, needle
        assert needle not in stored, needle
        assert needle not in events.text, needle
        assert needle not in bus, needle
        assert needle not in log_text, needle
