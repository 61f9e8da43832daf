"""The text conversation's rules, without I/O: claims (one claimant, who joins the
handlers), release and hand-over, closing like a call (issues needed, the claim ends),
and reopening for a caller who texts again within the window."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from services.contact.domain import (
    Contact,
    OnShiftWindow,
    Rota,
    RotaShift,
    RotaSupporter,
    caller_id_for,
)
from services.contact.domain.thread import Claimed, HandedOver, Released
from services.contact.public_events import public_event
from shared.kernel import Conflicting, InvalidCommand, NotPermitted, RuleBroken, acting

NOW = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)
WINDOW = OnShiftWindow()
A, B, C = (str(uuid.uuid4()) for _ in range(3))


@pytest.fixture(autouse=True)
def _supporter_acts() -> Iterator[None]:
    with acting(A, "c-1"):
        yield


def thread(*, messages: int = 1) -> Contact:
    t = Contact.open_text_thread(caller_id=caller_id_for("C-00000000"),
                                 caller_ref="C-00000000", age_band=None, gender=None,
                                 started_at=NOW - timedelta(minutes=30), now=NOW)
    for i in range(messages):
        t.receive_message(body=f"pd1:subject:m{i}", at=NOW - timedelta(minutes=20 - i),
                          now=NOW)
    return t


def on_shift(*ids: str) -> Rota:
    """``ids`` assigned to a shift on at NOW."""
    return Rota(supporters={i: RotaSupporter(id=i) for i in (A, B, C)},
                shifts=(RotaShift(id=uuid.uuid4(), starts_at=NOW - timedelta(hours=1),
                                  ends_at=NOW + timedelta(hours=5), supporter_ids=ids),))


def test_a_new_thread_is_unclaimed_and_a_claim_makes_it_open_and_the_claimant_a_handler(
        ) -> None:
    t = thread()
    assert (t.status, t.claimed_by, t.supporter_ids) == ("unclaimed", None, [])
    assert t.claim(by=A, handler=True) is True
    assert (t.status, t.claimed_by, t.supporter_ids) == ("open", A, [A])
    events = t.collect_events()
    (claimed,) = [e for e in events if isinstance(e, Claimed)]
    assert claimed.by == A and claimed.meta["actor"] == A
    # Replayed from its events (as the repository does), it is the same thread.
    replayed = None
    for e in events:
        replayed = e.mutate(replayed)
    assert isinstance(replayed, Contact)
    assert (replayed.status, replayed.claimed_by, replayed.supporter_ids) == ("open", A, [A])


def test_claiming_what_you_hold_records_nothing_and_another_claimant_is_a_conflict() -> None:
    t = thread()
    t.claim(by=A, handler=True)
    t.collect_events()
    assert t.claim(by=A, handler=True) is False and t.collect_events() == []
    with pytest.raises(Conflicting, match=f"taken: claimed by {A}"):
        t.claim(by=B, handler=True)
    assert t.claimed_by == A and t.collect_events() == []


def test_the_coordinator_claims_without_joining_the_handlers() -> None:
    t = thread()
    t.claim(by="coordinator-1", handler=False)
    assert t.claimed_by == "coordinator-1" and t.supporter_ids == []


def test_a_claimant_already_named_is_not_named_twice() -> None:
    t = thread()
    t.supporter_ids.append(A)
    t.claim(by=A, handler=True)
    assert t.supporter_ids == [A]


def test_only_the_claimant_or_the_coordinator_releases() -> None:
    t = thread()
    t.claim(by=A, handler=True)
    with pytest.raises(NotPermitted):
        t.release(by=B, coordinator=False)
    assert t.release(by=A, coordinator=False) is True
    assert (t.status, t.claimed_by, t.supporter_ids) == ("unclaimed", None, [A])
    with pytest.raises(NotPermitted):  # nobody holds it: not a supporter's to release
        t.release(by=A, coordinator=False)
    t.collect_events()
    assert t.release(by="coordinator-1", coordinator=True) is False
    assert t.collect_events() == []
    t.claim(by=B, handler=True)
    assert t.release(by="coordinator-1", coordinator=True) is True
    (released,) = [e for e in t.collect_events() if isinstance(e, Released)]
    assert released.claimant == B and t.claimed_by is None


def test_hand_over_goes_to_a_supporter_on_shift_by_the_claimant_or_the_coordinator() -> None:
    t = thread()
    t.claim(by=A, handler=True)
    rota = on_shift(B)
    with pytest.raises(NotPermitted):
        t.hand_over(to=B, by=C, coordinator=False, rota=rota, window=WINDOW, now=NOW)
    for to in ("not-an-id", C):  # C is on no shift now
        with pytest.raises(InvalidCommand) as refused:
            t.hand_over(to=to, by=A, coordinator=False, rota=rota, window=WINDOW, now=NOW)
        assert refused.value.field == "to"
    assert t.claimed_by == A
    assert t.hand_over(to=B, by=A, coordinator=False, rota=rota, window=WINDOW, now=NOW)
    assert (t.status, t.claimed_by, t.supporter_ids) == ("open", B, [A, B])
    (handed,) = [e for e in t.collect_events() if isinstance(e, HandedOver)]
    assert (handed.claimant, handed.to) == (A, B)
    # The coordinator may hand over what nobody holds; to its holder records nothing.
    u = thread()
    assert u.hand_over(to=B, by="coordinator-1", coordinator=True, rota=rota, window=WINDOW,
                       now=NOW)
    u.collect_events()
    assert not u.hand_over(to=B, by="coordinator-1", coordinator=True, rota=rota,
                           window=WINDOW, now=NOW)
    assert u.collect_events() == []
    with pytest.raises(NotPermitted):  # a supporter may not hand over what nobody holds
        thread().hand_over(to=B, by=A, coordinator=False, rota=rota, window=WINDOW, now=NOW)


def test_a_thread_closes_only_with_its_issues_and_closing_ends_the_claim() -> None:
    t = thread()
    t.claim(by=A, handler=True)
    with pytest.raises(InvalidCommand) as refused:
        t.close(no_escalation_reason=None)
    assert refused.value.field == "issues" and "PATCH /contact/contacts" in refused.value.message
    assert not t.closed and t.claimed_by == A
    t.correct(reason="pd1:subject:r", issues=["social_isolation"], now=NOW)
    t.collect_events()
    t.close(no_escalation_reason=None)
    events = t.collect_events()
    assert [type(e) for e in events] == [Released, Contact.Closed]
    assert (t.status, t.claimed_by) == ("closed", None)
    for claiming in (lambda: t.claim(by=B, handler=True),
                     lambda: t.release(by=A, coordinator=True),
                     lambda: t.hand_over(to=B, by="c", coordinator=True, rota=on_shift(B),
                                         window=WINDOW, now=NOW)):
        with pytest.raises(RuleBroken, match="closed"):
            claiming()


def test_a_closed_thread_reopens_unclaimed_for_a_text_within_the_window_only() -> None:
    t = thread(messages=2)
    t.claim(by=A, handler=True)
    t.correct(reason="pd1:subject:r", issues=["social_isolation"], now=NOW)
    t.close(no_escalation_reason=None)
    last = t.last_message_at()
    assert last == NOW - timedelta(minutes=19)
    day = timedelta(hours=24)
    assert t.reopens_for(last + day, day) and not t.reopens_for(last + day * 2, day)
    assert not t.reopens_for(last + timedelta(seconds=1), timedelta(0))  # 0: never
    with pytest.raises(RuleBroken):
        t.reopen_for_text(at=last + day * 2, window=day)
    t.collect_events()
    t.reopen_for_text(at=last + timedelta(hours=3), window=day)
    assert [type(e) for e in t.collect_events()] == [Contact.Reopened]
    assert (t.status, t.claimed_by, t.closed) == ("unclaimed", None, False)
    assert not t.reopens_for(last + timedelta(hours=3), day)  # open: nothing to reopen


def test_only_a_text_thread_is_claimed_and_calls_close_as_before() -> None:
    call = Contact.log(channel="phone", started_at=NOW - timedelta(minutes=30),
                       issues=["bereavement"], now=NOW)
    with pytest.raises(RuleBroken):
        call.claim(by=A, handler=True)
    missed = Contact.log(channel="phone", started_at=NOW - timedelta(minutes=30), issues=[],
                         answered=False, now=NOW)
    missed.close(no_escalation_reason=None)  # no issues needed: not a text
    assert missed.closed and not call.reopens_for(NOW, timedelta(hours=24))


def test_claim_events_travel_on_the_bus_without_data() -> None:
    t = thread()
    t.claim(by=A, handler=True)
    t.release(by=A, coordinator=False)
    for e in t.collect_events():
        if isinstance(e, Claimed | Released):
            published = public_event(e)
            assert published is None  # the platform publishes its type, no data
