"""What the outreach service takes from the other services, end to end over real NATS
and HTTP, on SQLite and PostgreSQL: the shift service's supporter events make its roster
(who may attend a meeting), and the contact service's erasure of a caller destroys
outreach's own key for that caller, down to the bytes of outreach's store."""

from __future__ import annotations

import httpx

from services.outreach import roster
from shared.privacy import KeyStore
from tests.outreach.test_roster import _stored_bytes, _wrapped_key
from tests.support import Stack, wait_for

TRAINING = ("induction", "mental_health_first_aid", "safeguarding_adults")
ADDRESS = "14 Larkspur Terrace, Kennington"


def _why_not(stack: Stack, supporter_id: str) -> str | None:
    return roster.why_not_attending(stack.runtime("outreach").engine, supporter_id)


def _register(c: httpx.Client) -> str:
    r = c.post("/shift/supporters", json={"name": "Robin Outreach", "start_date": "2026-01-05"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_the_roster_follows_the_shift_service_over_the_bus(stack: Stack) -> None:
    with stack.client() as c:
        sid = _register(c)
        why = wait_for(lambda: _why_not(stack, sid) != "unknown" and _why_not(stack, sid),
                       30, 0.1, "the registration to reach outreach")
        assert why.startswith("not eligible: ") and "induction" in why, why
        for course in TRAINING:
            r = c.post(f"/shift/supporters/{sid}/training",
                       json={"course": course, "completed_on": "2026-01-10"})
            assert r.status_code == 200, r.text
        wait_for(lambda: _why_not(stack, sid) is None, 30, 0.1, "eligible in outreach's roster")
        r = c.post(f"/shift/supporters/{sid}/deactivate", json={"reason": "moved away"})
        assert r.status_code == 200, r.text
        wait_for(lambda: _why_not(stack, sid) == "deactivated", 30, 0.1,
                 "the deactivation to reach outreach")
    consumer = next(x for x in stack.runtime("outreach").consumers if x.upstream == "shift")
    assert consumer.failed_count == 0


def test_erasing_a_caller_destroys_outreachs_key_for_them(stack: Stack) -> None:
    outreach = stack.runtime("outreach")
    keys = outreach.app.adapters.keys
    assert isinstance(keys, KeyStore)
    with stack.client() as c:
        made = [c.post("/contact/callers", json={"alias": alias,
                                                 "consent_to_keep_history": True})
                for alias in ("Wren", "Kestrel")]
        assert [r.status_code for r in made] == [201, 201], [r.text for r in made]
        ref, other = (str(r.json()["caller_ref"]) for r in made)
        sealed, kept = keys.seal(ref, ADDRESS), keys.seal(other, "the cafe by the station")
        assert keys.reveal(sealed) == ADDRESS
        material = _wrapped_key(outreach, ref)
        assert material is not None and material in _stored_bytes(stack.settings)
        r = c.delete(f"/contact/callers/{ref}/personal-data")
        assert r.status_code == 200, r.text
        wait_for(lambda: keys.is_erased(ref), 30, 0.1, "the erasure to reach outreach")
        assert keys.reveal(sealed) == "[erased]"
        assert keys.reveal(kept) == "the cafe by the station"  # another caller's: kept
        assert _wrapped_key(outreach, ref) is None
        assert material not in _stored_bytes(stack.settings), "the key's bytes remain"
        assert c.delete(f"/contact/callers/{ref}/personal-data").status_code == 200
    consumer = next(x for x in outreach.consumers if x.upstream == "contact")
    assert consumer.failed_count == 0 and consumer.applied_count >= 1
