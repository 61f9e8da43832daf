"""Ringing back, over real HTTP and NATS on SQLite and PostgreSQL: a caller's or a
missed call's number shown for a stated purpose (recorded first, the purpose sealed) to
those on shift, only with the caller's consent; a call-back placed through the embedded
call outbox, once per Idempotency-Key, nothing recorded when the provider refuses; a
contact that ``responds_to`` a missed call completing its call-back, whose outcome any
supporter on shift reads; and no number in the events, on the bus or in the outbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import sqlalchemy as sa

from shared.calls import CallPlaceError, call_outbox
from shared.web.auth import Role
from tests.contact.rota import RotaFeed
from tests.support import PROBLEM, Stack, contact_body, stored_events, stream_messages, wait_for

NUMBER = "+447700900461"  # Ofcom's drama range: never a real person
OTHER = "+447700900462"
DIGITS = ("7700900461", "7700900462", "7700900555")  # any format would contain these
OWN_PHONE = "07700 900555"


def _app(stack: Stack) -> Any:
    return stack.runtime("contact").app


def _started(minutes: int = 20) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()


def _caller(c: httpx.Client, **fields: Any) -> str:
    r = c.post("/contact/callers", json=fields)
    assert r.status_code == 201, r.text
    return str(r.json()["caller_ref"])


def _missed(c: httpx.Client, **fields: Any) -> dict[str, Any]:
    r = c.post("/contact/contacts", json=contact_body(
        started_at=_started(), ended_at=None, answered=False, issues=[], **fields))
    assert r.status_code == 201, r.text
    return dict(r.json())


def _problem(r: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = dict(r.json())
    for word in words:
        assert word in r.text, (word, r.text)
    return body


def _events(stack: Stack, type_: str) -> list[Any]:
    return [e for e in _app(stack).integration_events(0, 5000) if e.type == type_]


def _stored_state(stack: Stack, aggregate_id: Any) -> str:
    """Every stored event of one aggregate, as the store holds it."""
    recorder = _app(stack).recorder
    return " ".join(bytes(e.state).decode("latin-1")
                    for e in recorder.select_events(aggregate_id))


def test_a_callers_number_is_shown_with_a_purpose_to_those_on_shift_with_consent(
        stack: Stack) -> None:
    rota = RotaFeed(stack.runtime("contact"))
    on_shift, off_shift = rota.on_shift(), rota.supporter()
    with stack.client(Role.COORDINATOR, sub="coord-1") as coord, \
            stack.client(Role.SUPPORTER, sub=on_shift) as sup, \
            stack.client(Role.SUPPORTER, sub=off_shift) as off:
        texts = _caller(coord, phone="07700 900461", consent_to_text=True)
        silent = _caller(coord, phone="07700 900462")
        no_phone = _caller(coord, consent_to_text=True)

        r = sup.post(f"/contact/callers/{texts}/phone",
                     json={"purpose": "ring back as agreed on Friday"})
        assert r.status_code == 200, r.text
        assert r.json() == {"phone": NUMBER}
        caller = _app(stack).get_caller(texts)
        assert caller.phone_reveals == 1
        state = _stored_state(stack, caller.id)
        assert "pd1:" in state and "as agreed on Friday" not in state and NUMBER not in state
        (revealed,) = _events(stack, "CallerPhoneRevealed")
        assert revealed.data == {"by": on_shift, "grounds": "consent_to_text"}

        before = stored_events(stack)
        _problem(off.post(f"/contact/callers/{texts}/phone", json={"purpose": "curious"}),
                 403, "on shift")
        _problem(sup.post(f"/contact/callers/{silent}/phone", json={"purpose": "ring back"}),
                 403, "not consented to being contacted")
        _problem(sup.post(f"/contact/callers/{no_phone}/phone",
                          json={"purpose": "ring back"}), 422, "no phone number")
        bad = _problem(sup.post(f"/contact/callers/{texts}/phone", json={}), 422)
        assert "purpose" in str(bad.get("errors"))
        assert stored_events(stack) == before

        # A missed call of theirs awaiting its call-back is consent to ring them back.
        _missed(coord, caller_ref=silent)
        r = sup.post(f"/contact/callers/{silent}/phone", json={"purpose": "missed call"})
        assert r.status_code == 200 and r.json() == {"phone": OTHER}, r.text
        # So is an accepted referral.
        referred = _caller(coord, phone="07700 900555")
        r = coord.post("/contact/referrals", json={"source": "gp", "caller_ref": referred,
                                                   "consent_to_contact": True})
        assert r.status_code == 201, r.text
        _problem(sup.post(f"/contact/callers/{referred}/phone", json={"purpose": "referral"}),
                 403)
        accepted = coord.post(f"/contact/referrals/{r.json()['id']}/accept",
                              json={"reason": "fits the service"})
        assert accepted.status_code == 200, accepted.text
        r = sup.post(f"/contact/callers/{referred}/phone", json={"purpose": "referral"})
        assert r.status_code == 200 and r.json() == {"phone": "+447700900555"}, r.text
        assert [e.data["grounds"] for e in _events(stack, "CallerPhoneRevealed")] == [
            "consent_to_text", "call_back_open", "referral_accepted"]

        # Erased: the number is gone, and said so.
        assert coord.delete(f"/contact/callers/{texts}/personal-data").status_code == 200
        _problem(coord.post(f"/contact/callers/{texts}/phone", json={"purpose": "again"}),
                 422, "erased")
        events_text = coord.get("/contact/events", params={"limit": 1000}).text
    for digits in DIGITS:
        assert digits not in events_text


class RefusingPlacer:
    """A call provider that refuses every call (as Twilio does a bad number)."""

    def place(self, ring: str, caller: str) -> str:
        raise CallPlaceError("the call provider refused the call (HTTP 400, code 21211)")


def _outbox(stack: Stack) -> list[dict[str, Any]]:
    with stack.runtime("contact").engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(call_outbox)).mappings()]


def test_a_missed_call_is_rung_back_and_the_contact_that_answers_completes_its_call_back(
        stack: Stack, nats_url: str) -> None:
    rota = RotaFeed(stack.runtime("contact"))
    first, second, off_shift = rota.on_shift(), rota.on_shift(), rota.supporter()
    with stack.client(Role.COORDINATOR, sub="coord-1") as coord, \
            stack.client(Role.SUPPORTER, sub=first) as took, \
            stack.client(Role.SUPPORTER, sub=second) as sup, \
            stack.client(Role.SUPPORTER, sub=off_shift) as off, \
            stack.client(Role.AUDITOR) as auditor:
        missed = _missed(took, phone="07700 900461", supporter_ids=[first])
        mid = missed["id"]
        assert [f["kind"] for f in missed["follow_ups"]] == ["call_back"]
        assert missed["responds_to"] is None

        # Its number, for a supporter on shift who did not take it.
        r = sup.post(f"/contact/contacts/{mid}/phone", json={"purpose": "ring back"})
        assert r.status_code == 200 and r.json() == {"phone": NUMBER}, r.text
        assert [e.data for e in _events(stack, "MissedCallNumberRevealed")] == [
            {"contact_id": mid, "by": second}]
        missed_id = UUID(mid)
        state = _stored_state(stack, missed_id)
        assert NUMBER not in state and "ring back" not in state

        # A call-back through the embedded outbox, once per Idempotency-Key.
        before = stored_events(stack)
        _problem(off.post(f"/contact/contacts/{mid}/call-back", json={"ring": OWN_PHONE}),
                 403, "on shift")
        bad = _problem(sup.post(f"/contact/contacts/{mid}/call-back",
                                json={"ring": "not a phone"}), 422)
        assert "ring" in str(bad["errors"]) and "not a phone" not in bad["detail"]
        app = _app(stack)
        placer, app.ring_back.placer = app.ring_back.placer, RefusingPlacer()
        try:
            _problem(sup.post(f"/contact/contacts/{mid}/call-back", json={"ring": OWN_PHONE}),
                     502, "refused")
        finally:
            app.ring_back.placer = placer
        assert stored_events(stack) == before and _outbox(stack) == []
        key = {"Idempotency-Key": "ring-back-1"}
        r = sup.post(f"/contact/contacts/{mid}/call-back", json={"ring": OWN_PHONE},
                     headers=key)
        assert r.status_code == 201, r.text
        placed = r.json()
        assert (placed["n"], placed["placed_by"], placed["delivery"]) == (1, second, "outbox")
        assert r.headers["location"] == f"/contact/contacts/{mid}"
        again = sup.post(f"/contact/contacts/{mid}/call-back", json={"ring": OWN_PHONE},
                         headers=key)
        assert again.status_code == 201 and again.json() == placed
        (kept,) = _outbox(stack)
        assert (kept["ref"], kept["ring"], kept["dial"]) == (
            placed["provider_ref"], "*********0555", "*********0461")
        assert [e.data["n"] for e in _events(stack, "CallBackPlaced")] == [1]

        # The contact that answers it: bad references first.
        answered = coord.post("/contact/contacts", json=contact_body(
            started_at=_started(), ended_at=None)).json()["id"]
        _problem(coord.post(f"/contact/contacts/{answered}/call-back",
                            json={"ring": OWN_PHONE}), 422, "only a missed call")
        for responds_to, words in ((answered, "not a missed call"),
                                   ("00000000-0000-4000-8000-000000000000", "no contact")):
            body = _problem(sup.post("/contact/contacts", json=contact_body(
                started_at=_started(5), ended_at=None, direction="outbound",
                responds_to=responds_to)), 422, words)
            assert "responds_to" in str(body["errors"])
        r = sup.post("/contact/contacts", json=contact_body(
            started_at=_started(5), ended_at=None, direction="outbound",
            supporter_ids=[second], responds_to=mid))
        assert r.status_code == 201, r.text
        back = r.json()
        assert back["responds_to"] == mid

        # Done: any supporter on shift reads how it went; others see no text.
        (follow_up,) = sup.get(f"/contact/contacts/{mid}").json()["follow_ups"]
        assert follow_up["completed_at"] is not None
        assert follow_up["answered_by"] == back["id"]
        assert follow_up["outcome"] == f"called back: contact {back['id']}"
        for outsider in (off, auditor):
            (hidden,) = outsider.get(f"/contact/contacts/{mid}").json()["follow_ups"]
            assert hidden["outcome"] is None and hidden["answered_by"] == back["id"]
        assert [e.data for e in _events(stack, "CallBackAnswered")] == [
            {"contact_id": mid, "n": 1, "answered_by": back["id"]}]

        # Its call-back done, only the coordinator may ring it back.
        _problem(sup.post(f"/contact/contacts/{mid}/phone", json={"purpose": "again"}), 403,
                 "only the coordinator")
        r = coord.post(f"/contact/contacts/{mid}/phone", json={"purpose": "safeguarding"})
        assert r.status_code == 200 and r.json() == {"phone": NUMBER}
        assert _app(stack).get_contact(missed_id).number_reveals == 2

        relay = stack.runtime("contact").relay
        wait_for(lambda: relay.position == app.max_notification_id(), what="all published")
        events_text = coord.get("/contact/events", params={"limit": 1000}).text
    on_the_bus = asyncio.run(stream_messages(nats_url, "contact"))
    assert any(b"CallBackPlaced" in m for m in on_the_bus)
    for digits in DIGITS:
        assert digits not in events_text
        assert all(digits.encode() not in m for m in on_the_bus)
