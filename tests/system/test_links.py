"""Links between records, end to end over real HTTP and NATS on SQLite and PostgreSQL:
signposting, summary and ``caller_is`` added to a contact (and to a text conversation)
by a correction; an accepted referral's first-contact follow-up, completed by the
contact logged with its ``referral_id`` in the same save; a partner reading the status
of the referrals it made, and only those; directory entries open 24/7; and the ETag of
a new distressing contact.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from shared.config import Settings
from shared.sms import twilio_signature
from shared.web.auth import Role
from tests.support import PROBLEM, Stack, contact_body, stack_settings, stream_messages, wait_for

NUMBER = "+447700900456"  # Ofcom's drama range: never a real person
LONDON = ZoneInfo("Europe/London")
FAR = (datetime.now(UTC) + timedelta(days=400)).isoformat()


def _started(minutes: int = 30) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()


def _entry(c: httpx.Client, name: str, **kw: Any) -> str:
    r = c.post("/contact/directory", json={"name": name, "helps_with": ["housing"], **kw})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _problem(r: httpx.Response, status: int, field: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body = dict(r.json())
    assert any(e["field"] == field for e in body.get("errors", [])) or field in body["detail"], \
        body
    return body


def _contacts(c: httpx.Client) -> int:
    r = c.get("/contact/contacts", params={"limit": 200})
    assert r.status_code == 200, r.text
    return len(r.json()["items"])


def _stored(stack: Stack) -> int:
    return len(stack.runtime("contact").app.integration_events(0, 100_000))


# -- corrections: signposting, summary, caller_is ------------------------------------------


def test_a_correction_adds_signposting_summary_and_caller_is(stack: Stack) -> None:
    with stack.client() as c:
        a, b = _entry(c, "Shelter"), _entry(c, "Thames Reach")
        r = c.post("/contact/contacts", json=contact_body(started_at=_started(), ended_at=None))
        assert r.status_code == 201, r.text
        cid, etag = r.json()["id"], r.headers["etag"]
        url = f"/contact/contacts/{cid}"

        before = _stored(stack)
        unknown = "00000000-0000-4000-8000-00000000abcd"
        bad = c.patch(url, json={"reason": "sheet re-read", "signposted_to": [a, unknown]},
                      headers={"If-Match": etag})
        assert unknown in _problem(bad, 422, "body.signposted_to")["detail"]
        bad = c.patch(url, json={"reason": "x", "caller_is": "a_stranger"})
        _problem(bad, 422, "body.caller_is")
        assert _stored(stack) == before and c.get(url).headers["etag"] == etag

        r = c.patch(url, json={"reason": "sheet re-read", "signposted_to": [a, b],
                               "summary": "talked about the eviction notice",
                               "caller_is": "carer_family_friend"},
                    headers={"If-Match": etag})
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["signposted_to"] == [a, b] and got["caller_is"] == "carer_family_friend"
        assert got["summary"] == "talked about the eviction notice"
        assert got["issues"] == ["social_isolation"] and got["corrections"] == 1
        assert r.headers["etag"] == f'"{int(etag.strip(chr(34))) + 1}"'
        stale = c.patch(url, json={"reason": "again", "signposted_to": [b]},
                        headers={"If-Match": etag})
        assert stale.status_code == 412 and stale.headers["etag"] == r.headers["etag"]

        # The list (read model) and the auditor's view follow; the summary stays hidden.
        item = next(i for i in c.get("/contact/contacts").json()["items"] if i["id"] == cid)
        assert item["signposted_to"] == [a, b] and item["caller_is"] == "carer_family_friend"
        assert item["summary"] == "talked about the eviction notice"
        with stack.client(Role.AUDITOR) as auditor:
            seen = auditor.get(url).json()
        assert seen["summary"] is None and seen["signposted_to"] == [a, b]

        # Published over NATS with ids and codes, never the summary.
        def corrected() -> list[dict[str, Any]]:
            messages = asyncio.run(stream_messages(stack.settings.nats_url or "", "contact"))
            return [json.loads(m) for m in messages
                    if b"ContactCorrected" in m and cid.encode() in m]

        (message,) = wait_for(corrected, 20, 0.2, "ContactCorrected on the bus")
        assert message["data"]["signposted_to"] == [a, b]
        assert message["data"]["caller_is"] == "carer_family_friend"
        assert "eviction" not in json.dumps(message)

        # Reporting counts signposting given after the contact was logged.
        month = datetime.fromisoformat(got["started_at"]).astimezone(LONDON).strftime("%Y-%m")

        def counted() -> dict[str, int] | None:
            report = c.get("/reporting/monthly", params={"month": month}).json()
            signposting: dict[str, int] = report["contacts"]["signposting"]
            return signposting if {"Shelter", "Thames Reach"} <= set(signposting) else None

        assert wait_for(counted, 20, 0.2, "the correction's signposting in the report") == {
            "Shelter": 1, "Thames Reach": 1}


def _inbound_text(stack: Stack, body: str) -> None:
    url = f"{stack.url}/contact/texts/inbound"
    params = {"From": NUMBER, "To": "+447700900000", "Body": body, "MessageSid": "SM" + "1" * 32,
              "AccountSid": "AC" + "0" * 32}
    signature = twilio_signature(stack.runtime("contact").app.texts.auth_token, url, params)
    r = httpx.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=30)
    assert r.status_code < 300, r.text


def test_a_text_conversation_gets_summary_caller_is_and_signposting(stack: Stack) -> None:
    _inbound_text(stack, "can't sleep, the flat is cold")
    with stack.client() as c:
        entry = _entry(c, "Lambeth housing advice")
        ref = c.get("/contact/callers/lookup", params={"phone": NUMBER}).json()["caller_ref"]
        (thread,) = [i for i in c.get("/contact/contacts", params={"caller_ref": ref})
                     .json()["items"] if i["channel"] == "text"]
        url = f"/contact/contacts/{thread['id']}"
        etag = c.get(url).headers["etag"]
        r = c.patch(url, json={"reason": "after the conversation", "issues": ["housing"],
                               "summary": "cold flat, landlord not answering",
                               "caller_is": "person_in_crisis", "signposted_to": [entry]},
                    headers={"If-Match": etag})
        assert r.status_code == 200, r.text
        got = r.json()
        assert (got["channel"], got["issues"], got["caller_is"], got["signposted_to"]) == (
            "text", ["housing"], "person_in_crisis", [entry])
        assert got["summary"] == "cold flat, landlord not answering"


# -- referrals: first contact, and what a partner reads -------------------------------------


def _refer(c: httpx.Client, phone: str, reason: str = "low mood since redundancy") -> str:
    r = c.post("/contact/referrals", json={
        "source": "gp", "referrer_organisation": "Stockwell Practice",
        "caller": {"alias": "Pat", "phone": phone}, "reason": reason,
        "consent_to_contact": True})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _follow_ups(c: httpx.Client) -> list[dict[str, Any]]:
    r = c.get("/contact/follow-ups", params={"due_before": FAR})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def test_accepting_opens_first_contact_and_a_contact_with_referral_id_makes_it(
        settings: Settings, nats_url: str) -> None:
    s = stack_settings(settings, nats_url=nats_url, referral_first_contact_days=3)
    with Stack(s) as stack, stack.client() as c, \
            stack.client(Role.PARTNER, sub="lambeth-gp-system") as gp:
        rid = _refer(gp, "07700 900321")
        other = _refer(gp, "07700 900322")
        pending = _refer(gp, "07700 900323")
        coordinator_ref = c.get(f"/contact/referrals/{rid}").json()["caller_ref"]
        accepted_at = datetime.now(UTC)
        for one in (rid, other):
            r = c.post(f"/contact/referrals/{one}/accept", json={"reason": "in area"})
            assert r.status_code == 200, r.text
        due = datetime.fromisoformat(r.json()["first_contact_due_by"])
        assert timedelta(days=3) <= due - accepted_at < timedelta(days=3, minutes=1)
        assert r.json()["first_contact"] is None

        items = [i for i in _follow_ups(c) if i["kind"] == "first_contact"]
        assert {i["referral_id"] for i in items} == {rid, other}
        mine = next(i for i in items if i["referral_id"] == rid)
        assert mine["contact_id"] is None and mine["caller_ref"] == coordinator_ref
        assert mine["n"] == 1

        # Refused, naming referral_id, with nothing stored: unknown, not accepted, another
        # caller's, a missed call.
        other_ref = c.get(f"/contact/referrals/{other}").json()["caller_ref"]
        before, count = _stored(stack), _contacts(c)  # after the read (it is recorded)
        for body, words in (
            ({"referral_id": "00000000-0000-4000-8000-00000000beef"}, "no referral"),
            ({"referral_id": pending}, "not accepted"),
            ({"referral_id": rid, "caller_ref": other_ref}, "another caller"),
            ({"referral_id": rid, "answered": False, "issues": []}, "missed call"),
        ):
            r = c.post("/contact/contacts", json=contact_body(started_at=_started(),
                                                             ended_at=None, **body))
            assert words in _problem(r, 422, "body.referral_id")["detail"], body
        assert _stored(stack) == before and _contacts(c) == count

        # Without caller_ref, the referred person is the caller; the referral is contacted
        # and its follow-up done, in the same save.
        started = _started(20)
        r = c.post("/contact/contacts", json=contact_body(
            started_at=started, ended_at=None, referral_id=rid, direction="outbound"))
        assert r.status_code == 201, r.text
        contact_id = r.json()["id"]
        assert r.json()["caller_ref"] == coordinator_ref
        got = c.get(f"/contact/referrals/{rid}").json()
        assert got["status"] == "contacted"
        assert got["first_contact"]["contact_id"] == contact_id
        assert datetime.fromisoformat(got["first_contact"]["at"]) == datetime.fromisoformat(
            started)
        assert {i.get("referral_id") for i in _follow_ups(c)} >= {other}
        assert rid not in {i.get("referral_id") for i in _follow_ups(c)}
        contacted = c.get("/contact/referrals", params={"status": "contacted"}).json()
        assert [i["id"] for i in contacted["items"]] == [rid]

        # A second contact for it is logged; the referral keeps its first contact.
        version = got["version"]
        r = c.post("/contact/contacts", json=contact_body(
            started_at=_started(5), ended_at=None, referral_id=rid,
            caller_ref=coordinator_ref))
        assert r.status_code == 201, r.text
        again = c.get(f"/contact/referrals/{rid}").json()
        assert again["first_contact"] == got["first_contact"] and again["version"] == version

        def first_contact_on_the_bus() -> list[dict[str, Any]]:
            messages = asyncio.run(stream_messages(nats_url, "contact"))
            return [json.loads(m) for m in messages if b"ReferralFirstContactMade" in m]

        (message,) = wait_for(first_contact_on_the_bus, 20, 0.2, "the first contact")
        assert message["data"]["referral_id"] == rid
        assert message["data"]["contact_id"] == contact_id
        assert "Pat" not in json.dumps(message) and "Stockwell" not in json.dumps(message)


def test_two_contacts_racing_to_make_first_contact_one_wins_the_other_stores_nothing(
        stack: Stack) -> None:
    """The contact and the referral's first contact are saved together: the contact whose
    referral was made first contact meanwhile is refused whole (409), not half-saved."""
    app = stack.runtime("contact").app
    with stack.client() as c:
        rid = _refer(c, "07700 900341")
        assert c.post(f"/contact/referrals/{rid}/accept", json={"reason": "ok"}
                      ).status_code == 200
        original, raced = app.referrals.for_contact, []

        def racing(referral_id: Any, caller: Any, *, answered: bool) -> Any:
            found = original(referral_id, caller, answered=answered)
            if not raced:  # meanwhile, another supporter logs the first contact
                raced.append(True)
                with stack.client() as other:
                    r = other.post("/contact/contacts", json=contact_body(
                        started_at=_started(15), ended_at=None, referral_id=rid))
                raced.append(r)
            return found

        app.referrals.for_contact = racing
        try:
            before = _contacts(c)
            r = c.post("/contact/contacts", json=contact_body(
                started_at=_started(10), ended_at=None, referral_id=rid))
        finally:
            del app.referrals.for_contact
        assert raced[1].status_code == 201, raced[1].text
        assert r.status_code == 409, r.text
        assert _contacts(c) == before + 1  # the winner only
        got = c.get(f"/contact/referrals/{rid}").json()
        assert got["first_contact"]["contact_id"] == raced[1].json()["id"]
        # Sent again, it is logged; the referral keeps the winner as its first contact.
        r = c.post("/contact/contacts", json=contact_body(
            started_at=_started(10), ended_at=None, referral_id=rid))
        assert r.status_code == 201
        assert c.get(f"/contact/referrals/{rid}").json()["first_contact"] == got[
            "first_contact"]


def test_a_partner_reads_the_status_of_its_own_referrals_only(stack: Stack) -> None:
    with stack.client() as c, stack.client(Role.PARTNER, sub="gp-a") as a, \
            stack.client(Role.PARTNER, sub="gp-b") as b:
        first = _refer(a, "07700 900331", reason="very private reason")
        second = _refer(a, "07700 900332")
        theirs = _refer(b, "07700 900333")
        mine = _refer(c, "07700 900334")
        assert c.post(f"/contact/referrals/{first}/accept",
                      json={"reason": "in area, knows us"}).status_code == 200
        assert c.post(f"/contact/referrals/{second}/decline",
                      json={"reason": "out of area"}).status_code == 200

        r = a.get(f"/contact/referrals/{first}")
        assert r.status_code == 200, r.text
        seen = r.json()
        assert seen["status"] == "accepted" and seen["first_contact_due_by"] is not None
        assert r.headers["etag"] == '"2"'
        for hidden in ("reason", "outcome_reason", "referrer_organisation", "caller_ref",
                       "decided_by", "first_contact"):
            assert seen[hidden] is None, hidden
        text = r.text
        assert "private" not in text and "Stockwell" not in text and "Pat" not in text

        listed = a.get("/contact/referrals").json()["items"]
        assert [(i["id"], i["status"]) for i in listed] == [(first, "accepted"),
                                                             (second, "declined")]
        assert all(i["outcome_reason"] is None and i["reason"] is None for i in listed)
        declined = a.get("/contact/referrals", params={"status": "declined"}).json()["items"]
        assert [i["id"] for i in declined] == [second]

        for other in (theirs, mine):
            r = a.get(f"/contact/referrals/{other}")
            assert r.status_code == 404 and r.json()["detail"] == "No such referral."
        assert [i["id"] for i in b.get("/contact/referrals").json()["items"]] == [theirs]
        nowhere = a.get("/contact/referrals/00000000-0000-4000-8000-0000000000aa")
        assert nowhere.status_code == 404 and nowhere.json()["detail"] == "No such referral."

        # The coordinator still sees everything, with reasons.
        everything = c.get("/contact/referrals").json()["items"]
        assert {i["id"] for i in everything} == {first, second, theirs, mine}
        assert c.get(f"/contact/referrals/{first}").json()["reason"] == "very private reason"
        # A partner still decides nothing.
        assert a.post(f"/contact/referrals/{first}/decline",
                      json={"reason": "x"}).status_code == 403


# -- the directory: open 24/7 ----------------------------------------------------------------


def test_an_entry_open_24_7_is_found_at_any_time(stack: Stack) -> None:
    with stack.client() as c:
        bad = c.post("/contact/directory", json={
            "name": "Samaritans", "helps_with": ["suicidal_thoughts"], "open_24_7": True,
            "opening_hours": [{"day": "mon", "opens": "09:00", "closes": "17:00"}]})
        _problem(bad, 422, "body.opening_hours")
        r = c.post("/contact/directory", json={"name": "Samaritans", "phone": "116 123",
                                               "helps_with": ["suicidal_thoughts"],
                                               "open_24_7": True})
        assert r.status_code == 201, r.text
        always = r.json()
        assert always["open_24_7"] is True and always["opening_hours"] == []
        daytime = _entry(c, "Day centre", helps_with=["suicidal_thoughts"], opening_hours=[
            {"day": d, "opens": "09:00", "closes": "17:00"}
            for d in ("mon", "tue", "wed", "thu", "fri")])
        assert c.get(f"/contact/directory/{daytime}").json()["open_24_7"] is False

        def found(at: str) -> set[str]:
            r = c.get("/contact/directory", params={"need": "suicidal_thoughts",
                                                     "open_at": at})
            assert r.status_code == 200, r.text
            return {i["id"] for i in r.json()["items"]}

        assert found("2026-12-01T03:30:00+00:00") == {always["id"]}  # Tuesday night
        assert found("2026-12-06T23:59:00+00:00") == {always["id"]}  # Sunday
        assert found("2026-12-01T10:00:00+00:00") == {always["id"], daytime}

        # PUT replaces every field: without open_24_7 it is no longer open at all hours.
        r = c.put(f"/contact/directory/{always['id']}", json={
            "name": "Samaritans", "helps_with": ["suicidal_thoughts"],
            "opening_hours": [{"day": "sat", "opens": "18:00", "closes": "23:00"}]},
            headers={"If-Match": '"1"'})
        assert r.status_code == 200 and r.json()["open_24_7"] is False
        assert found("2026-12-01T03:30:00+00:00") == set()


# -- ETag of a new distressing contact ---------------------------------------------------


def test_a_new_distressing_contact_starts_at_version_2_and_its_etag_works(
        stack: Stack) -> None:
    with stack.client() as c:
        r = c.post("/contact/contacts", json=contact_body(started_at=_started(),
                                                          ended_at=None, distressing=True))
        assert r.status_code == 201, r.text
        assert r.headers["etag"] == '"2"' and r.json()["version"] == 2
        url = r.headers["location"]
        got = c.get(url)
        assert got.headers["etag"] == r.headers["etag"] and got.json()["distressing"] is True
        ok = c.patch(url, json={"reason": "sheet re-read", "issues": ["housing"]},
                     headers={"If-Match": r.headers["etag"]})
        assert ok.status_code == 200 and ok.headers["etag"] == '"3"'
        stale = c.patch(url, json={"reason": "again", "issues": ["benefits_finance"]},
                        headers={"If-Match": r.headers["etag"]})
        assert stale.status_code == 412 and stale.headers["etag"] == '"3"'
