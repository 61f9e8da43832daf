"""The rota's rules in the contact domain, without I/O (``domain/rota.py``): who is on
shift, which shift a contact belongs to, who is on call for a new text, and who may be
named on a contact. Each rule tested once, here."""

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
from services.contact.domain.codes import MAX_SUPPORTERS
from shared.kernel import InvalidCommand, NotPermitted, acting

NOW = datetime(2026, 11, 28, 21, 0, tzinfo=UTC)  # a Saturday evening
START = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)
END = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
WINDOW = OnShiftWindow()  # 30 minutes before, 60 after: the defaults


@pytest.fixture(autouse=True)
def _supporter_acts() -> Iterator[None]:
    with acting("supporter-1", "c-1"):
        yield


def sid() -> str:
    return str(uuid.uuid4())


def rota(*shifts: RotaShift, supporters: list[RotaSupporter] | None = None) -> Rota:
    named = supporters if supporters is not None else [
        RotaSupporter(id=s) for shift in shifts for s in shift.supporter_ids]
    return Rota(supporters={s.id: s for s in named}, shifts=tuple(shifts))


def shift(*supporters: str, starts_at: datetime = START, ends_at: datetime = END) -> RotaShift:
    return RotaShift(id=uuid.uuid4(), starts_at=starts_at, ends_at=ends_at,
                     supporter_ids=tuple(supporters))


# ------------------------------------------------------------------------- on shift


@pytest.mark.parametrize(("at", "on"), [
    (START - timedelta(minutes=31), False),
    (START - timedelta(minutes=30), True),  # the window opens 30 minutes before the start
    (NOW, True),
    (END + timedelta(minutes=59, seconds=59), True),
    (END + timedelta(minutes=60), False),  # ... and closes 60 minutes after the end
])
def test_a_supporter_is_on_shift_from_before_the_start_to_after_the_end(
        at: datetime, on: bool) -> None:
    me = sid()
    assert rota(shift(me)).on_shift(me, at, WINDOW) is on


def test_the_window_is_a_setting() -> None:
    me = sid()
    narrow = OnShiftWindow(before=timedelta(0), after=timedelta(0))
    assert not rota(shift(me)).on_shift(me, START - timedelta(seconds=1), narrow)
    assert not rota(shift(me)).on_shift(me, END, narrow)
    assert "from 0 minutes before its start to 0 minutes after its end" in narrow.describe()


def test_only_an_active_supporter_assigned_to_the_shift_is_on_shift() -> None:
    me, partner = sid(), sid()
    assert not rota(shift(partner), supporters=[RotaSupporter(id=me),
                                                RotaSupporter(id=partner)]
                    ).on_shift(me, NOW, WINDOW)  # known, not assigned: named on nothing
    assert not rota(shift(me), supporters=[]).on_shift(me, NOW, WINDOW)  # not published
    gone = rota(shift(me), supporters=[RotaSupporter(id=me, active=False)])
    assert not gone.on_shift(me, NOW, WINDOW)
    assert not rota(shift(me)).on_shift("not-a-uuid", NOW, WINDOW)
    assert rota(shift(me)).on_shift(me.upper(), NOW, WINDOW)  # the same id, written so


def test_the_coordinator_always_acts_a_supporter_only_on_shift_nobody_else() -> None:
    me = sid()
    on, off = rota(shift(me)), rota()
    for r in (on, off):
        r.check_on_shift(role="coordinator", sub="coord-1", now=NOW, window=WINDOW,
                         doing="read a caller's history")
    on.check_on_shift(role="supporter", sub=me, now=NOW, window=WINDOW, doing="x")
    for role, known in (("supporter", off), ("auditor", on), ("partner", on)):
        with pytest.raises(NotPermitted, match="on shift") as info:
            known.check_on_shift(role=role, sub=me, now=NOW, window=WINDOW,
                                 doing="read a caller's history")
        assert "read a caller's history" in info.value.message
        assert "30 minutes before its start to 60 minutes after its end" in info.value.message


# ------------------------------------------------------------- the shift of a contact


