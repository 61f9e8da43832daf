"""Who read what (issue 12), over real HTTP and NATS on SQLite and PostgreSQL: each kind
of read of personal data is recorded as a ``RecordRead`` in the service's own log
before it is shown, with who, which record and the stated purpose (sealed: readable to
the service, never in the event's bytes); reads of coded data only record nothing; a
read never changes the record's version (ETag)."""

from __future__ import annotations

from typing import Any

import httpx

from shared.audit.access import RecordRead, reads_of
from shared.web.auth import Role
from tests.support import Stack, contact_body
from tests.system.test_outreach_flow import _request, _supporters
from tests.system.test_text_inbox import _text

PURPOSE = "checking the plan before ringing back"
COORD_SUB = "coord-7"


def _reads(stack: Stack, service: str, record_id: object) -> list[RecordRead.Recorded]:
    return reads_of(stack.runtime(service).app, record_id)


def _all_reads(stack: Stack) -> int:
    return sum(len(list(_every(stack.runtime(s).app))) for s in ("contact", "shift",
                                                                   "outreach"))


def _every(app: Any) -> list[Any]:
    from shared.audit.access import _reads
    return list(_reads(app))


def _purpose(stack: Stack, service: str, read: RecordRead.Recorded) -> str | None:
    return stack.runtime(service).app.keys.reveal(read.purpose)  # type: ignore[attr-defined]


def _ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return dict(r.json())


def test_each_kind_of_read_is_recorded_with_who_and_why(stack: Stack) -> None:
    with stack.client(Role.COORDINATOR, sub=COORD_SUB) as c, \
            stack.client(Role.AUDITOR) as auditor:
        # A caller's details.
        caller = _ok(c.post("/contact/callers", json={"alias": "Sam"}), 201)
        ref = caller["caller_ref"]
        got = c.get(f"/contact/callers/{ref}", params={"purpose": PURPOSE})
        _ok(got)
        caller_id = stack.runtime("contact").app.get_caller(ref).id  # type: ignore[attr-defined]
        (read,) = _reads(stack, "contact", caller_id)
        assert read.kind == "caller" and read.meta["actor"] == COORD_SUB
        assert _purpose(stack, "contact", read) == PURPOSE
        assert PURPOSE.encode() not in stack.runtime("contact").app.recorder.select_events(
            read.originator_id)[0].state  # sealed in the stored bytes

        # A contact's summary: the coordinator's read is recorded, the auditor's (coded
        # fields only) is not; the ETag does not move.
        contact = _ok(c.post("/contact/contacts", json=contact_body(
            summary="talked about the move", caller_ref=ref)), 201)
        cid = contact["id"]
        first = c.get(f"/contact/contacts/{cid}")
        assert first.json()["summary"] == "talked about the move"
        again = c.get(f"/contact/contacts/{cid}", params={"purpose": PURPOSE})
        assert again.headers["etag"] == first.headers["etag"]
        assert auditor.get(f"/contact/contacts/{cid}").json()["summary"] is None
        reads = _reads(stack, "contact", cid)
        assert [r.kind for r in reads] == ["contact", "contact"]
        assert [_purpose(stack, "contact", r) for r in reads] == [None, PURPOSE]

        # The list: one read per contact whose summary it shows; none for the auditor.
        _ok(c.get("/contact/contacts", params={"caller_ref": ref}))
        assert len(_reads(stack, "contact", cid)) == 3
        _ok(auditor.get("/contact/contacts", params={"caller_ref": ref}))
        assert len(_reads(stack, "contact", cid)) == 3

        # A referral: who was referred and why.
        referral = _ok(c.post("/contact/referrals", json={
            "source": "gp", "caller_ref": ref, "consent_to_contact": True,
            "reason": "low after a bereavement"}), 201)
        _ok(c.get(f"/contact/referrals/{referral['id']}", params={"purpose": PURPOSE}))
        _ok(c.get("/contact/referrals"))
        reads = _reads(stack, "contact", referral["id"])
        assert [r.kind for r in reads] == ["referral", "referral"]
        assert _purpose(stack, "contact", reads[0]) == PURPOSE

        # A text thread.
        thread = _text(stack, "+447700900401", "can someone call me")
        _ok(c.get(f"/contact/texts/{thread}", params={"purpose": "reply"}))
        assert [r.kind for r in _reads(stack, "contact", thread)] == ["text_thread"]

        # A supporter's contact details, one by one and in the list.
        (sid,) = _supporters(c, 1)
        _ok(c.get(f"/shift/supporters/{sid}", params={"purpose": "rota call"}))
        _ok(c.get("/shift/supporters"))
        reads = _reads(stack, "shift", sid)
        assert [r.kind for r in reads] == ["supporter", "supporter"]
        assert _purpose(stack, "shift", reads[0]) == "rota call"

        # A home address: the coordinator's read recorded, the auditor's not.
        meeting = _request(c)
        _ok(c.get(f"/outreach/meetings/{meeting['id']}", params={"purpose": PURPOSE}))
        assert auditor.get(f"/outreach/meetings/{meeting['id']}").json()["address"] is None
        (read,) = _reads(stack, "outreach", meeting["id"])
        assert read.kind == "meeting" and _purpose(stack, "outreach", read) == PURPOSE


def test_reads_of_coded_data_only_record_nothing(stack: Stack) -> None:
    with stack.client(Role.COORDINATOR) as c, stack.client(Role.AUDITOR) as auditor:
        contact = _ok(c.post("/contact/contacts", json=contact_body(summary="private")), 201)
        before = _all_reads(stack)
        for path in (f"/contact/contacts/{contact['id']}", "/contact/contacts",
                     "/contact/follow-ups", "/shift/shifts?from=2026-11-01T00:00:00Z"
                     "&to=2026-12-01T00:00:00Z", "/outreach/meetings"):
            client = auditor if path.startswith("/contact/contacts") else c
            assert client.get(path).status_code == 200, path
        _ok(auditor.get("/reporting/monthly", params={"month": "2026-11"}))
        assert _all_reads(stack) == before
