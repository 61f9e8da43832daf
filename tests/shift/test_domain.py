"""The shift domain's rules, without I/O: each rule tested once, here, at the aggregate
that enforces it; the clock changes of 2026; and, with hypothesis, random sequences of
assignments, unassignments and swaps that never break the rota's rules."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.shift.domain import (
    LONDON,
    ROTA_TEMPLATE_ID,
    Bag,
    Coverage,
    Debrief,
    RotaTemplate,
    Shift,
    Slot,
    Supporter,
    debrief_id_for,
    default_slots,
    london_to_utc,
    overlaps,
    required_courses,
    shift_id_for,
    shifts_for_week,
)
from services.shift.domain.codes import (
    BAG_ITEMS,
    DEFAULT_REQUIRED_COURSES,
    MAX_REQUIRED,
    MAX_SLOTS,
)
from shared.kernel import (
    Conflicting,
    InvalidCommand,
    NotKnown,
    NotPermitted,
    RuleBroken,
    acting,
)

NOW = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)
TODAY = date(2026, 11, 29)
STARTS = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)  # a Friday evening shift
HOUR = timedelta(hours=1)


@pytest.fixture(autouse=True)
def _coordinator_acts() -> Iterator[None]:
    """Who acts: set once per command by the web layer; here, for every test."""
    with acting("coord-1", "c-1"):
        yield


def sealed(text: str = "x") -> str:
    return f"pd1:subject:{text}"


def supporter(**kw: Any) -> Supporter:
    fields: dict[str, Any] = {"name": sealed("name"), "phone": sealed("phone"),
                              "email": sealed("email"), "role": "supporter",
                              "start_date": date(2026, 1, 5), "today": TODAY}
    fields.update(kw)
    return Supporter.register(**fields)


def trained(courses: frozenset[str] = DEFAULT_REQUIRED_COURSES, **kw: Any) -> Supporter:
    s = supporter(**kw)
    for course in sorted(courses):
        s.record_training(course=course, completed_on=date(2026, 1, 10), today=TODAY)
    return s


def shift(starts: datetime = STARTS, hours: float = 6, required: int = 2) -> Shift:
    return Shift.add_extra(starts_at=starts, ends_at=starts + timedelta(hours=hours),
                           required=required, now=NOW)


OK = {"eligible": True, "active": True, "overlapping": False}


def replayed(aggregate: Any) -> Any:
    """The aggregate rebuilt from its new events, as the store would."""
    copy = None
    for e in aggregate.collect_events():
        copy = e.mutate(copy)
    return copy


def invalid(make: Callable[[], object]) -> str:
    with pytest.raises(InvalidCommand) as info:
        make()
    return info.value.field


# ---------------------------------------------------------------------------- who acts


def test_every_event_records_who_acted_and_the_correlation() -> None:
    s = supporter()
    with acting("coord-2"):
        s.deactivate(reason=sealed("left"))
    registered, deactivated = s.collect_events()
    assert registered.meta == {"actor": "coord-1", "correlation_id": "c-1"}  # type: ignore[attr-defined]
    assert deactivated.meta == {"actor": "coord-2"}  # type: ignore[attr-defined]


# -------------------------------------------------------------------------- supporters


def test_a_supporter_registers_with_sealed_details_a_role_and_a_start_date() -> None:
    sid = uuid.uuid4()
    s = replayed(supporter(id=sid, email=None, role="coordinator"))
    assert (s.id, s.name, s.email, s.role) == (sid, sealed("name"), None, "coordinator")
    assert s.start_date == date(2026, 1, 5) and s.active


@pytest.mark.parametrize(("field", "make"), [
    ("name", lambda: supporter(name="Ann")),
    ("phone", lambda: supporter(phone="07700 900123")),
    ("email", lambda: supporter(email="ann@example.org")),
    ("notes", lambda: trained().record_supervision(kind="group", on=TODAY, by="coord-1",
                                                   notes="plain", today=TODAY)),
    ("reason", lambda: supporter().deactivate(reason="plain")),
    ("reason", lambda: _assigned("s-1").unassign("s-1", reason="plain")),
    ("notes", lambda: Bag.register(label="Bag 1").hand_over(
        from_supporter_id="coord-1", to_supporter_id="s-1", items_checked={}, at=NOW,
        notes="plain", now=NOW)),
])
def test_personal_data_must_arrive_sealed(field: str, make: Callable[[], object]) -> None:
    with pytest.raises(InvalidCommand, match="sealed") as info:
        make()
    assert info.value.field == field


@pytest.mark.parametrize(("field", "make"), [
    ("name", lambda: supporter(name=None)),
    ("reason", lambda: supporter().deactivate(reason=None)),  # type: ignore[arg-type]
    ("reason", lambda: _assigned("s-1").unassign("s-1", reason=None)),  # type: ignore[arg-type]
])
def test_a_name_and_the_reasons_are_required(field: str, make: Callable[[], object]) -> None:
    assert invalid(make) == field


@pytest.mark.parametrize(("field", "make"), [
    ("role", lambda: supporter(role="volunteer")),
    ("course", lambda: supporter().record_training(course="first_aid",
                                                    completed_on=TODAY, today=TODAY)),
    ("kind", lambda: supporter().record_supervision(kind="peer", on=TODAY, by="coord-1",
                                                     today=TODAY)),
])
def test_codes_are_checked_naming_the_field(field: str, make: Callable[[], object]) -> None:
    assert invalid(make) == field


def _train(completed_on: object, expires_on: object = None) -> None:
    supporter().record_training(course="induction", completed_on=completed_on,  # type: ignore[arg-type]
                                expires_on=expires_on, today=TODAY)  # type: ignore[arg-type]


@pytest.mark.parametrize(("field", "make"), [
    ("start_date", lambda: supporter(start_date=NOW)),  # a timestamp is not a date
    ("start_date", lambda: supporter(start_date="2026-01-05")),
    ("start_date", lambda: supporter(start_date=date(1999, 12, 31))),
    ("start_date", lambda: supporter(start_date=TODAY + timedelta(days=732))),
    ("completed_on", lambda: _train(TODAY + timedelta(days=1))),
    ("expires_on", lambda: _train(date(2026, 1, 10), date(2026, 1, 10))),
    ("expires_on", lambda: _train(date(2026, 1, 10), date(2036, 1, 11))),  # over ten years
    ("on", lambda: supporter().record_supervision(kind="group", on=TODAY + timedelta(days=1),
                                                   by="coord-1", today=TODAY)),
    ("by", lambda: supporter().record_supervision(kind="group", on=TODAY, by=" ",
                                                   today=TODAY)),
])
def test_dates_are_plain_and_plausible_naming_the_field(field: str,
                                                         make: Callable[[], object]) -> None:
    assert invalid(make) == field


def test_eligible_only_with_current_training_in_each_required_course() -> None:
    s = supporter()
    assert s.eligibility(DEFAULT_REQUIRED_COURSES, TODAY) == (
        False, ["induction", "mental_health_first_aid", "safeguarding_adults"])
    for course in ("induction", "mental_health_first_aid", "stress_management"):
        s.record_training(course=course, completed_on=date(2026, 2, 1), today=TODAY)
    assert s.eligibility(DEFAULT_REQUIRED_COURSES, TODAY) == (False, ["safeguarding_adults"])
    s.record_training(course="safeguarding_adults", completed_on=date(2026, 2, 1),
                      expires_on=date(2027, 2, 1), today=TODAY)
    assert replayed(s).eligibility(DEFAULT_REQUIRED_COURSES, TODAY) == (True, [])


def test_training_is_current_from_its_completion_until_its_expiry_date() -> None:
    s = supporter()
    s.record_training(course="induction", completed_on=date(2025, 3, 1),
                      expires_on=date(2026, 3, 1), today=TODAY)
    required = frozenset({"induction"})
    assert not s.eligibility(required, date(2025, 2, 28))[0]  # not yet completed
    assert s.eligibility(required, date(2025, 3, 1))[0]
    assert s.eligibility(required, date(2026, 2, 28))[0]
    assert s.eligibility(required, date(2026, 3, 1)) == (False, ["induction"])  # expired
    s.record_training(course="induction", completed_on=date(2026, 3, 2), today=TODAY)
    assert s.eligibility(required, TODAY)[0]  # renewed


def test_the_required_set_is_the_settings_and_an_unknown_course_in_it_is_refused() -> None:
    s = trained(frozenset({"induction"}))
    assert s.eligibility(required_courses(["induction"]), TODAY) == (True, [])
    assert not s.eligibility(DEFAULT_REQUIRED_COURSES, TODAY)[0]
    with pytest.raises(ValueError, match="first_aid"):
        required_courses(["induction", "first_aid"])


def test_eligibility_is_recorded_at_registration_and_again_only_when_it_changes() -> None:
    s = supporter()
    assert s.recorded_eligibility == (False, sorted(DEFAULT_REQUIRED_COURSES))
    assert supporter(required=frozenset()).recorded_eligibility == (True, [])
    s.record_training(course="induction", completed_on=date(2026, 2, 1),
                      expires_on=date(2026, 12, 1), today=TODAY)
    assert s.refresh_eligibility(frozenset({"induction"}), TODAY)
    assert not s.refresh_eligibility(frozenset({"induction"}), TODAY)  # unchanged
    assert s.refresh_eligibility(frozenset({"induction"}), date(2026, 12, 1))  # expired
    assert replayed(s).recorded_eligibility == (False, ["induction"])
    s.deactivate(reason=sealed())
    assert not s.refresh_eligibility(frozenset(), TODAY)  # no longer followed


def test_the_last_supervision_is_the_latest_one_held() -> None:
    s = supporter()
    assert s.last_supervision is None
    for on in (date(2026, 10, 1), date(2026, 11, 2), date(2026, 9, 1)):  # recorded late
        s.record_supervision(kind="one_to_one", on=on, by="coord-1", notes=sealed(),
                             today=TODAY)
    assert replayed(s).last_supervision == date(2026, 11, 2)


def test_supervision_is_overdue_after_the_setting_from_the_last_or_the_start() -> None:
    six_weeks = timedelta(weeks=6)
    s = supporter(start_date=date(2026, 10, 1))
    assert not s.supervision_overdue(date(2026, 11, 12), six_weeks)  # 42 days after start
    assert s.supervision_overdue(date(2026, 11, 13), six_weeks)
    s.record_supervision(kind="group", on=date(2026, 11, 10), by="coord-1", today=TODAY)
    assert not s.supervision_overdue(date(2026, 12, 22), six_weeks)
    assert s.supervision_overdue(date(2026, 12, 23), six_weeks)
    s.deactivate(reason=sealed())
    assert not s.supervision_overdue(date(2027, 6, 1), six_weeks)


def test_deactivation_keeps_the_history_happens_once_and_records_nothing_new() -> None:
    s = trained()
    s.deactivate(reason=sealed("moved away"))
    assert not s.active and s.deactivation_reason == sealed("moved away")
    assert len(s.training) == 3  # kept
    with pytest.raises(RuleBroken, match="already"):
        s.deactivate(reason=sealed())
    with pytest.raises(RuleBroken, match="deactivated"):
        s.record_training(course="other", completed_on=TODAY, today=TODAY)
    with pytest.raises(RuleBroken, match="deactivated"):
        s.record_supervision(kind="group", on=TODAY, by="coord-1", today=TODAY)


# -------------------------------------------------------------------------------- rota


def test_the_default_template_is_the_five_weekend_slots_of_two() -> None:
    template = RotaTemplate.create()
    assert [s.label for s in template.slots] == [
        "fri 20:00-02:00", "sat 08:00-14:00", "sat 20:00-02:00", "sun 08:00-14:00",
        "sun 20:00-02:00"]
    assert {s.required for s in template.slots} == {2}
    assert template.slots == default_slots()


def test_the_template_is_one_aggregate_with_a_fixed_id_and_keeps_its_history() -> None:
    template = RotaTemplate.create()
    assert template.id == ROTA_TEMPLATE_ID == RotaTemplate.create().id
    template.replace([{"weekday": "sat", "starts": "20:00", "ends": "01:00", "required": 3},
                      Slot("sun", "10:00", "16:00")])
    events = template.collect_events()
    assert [type(e).__name__ for e in events] == ["Created", "Replaced"]
    copy = None
    for e in events:
        copy = e.mutate(copy)
    assert copy is not None and copy.slots == [Slot("sat", "20:00", "01:00", 3),
                                               Slot("sun", "10:00", "16:00", 2)]


def _slot(**kw: object) -> dict[str, object]:
    return {"weekday": "sat", "starts": "20:00", "ends": "02:00", **kw}


@pytest.mark.parametrize(("slots", "field"), [
    ("sat 20:00-02:00", "slots"),
    ([["sat", "20:00", "02:00"]], "slots.0"),
    ([_slot(weekday="saturday")], "slots.0.weekday"),
    ([_slot(starts="8:00")], "slots.0.starts"),
    ([_slot(ends="24:00")], "slots.0.ends"),
    ([_slot(required=0)], "slots.0.required"),
    ([_slot(required=True)], "slots.0.required"),
    ([_slot(required=MAX_REQUIRED + 1)], "slots.0.required"),
    ([_slot(), _slot(ends="23:00")], "slots.1.starts"),  # the same weekday and start
    ([_slot(weekday=d, starts=f"{h:02d}:00", ends=f"{h:02d}:30")
      for d in ("sat", "sun", "mon") for h in range(24)][:MAX_SLOTS + 1], "slots"),
])
def test_template_slots_are_checked_naming_the_field(slots: object, field: str) -> None:
    assert invalid(lambda: RotaTemplate.create().replace(slots)) == field  # type: ignore[arg-type]


def test_a_slot_ending_at_or_before_its_start_runs_past_midnight() -> None:
    slots = [Slot("mon", "22:00", "06:00"), Slot("tue", "09:00", "09:00"),
             Slot("wed", "09:00", "17:00")]
    times = shifts_for_week(slots, "2026-W49")  # GMT all week
    assert [(t.starts_at, t.length) for t in times] == [
        (datetime(2026, 11, 30, 22, 0, tzinfo=UTC), timedelta(hours=8)),
        (datetime(2026, 12, 1, 9, 0, tzinfo=UTC), timedelta(hours=24)),
        (datetime(2026, 12, 2, 9, 0, tzinfo=UTC), timedelta(hours=8))]


def _week(iso_week: str) -> list[tuple[str, datetime, datetime, timedelta]]:
    return [(t.slot, t.starts_at, t.ends_at, t.length)
            for t in shifts_for_week(default_slots(), iso_week)]


def _utc(month: int, day: int, hour: int) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=UTC)


def test_a_winter_week_is_five_six_hour_shifts_at_london_time_in_utc() -> None:
    six = timedelta(hours=6)
    assert _week("2026-W49") == [
        ("fri 20:00-02:00", _utc(12, 4, 20), _utc(12, 5, 2), six),
        ("sat 08:00-14:00", _utc(12, 5, 8), _utc(12, 5, 14), six),
        ("sat 20:00-02:00", _utc(12, 5, 20), _utc(12, 6, 2), six),
        ("sun 08:00-14:00", _utc(12, 6, 8), _utc(12, 6, 14), six),
        ("sun 20:00-02:00", _utc(12, 6, 20), _utc(12, 7, 2), six)]
    summer = shifts_for_week(default_slots(), "2026-W27")  # BST: an hour earlier in UTC
    assert summer[0].starts_at == _utc(7, 3, 19) and summer[0].length == six


def test_the_spring_clock_change_makes_the_saturday_night_five_hours() -> None:
    """Clocks go forward at 01:00 UTC on Sunday 29 March 2026 (week 13)."""
    six = timedelta(hours=6)
    assert _week("2026-W13") == [
        ("fri 20:00-02:00", _utc(3, 27, 20), _utc(3, 28, 2), six),
        ("sat 08:00-14:00", _utc(3, 28, 8), _utc(3, 28, 14), six),
        ("sat 20:00-02:00", _utc(3, 28, 20), _utc(3, 29, 1), timedelta(hours=5)),
        ("sun 08:00-14:00", _utc(3, 29, 7), _utc(3, 29, 13), six),
        ("sun 20:00-02:00", _utc(3, 29, 19), _utc(3, 30, 1), six)]


def test_the_autumn_clock_change_makes_the_saturday_night_seven_hours() -> None:
    """Clocks go back at 01:00 UTC on Sunday 25 October 2026 (week 43)."""
    six = timedelta(hours=6)
    assert _week("2026-W43") == [
        ("fri 20:00-02:00", _utc(10, 23, 19), _utc(10, 24, 1), six),
        ("sat 08:00-14:00", _utc(10, 24, 7), _utc(10, 24, 13), six),
        ("sat 20:00-02:00", _utc(10, 24, 19), _utc(10, 25, 2), timedelta(hours=7)),
        ("sun 08:00-14:00", _utc(10, 25, 8), _utc(10, 25, 14), six),
        ("sun 20:00-02:00", _utc(10, 25, 20), _utc(10, 26, 2), six)]


def test_a_skipped_time_is_when_the_clocks_skip_it_and_a_repeated_one_its_first_pass() -> None:
    assert london_to_utc(date(2026, 3, 29), time(1, 30)) == _utc(3, 29, 1)
    assert london_to_utc(date(2026, 10, 25), time(1, 30)) == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC)  # 01:30 BST
    slots = [Slot("sun", "01:10", "01:50"), Slot("sun", "01:30", "03:00"),
             Slot("sun", "00:00", "08:00")]
    assert [(t.slot, t.length) for t in shifts_for_week(slots, "2026-W13")] == [
        ("sun 01:30-03:00", timedelta(hours=1)),  # 01:00 to 02:00 UTC
        ("sun 00:00-08:00", timedelta(hours=7))]  # the skipped slot has no shift
    autumn = shifts_for_week([Slot("sun", "00:00", "00:00")], "2026-W43")
    assert autumn[0].length == timedelta(hours=25)
    Shift.publish(id=autumn[0].id, slot_label=autumn[0].slot, starts_at=autumn[0].starts_at,
                  ends_at=autumn[0].ends_at, required=2, now=NOW)  # still a shift


def test_a_weeks_shift_ids_are_the_same_every_time_it_is_published() -> None:
    first, again = shifts_for_week(default_slots(), "2026-W49"), \
        shifts_for_week(default_slots(), "2026-W49")
    assert [t.id for t in first] == [t.id for t in again]
    assert len({t.id for t in first}) == 5
    assert first[0].id == shift_id_for("2026-W49", default_slots()[0])
    assert not {t.id for t in first} & {t.id for t in shifts_for_week(default_slots(),
                                                                      "2026-W50")}
    published = Shift.publish(id=first[0].id, slot_label=first[0].slot,
                              starts_at=first[0].starts_at, ends_at=first[0].ends_at,
                              required=first[0].required, now=NOW)
    assert published.id == again[0].id and published.slot == "fri 20:00-02:00"


@pytest.mark.parametrize("iso_week", ["2026-49", "2026-w49", "2026-W00", "2027-W53",
                                      "1999-W52", "9999-W52", "2026-W49 "])
def test_the_iso_week_is_checked(iso_week: str) -> None:
    assert invalid(lambda: shifts_for_week(default_slots(), iso_week)) == "iso_week"


# ------------------------------------------------------------------------------ shifts


def _publish(**kw: Any) -> Shift:
    fields: dict[str, Any] = {"id": uuid.uuid4(), "slot_label": "fri 20:00-02:00",
                              "starts_at": STARTS, "ends_at": STARTS + 6 * HOUR,
                              "required": 2, "now": NOW}
    fields.update(kw)
    return Shift.publish(**fields)


def _extra(**kw: Any) -> Shift:
    fields: dict[str, Any] = {"starts_at": STARTS, "ends_at": STARTS + 6 * HOUR,
                              "required": 2, "now": NOW}
    fields.update(kw)
    return Shift.add_extra(**fields)


@pytest.mark.parametrize("make", [_publish, _extra], ids=["published", "extra"])
@pytest.mark.parametrize(("kw", "field"), [
    ({"starts_at": datetime(2026, 12, 4, 20, 0)}, "starts_at"),  # no offset
    ({"ends_at": STARTS}, "ends_at"),
    ({"ends_at": STARTS - HOUR}, "ends_at"),
    ({"ends_at": STARTS + 25 * HOUR + timedelta(minutes=1)}, "ends_at"),
    ({"starts_at": NOW + timedelta(days=732), "ends_at": NOW + timedelta(days=732, hours=6)},
     "starts_at"),
    ({"starts_at": datetime(1999, 12, 31, 20, 0, tzinfo=UTC)}, "starts_at"),
    ({"required": 0}, "required"),
    ({"required": MAX_REQUIRED + 1}, "required"),
    ({"required": "2"}, "required"),
])
def test_a_shifts_times_and_number_are_checked_naming_the_field(
        make: Callable[..., Shift], kw: dict[str, Any], field: str) -> None:
    assert invalid(lambda: make(**kw)) == field


def test_the_edges_of_a_shift_are_accepted_and_kept_in_utc() -> None:
    london = datetime(2026, 12, 4, 20, 0, tzinfo=LONDON)
    s = _extra(starts_at=london, ends_at=london + 25 * HOUR, required=MAX_REQUIRED)
    assert s.starts_at.tzinfo is UTC and s.slot is None  # an extra shift has no slot
    ahead = NOW + timedelta(days=731)
    _extra(starts_at=ahead - 6 * HOUR, ends_at=ahead, required=1)
    assert invalid(lambda: _publish(slot_label="")) == "slot"


def _assigned(*supporters: str, required: int = 2, **kw: Any) -> Shift:
    s = shift(required=required, **kw)
    for sid in supporters:
        s.assign(sid, **OK)
    return s


def test_a_full_shift_takes_nobody_else() -> None:
    s = _assigned("s-1", "s-2")
    with pytest.raises(Conflicting, match="already has its 2 supporters"):
        s.assign("s-3", **OK)


def test_an_inactive_supporter_is_assigned_nothing() -> None:
    with pytest.raises(Conflicting, match="inactive"):
        shift().assign("s-1", eligible=True, active=False, overlapping=False)


def test_an_ineligible_supporter_is_not_assigned() -> None:
    with pytest.raises(Conflicting, match="not eligible"):
        shift().assign("s-1", eligible=False, active=True, overlapping=False)


def test_a_supporter_on_an_overlapping_shift_is_not_assigned() -> None:
    with pytest.raises(Conflicting, match="overlaps"):
        shift().assign("s-1", eligible=True, active=True, overlapping=True)


def test_a_supporter_is_assigned_to_a_shift_once() -> None:
    s = _assigned("s-1", "s-2")
    with pytest.raises(Conflicting, match="already assigned"):
        s.assign("s-1", **OK)


def test_a_supporters_id_is_checked() -> None:
    assert invalid(lambda: shift().assign("", **OK)) == "supporter_id"
    assert invalid(lambda: shift().assign("x" * 101, **OK)) == "supporter_id"


def test_coverage_is_empty_short_or_covered() -> None:
    s = shift()
    assert s.coverage == Coverage.EMPTY
    s.assign("s-1", **OK)
    assert s.coverage == Coverage.SHORT
    s.assign("s-2", **OK)
    assert s.coverage == Coverage.COVERED
    assert replayed(s).assignments == ["s-1", "s-2"]


def test_unassigning_needs_an_assignment() -> None:
    s = _assigned("s-1")
    with pytest.raises(NotKnown):
        s.unassign("s-2", reason=sealed())
    s.unassign("s-1", reason=sealed("ill"))
    assert s.assignments == [] and s.coverage == Coverage.EMPTY


def test_a_swap_is_one_change_and_checks_the_newcomer() -> None:
    s = _assigned("s-1", "s-2")
    s.collect_events()
    for refused, match in (({"active": False}, "inactive"), ({"eligible": False}, "eligible"),
                           ({"overlapping": True}, "overlaps")):
        with pytest.raises(Conflicting, match=match):
            s.swap("s-1", "s-3", **{**OK, **refused})
    with pytest.raises(Conflicting, match="already assigned"):
        s.swap("s-1", "s-2", **OK)
    s.swap("s-1", "s-3", **OK)  # a full shift may swap
    (swapped,) = s.collect_events()
    assert type(swapped).__name__ == "Swapped"
    assert (swapped.from_supporter_id, swapped.to_supporter_id) == ("s-1", "s-3")  # type: ignore[attr-defined]
    assert s.assignments == ["s-3", "s-2"]


def test_a_swap_from_someone_not_on_the_shift_conflicts() -> None:
    with pytest.raises(Conflicting, match="not assigned"):
        _assigned("s-1").swap("s-9", "s-3", **OK)


def test_only_an_assigned_supporter_checks_in() -> None:
    with pytest.raises(NotPermitted):
        _assigned("s-1").check_in("s-2", at=STARTS)


def test_check_in_opens_half_an_hour_before_the_start_and_closes_at_the_end() -> None:
    s = _assigned("s-1", "s-2", "s-3", required=3)
    for early_or_late in (STARTS - timedelta(minutes=31), STARTS + 6 * HOUR + timedelta(seconds=1)):
        with pytest.raises(RuleBroken, match="30 minutes before"):
            s.check_in("s-1", at=early_or_late)
    s.check_in("s-1", at=STARTS - timedelta(minutes=30))
    s.check_in("s-2", at=STARTS + 6 * HOUR)
    assert invalid(lambda: s.check_in("s-3", at=datetime(2026, 12, 4, 20, 0))) == "at"


def test_a_supporter_checks_in_once() -> None:
    s = _assigned("s-1")
    s.check_in("s-1", at=STARTS)
    with pytest.raises(Conflicting, match="already checked in"):
        s.check_in("s-1", at=STARTS + HOUR)


def test_a_check_in_counts_only_while_its_supporter_is_on_the_shift() -> None:
    s = _assigned("s-1", "s-2")
    s.check_in("s-1", at=STARTS)
    s.swap("s-1", "s-3", **OK)
    s.check_in("s-2", at=STARTS)
    assert s.uncovered(STARTS + HOUR, timedelta(minutes=15))
    s.check_in("s-3", at=STARTS + timedelta(minutes=20))
    assert not s.uncovered(STARTS + HOUR, timedelta(minutes=15))


def test_a_shift_started_without_its_check_ins_after_the_grace_is_uncovered_once() -> None:
    grace = timedelta(minutes=15)
    s = _assigned("s-1", "s-2")
    s.check_in("s-1", at=STARTS)
    assert not s.uncovered(STARTS + grace, grace)
    assert s.uncovered(STARTS + grace + timedelta(seconds=1), grace)
    s.mark_uncovered()
    assert not s.uncovered(STARTS + HOUR, grace)
    with pytest.raises(RuleBroken, match="already"):
        s.mark_uncovered()
    uncovered = s.collect_events()[-1]
    assert (uncovered.checked_in, uncovered.required) == (["s-1"], 2)  # type: ignore[attr-defined]


def test_a_bag_not_handed_over_is_recorded_once() -> None:
    s = _assigned("s-1", "s-2")
    s.bag_not_handed_over()
    with pytest.raises(RuleBroken, match="already"):
        s.bag_not_handed_over()
    assert replayed(s).bag_not_handed_over_recorded


def test_shifts_overlap_when_they_share_time_not_when_one_ends_as_the_next_starts() -> None:
    a, b = STARTS, STARTS + 6 * HOUR
    assert overlaps(a, b, a + HOUR, b + HOUR) and overlaps(a + HOUR, b - HOUR, a, b)
    assert not overlaps(a, b, b, b + 6 * HOUR) and not overlaps(b, b + HOUR, a, b)


# -------------------------------------------------------------------------------- bags


def test_a_bag_is_held_by_who_registered_it_and_checks_every_item_by_default() -> None:
    bag = Bag.register(label=" Bag 1 ")
    assert (bag.label, bag.holder, sorted(bag.items)) == ("Bag 1", "coord-1", sorted(BAG_ITEMS))
    assert invalid(lambda: Bag.register(label=" ")) == "label"
    assert invalid(lambda: Bag.register(label="B", items=["torch"])) == "items"
    assert invalid(lambda: Bag.register(label="B", items=[])) == "items"


ALL_CHECKED = dict.fromkeys(BAG_ITEMS, True)


def _hand(bag: Bag, frm: str, to: str, at: datetime = NOW, **kw: Any) -> list[str]:
    return bag.hand_over(from_supporter_id=frm, to_supporter_id=to,
                         items_checked=kw.pop("items_checked", ALL_CHECKED), at=at,
                         notes=kw.pop("notes", None), now=NOW)


def test_only_the_holder_hands_the_bag_over_the_first_time_who_registered_it() -> None:
    bag = Bag.register(label="Bag 1")
    with pytest.raises(Conflicting, match="coord-1 does"):
        _hand(bag, "s-1", "s-2")
    assert _hand(bag, "coord-1", "s-1", NOW - 2 * HOUR) == []
    with pytest.raises(Conflicting, match="s-1 does"):
        _hand(bag, "coord-1", "s-2")
    _hand(bag, "s-1", "s-2", NOW - HOUR, notes=sealed("left on the doorstep"))
    copy = replayed(bag)
    assert copy.holder == "s-2"
    assert [(h["from_supporter_id"], h["to_supporter_id"], h["at"]) for h in copy.history] == [
        ("coord-1", "s-1", NOW - 2 * HOUR), ("s-1", "s-2", NOW - HOUR)]
    assert copy.history[1]["notes"] == sealed("left on the doorstep")


def test_a_missing_or_uncharged_item_is_recorded_besides_the_handover() -> None:
    bag = Bag.register(label="Bag 1")
    bag.collect_events()
    missing = _hand(bag, "coord-1", "s-1",
                    items_checked={"phone": True, "phone_charged": False, "resource_booklet": True})
    assert missing == ["phone_charged", "service_directory"]  # unchecked counts as missing
    events = bag.collect_events()
    assert [type(e).__name__ for e in events] == ["HandedOver", "ItemMissing", "ItemMissing"]
    assert [(e.item, e.holder) for e in events[1:]] == [  # type: ignore[attr-defined]
        ("phone_charged", "s-1"), ("service_directory", "s-1")]


@pytest.mark.parametrize(("kw", "field"), [
    ({"to": "s-1"}, "to_supporter_id"),  # to themselves
    ({"to": ""}, "to_supporter_id"),
    ({"items_checked": {"torch": True}}, "items_checked"),
    ({"items_checked": ["phone"]}, "items_checked"),
    ({"items_checked": {"phone": "yes"}}, "items_checked.phone"),
    ({"at": NOW + timedelta(minutes=6)}, "at"),
    ({"at": datetime(2026, 11, 29, 22, 0)}, "at"),
    ({"at": NOW - 3 * HOUR}, "at"),  # before the last handover
])
def test_a_handover_is_checked_naming_the_field(kw: dict[str, Any], field: str) -> None:
    bag = Bag.register(label="Bag 1")
    _hand(bag, "coord-1", "s-1", NOW - 2 * HOUR)
    to, at = kw.pop("to", "s-2"), kw.pop("at", NOW)
    assert invalid(lambda: _hand(bag, "s-1", to, at, **kw)) == field


# ---------------------------------------------------------------------------- debriefs


def test_a_debrief_has_one_id_per_contact_and_supporter() -> None:
    contact_id = uuid.uuid4()
    first = Debrief.open(supporter_id="s-1", contact_id=contact_id, now=NOW)
    again = Debrief.open(supporter_id="s-1", contact_id=contact_id, now=NOW)
    other = Debrief.open(supporter_id="s-2", contact_id=contact_id, now=NOW)
    assert first.id == again.id == debrief_id_for(contact_id, "s-1") != other.id
    assert (first.status, first.requested_at) == ("open", NOW)
    assert invalid(lambda: Debrief.open(supporter_id="s-1", contact_id=str(contact_id),  # type: ignore[arg-type]
                                        now=NOW)) == "contact_id"
    assert invalid(lambda: Debrief.open(supporter_id="s-1", contact_id=contact_id, now=NOW,
                                        requested_at=NOW + HOUR)) == "requested_at"


def test_a_debrief_completes_once() -> None:
    d = Debrief.open(supporter_id="s-1", contact_id=uuid.uuid4(), requested_at=NOW, now=NOW)
    d.complete(on=TODAY, by="coord-1", today=TODAY)
    assert d.pending_events[-1].supporter_id == "s-1"  # type: ignore[attr-defined]
    assert replayed(d).status == "complete" and d.completed_by == "coord-1"
    with pytest.raises(RuleBroken, match="already complete"):
        d.complete(on=TODAY, by="coord-1", today=TODAY)


@pytest.mark.parametrize(("kw", "field"), [
    ({"on": TODAY - timedelta(days=1)}, "on"),  # before it was requested
    ({"on": TODAY + timedelta(days=1)}, "on"),
    ({"on": NOW}, "on"),
    ({"by": ""}, "by"),
])
def test_a_debriefs_date_and_who_held_it_are_checked(kw: dict[str, Any], field: str) -> None:
    d = Debrief.open(supporter_id="s-1", contact_id=uuid.uuid4(), requested_at=NOW, now=NOW)
    fields = {"on": TODAY, "by": "coord-1", **kw}
    assert invalid(lambda: d.complete(**fields, today=TODAY)) == field


def test_a_debrief_open_longer_than_the_setting_is_overdue() -> None:
    d = Debrief.open(supporter_id="s-1", contact_id=uuid.uuid4(), requested_at=NOW, now=NOW)
    assert not d.overdue(NOW + timedelta(hours=72), timedelta(hours=72))
    assert d.overdue(NOW + timedelta(hours=73), timedelta(hours=72))
    d.complete(on=TODAY, by="coord-1", today=TODAY)
    assert not d.overdue(NOW + timedelta(days=30), timedelta(hours=72))


# ---------------------------------------------------- properties: the rota's invariants

T0 = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)
PLAN = (  # hours after T0, length in hours, required: A, B, C, D, E
    (0, 6, 2),  # A 20:00-02:00
    (2, 6, 1),  # B 22:00-04:00: overlaps A
    (12, 6, 2),  # C 08:00-14:00 next day: overlaps nothing
    (5, 4, 3),  # D 01:00-05:00: overlaps A and B
    (6, 2, 1),  # E 02:00-04:00: overlaps B and D; starts as A ends
)
PEOPLE = ("ok-1", "ok-2", "ok-3", "ok-4", "untrained", "inactive", "expired")


@cache
def _people() -> dict[str, Supporter]:
    """Supporters as the application would load them: four eligible and active, one
    never trained, one deactivated, one whose training expired before the shifts."""
    with acting("coord-1"):
        people = {sid: trained() for sid in PEOPLE[:4]}
        people["untrained"] = supporter()
        people["inactive"] = trained()
        people["inactive"].deactivate(reason=sealed())
        people["expired"] = supporter()
        for course in sorted(DEFAULT_REQUIRED_COURSES):
            people["expired"].record_training(course=course, completed_on=date(2025, 1, 1),
                                              expires_on=date(2026, 1, 1), today=TODAY)
    return people


def _may_join(sid: str, target: Shift, shifts: list[Shift]) -> dict[str, bool]:
    """The application's part: ask the supporter, and the other shifts' assignments."""
    person = _people()[sid]
    on = target.starts_at.astimezone(LONDON).date()
    return {"eligible": person.eligibility(DEFAULT_REQUIRED_COURSES, on)[0],
            "active": person.active,
            "overlapping": any(sid in other.assignments and other is not target
                               and overlaps(target.starts_at, target.ends_at,
                                            other.starts_at, other.ends_at)
                               for other in shifts)}


def _allowed(sid: str, target: Shift, shifts: list[Shift]) -> bool:
    view = _may_join(sid, target, shifts)
    return view["eligible"] and view["active"] and not view["overlapping"] \
        and sid not in target.assignments


def _command(name: str, target: Shift, sid: str, other: str, shifts: list[Shift]) -> bool:
    """Run one command as the application would; whether the domain accepted it."""
    try:
        if name == "assign":
            target.assign(sid, **_may_join(sid, target, shifts))
        elif name == "unassign":
            target.unassign(sid, reason=sealed())
        else:
            target.swap(sid, other, **_may_join(other, target, shifts))
    except (Conflicting, NotKnown):
        return False
    return True


_shift_index = st.integers(0, len(PLAN) - 1)
_person = st.sampled_from(PEOPLE)
_commands = st.lists(st.one_of(
    st.tuples(st.just("assign"), _shift_index, _person, st.just("")),
    st.tuples(st.just("unassign"), _shift_index, _person, st.just("")),
    st.tuples(st.just("swap"), _shift_index, _person, _person),
), max_size=40)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(commands=_commands)
def test_random_assignments_unassignments_and_swaps_never_break_the_rules(
        commands: list[tuple[str, int, str, str]]) -> None:
    shifts = [shift(T0 + timedelta(hours=h), hours=n, required=r) for h, n, r in PLAN]
    eligible = {sid for sid, p in _people().items()
                if p.active and p.eligibility(DEFAULT_REQUIRED_COURSES, T0.date())[0]}
    for name, i, sid, other in commands:
        target, before = shifts[i], [list(s.assignments) for s in shifts]
        if name == "assign":
            expected = _allowed(sid, target, shifts) and len(target.assignments) < target.required
        elif name == "unassign":
            expected = sid in target.assignments
        else:
            expected = sid in target.assignments and _allowed(other, target, shifts)
        done = _command(name, target, sid, other, shifts)
        assert done == expected, (name, i, sid, other)
        if not done:  # a refused command changes nothing
            assert [s.assignments for s in shifts] == before
        for s in shifts:
            assert len(s.assignments) <= s.required
            assert len(set(s.assignments)) == len(s.assignments)
            assert set(s.assignments) <= eligible  # never the ineligible or inactive
        for a in shifts:
            for b in shifts:
                if a is not b and overlaps(a.starts_at, a.ends_at, b.starts_at, b.ends_at):
                    assert not set(a.assignments) & set(b.assignments)
    for s in shifts:  # and the store would rebuild the same shifts
        assert replayed(s).assignments == s.assignments