def test_the_shift_on_at_a_time_holds_it_and_the_earliest_start_wins() -> None:
    evening = shift()
    extra = shift(starts_at=START - timedelta(hours=1), ends_at=START + timedelta(hours=2))
    r = rota(evening, extra)
    assert r.shift_at(START - timedelta(minutes=30)) == extra.id
    assert r.shift_at(NOW) == extra.id  # both hold it: the earliest to start
    assert r.shift_at(START + timedelta(hours=2)) == evening.id  # extra's end is not in it
    assert r.shift_at(END) is None  # a shift holds its start, not its end
    assert r.shift_at(START - timedelta(hours=2)) is None


def test_a_contact_is_the_shift_on_at_its_start_unless_one_is_named() -> None:
    evening = shift()
    r = rota(evening)
    logged = Contact.log(channel="phone", started_at=NOW, issues=[], answered=False,
                         now=NOW, rota=r)
    assert logged.shift_id == evening.id
    named = uuid.uuid4()
    assert Contact.log(channel="phone", started_at=NOW, issues=["housing"], now=NOW, rota=r,
                       shift_id=named).shift_id == named
    before = Contact.log(channel="phone", started_at=START - timedelta(minutes=1),
                         issues=["housing"], now=NOW, rota=r)
    assert before.shift_id is None  # the on-shift window is not the shift


# --------------------------------------------------------------------- a new text


def test_a_new_text_is_the_shifts_and_routed_to_the_supporters_on_call() -> None:
    a, b, gone, later = sid(), sid(), sid(), sid()
    evening = shift(a, b, gone)
    next_one = shift(later, starts_at=END, ends_at=END + timedelta(hours=6))
    r = rota(evening, next_one, supporters=[RotaSupporter(id=a), RotaSupporter(id=b),
                                            RotaSupporter(id=gone, active=False),
                                            RotaSupporter(id=later)])
    assert r.on_call(NOW) == sorted([a, b])
    thread = Contact.open_text_thread(caller_id=caller_id_for("C-00000000"),
                                      caller_ref="C-00000000", age_band=None, gender=None,
                                      started_at=NOW, now=NOW, rota=r)
    assert thread.supporter_ids == sorted([a, b]) and thread.shift_id == evening.id
    nobody = Contact.open_text_thread(caller_id=caller_id_for("C-00000000"),
                                      caller_ref="C-00000000", age_band=None, gender=None,
                                      started_at=START - timedelta(hours=3), now=NOW, rota=r)
    assert nobody.supporter_ids == [] and nobody.shift_id is None


# ------------------------------------------------------------------ who may be named


def test_a_contact_names_active_supporters_the_shift_service_published() -> None:
    a, b, gone = sid(), sid(), sid()
    r = rota(supporters=[RotaSupporter(id=a), RotaSupporter(id=b, role="coordinator",
                                                            eligible=False),
                         RotaSupporter(id=gone, active=False)])
    assert r.supporters_named([a.upper(), b, a]) == [a, b]  # canonical, once each
    assert r.supporters_named([uuid.UUID(a)]) == [a]
    assert r.supporters_named(None) == []
    for bad in (["Wilhelmina Frobisher"], ["sup-1"], [""], [a, "a,b"], [str(uuid.uuid4())],
                [gone], "sup-1", [7]):
        with pytest.raises(InvalidCommand) as info:
            r.supporters_named(bad)  # type: ignore[arg-type]
        assert info.value.field == "supporter_ids"
        assert "Wilhelmina" not in info.value.message and "sup-1" not in info.value.message
    with pytest.raises(InvalidCommand, match="item 1 is not an active supporter"):
        r.supporters_named([a, gone])
    many = [sid() for _ in range(MAX_SUPPORTERS + 1)]
    with pytest.raises(InvalidCommand, match=f"at most {MAX_SUPPORTERS}"):
        rota(supporters=[RotaSupporter(id=s) for s in many]).supporters_named(many)


def test_nobody_may_be_named_without_the_rota() -> None:
    with pytest.raises(InvalidCommand) as info:
        Contact.log(channel="phone", started_at=NOW, issues=["housing"], now=NOW,
                    supporter_ids=[sid()])
    assert info.value.field == "supporter_ids"
