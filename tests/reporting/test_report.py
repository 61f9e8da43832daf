"""The monitoring report without I/O: London periods, percentages and their bases, the
partners' copy with small numbers suppressed, and the CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.reporting.report import (
    build,
    for_partner,
    london_month,
    month_period,
    months_of,
    percent,
    to_csv,
    year_period,
)
from shared.kernel import InvalidCommand

PERIOD = (date(2026, 4, 1), date(2026, 4, 30))


def raw(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "contacts": {"total": 40, "by_channel": {"phone": 30, "text": 10},
                     "by_direction": {"inbound": 38, "outbound": 2},
                     "by_caller_is": {"person_in_crisis": 33, "professional": 6,
                                      "not_recorded": 1},
                     "by_issue": {"bereavement": 12, "housing": 30, "self_harm": 3},
                     "by_risk_level": {"low": 20, "high": 8, "not_assessed": 12},
                     "by_shift_slot": {"sat 20:00-02:00": 25, "sun 20:00-02:00": 13},
                     "outside_shifts": 2, "missed_calls": 3,
                     "signposting": {"Cruse": 4, "=SUM(A1)": 6}},
        "callers": {"unique": 20, "new": 9, "repeat": 7,
                    "by_gender": {"female": 9, "male": 6, "non_binary": 1},
                    "gender_not_disclosed": 4,
                    "by_age_band": {"18_24": 8, "61_plus": 8}, "age_band_not_disclosed": 4},
        "referrals": {"total": 16, "by_source": {"gp": 1, "self": 15},
                      "accepted": 10, "declined": 2},
        "escalations": {"total": 0, "by_kind": {}},
        "follow_ups": {"due": 7, "completed": 5, "overdue": 2},
        "shifts": {"published": 9, "fully_covered": 6, "short": 2, "empty": 1},
        "debriefs": {"opened": 5, "completed": 4, "overdue": 1},
        "meetings": {"requested": 6, "approved": 5, "declined": 1, "completed": 4,
                     "cancelled": 0, "by_kind": {"home_visit": 6}, "safety_alerts": 0},
    }
    for section, values in over.items():
        base[section] = {**base[section], **values}
    return base


# ---------------------------------------------------------------------------- periods

def test_a_month_is_london_midnight_to_london_midnight() -> None:
    first, last, start, end = month_period("2026-04")
    assert (first, last) == (date(2026, 4, 1), date(2026, 4, 30))
    # 1 April is in BST: its midnight is 23:00 UTC on 31 March
    assert start == datetime(2026, 3, 31, 23, tzinfo=UTC)
    assert end == datetime(2026, 4, 30, 23, tzinfo=UTC)
    assert london_month(datetime(2026, 3, 31, 23, 30, tzinfo=UTC)) == "2026-04"


def test_london_month_is_the_month_of_london_wall_clock_time_every_half_hour() -> None:
    # Its shortcut (a day far from the month's ends) against the zone's own answer, over
    # two years: both clock changes of each, every month's first and last hours.
    london = ZoneInfo("Europe/London")
    at = datetime(2025, 1, 1, tzinfo=UTC)
    while at < datetime(2027, 1, 1, tzinfo=UTC):
        assert london_month(at) == at.astimezone(london).strftime("%Y-%m"), at
        assert london_month(at.astimezone(london)) == at.astimezone(london).strftime("%Y-%m")
        at += timedelta(minutes=30)


def test_the_clock_changes_inside_a_month() -> None:
    # March 2026: GMT at its start, BST from 29 March; October: back to GMT on the 25th
    _, _, start, end = month_period("2026-03")
    assert start == datetime(2026, 3, 1, tzinfo=UTC)
    assert end == datetime(2026, 3, 31, 23, tzinfo=UTC)
    assert (end - start).total_seconds() == (31 * 24 - 1) * 3600
    _, last, start, end = month_period("2026-10")
    assert last == date(2026, 10, 31)
    assert start == datetime(2026, 9, 30, 23, tzinfo=UTC)
    assert end == datetime(2026, 11, 1, tzinfo=UTC)
    assert (end - start).total_seconds() == (31 * 24 + 1) * 3600
    _, _, start, end = month_period("2026-12")
    assert (start, end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def test_a_year_is_twelve_months_from_its_start() -> None:
    first, last, start, end = year_period("2026-04")
    assert (first, last) == (date(2026, 4, 1), date(2027, 3, 31))
    assert start == datetime(2026, 3, 31, 23, tzinfo=UTC)
    assert end == datetime(2027, 3, 31, 23, tzinfo=UTC)
    assert months_of("2026-04") == ["2026-04", "2026-05", "2026-06", "2026-07", "2026-08",
                                    "2026-09", "2026-10", "2026-11", "2026-12", "2027-01",
                                    "2027-02", "2027-03"]
    assert year_period("2026-01")[:2] == (date(2026, 1, 1), date(2026, 12, 31))


@pytest.mark.parametrize("value", ["2026-13", "2026-00", "2026-4", "26-04", "2026/04",
                                   "", "2026-04-01", " 2026-04", "1999-12", "9999-01",
                                   "\uff12\uff10\uff12\uff16-04", "2026-04\n"])
def test_a_bad_month_names_its_field(value: str) -> None:
    with pytest.raises(InvalidCommand) as e:
        month_period(value)
    assert (e.value.location, e.value.field) == ("query", "month")
    with pytest.raises(InvalidCommand) as e:
        year_period(value)
    assert (e.value.location, e.value.field) == ("query", "start")


# ------------------------------------------------------------------------------ build

def test_percent_rounds_to_one_decimal_halves_up() -> None:
    assert percent(1, 3) == 33.3
    assert percent(2, 3) == 66.7
    assert percent(1, 16) == 6.3  # 6.25: a float's round() would give 6.2
    assert percent(1, 8) == 12.5
    assert percent(5, 5) == 100.0
    assert percent(0, 0) is None


def test_each_breakdown_is_count_and_percent_of_its_base() -> None:
    r = build(raw(), PERIOD)
    assert r["period"] == {"from": "2026-04-01", "to": "2026-04-30"}
    c = r["contacts"]
    assert c["total"] == 40
    assert c["by_channel"] == {"phone": {"count": 30, "percent": 75.0},
                               "text": {"count": 10, "percent": 25.0}}
    # a contact can have several issues: each is a percentage of the contacts
    assert c["by_issue"]["housing"] == {"count": 30, "percent": 75.0}
    assert c["by_issue"]["self_harm"] == {"count": 3, "percent": 7.5}
    assert c["by_caller_is"]["not_recorded"] == {"count": 1, "percent": 2.5}
    assert c["by_shift_slot"]["sun 20:00-02:00"] == {"count": 13, "percent": 32.5}
    assert (c["outside_shifts"], c["missed_calls"]) == (2, 3)
    assert c["signposting"] == {"=SUM(A1)": 6, "Cruse": 4}
    assert r["referrals"]["by_source"]["gp"] == {"count": 1, "percent": 6.3}
    assert r["meetings"]["by_kind"] == {"home_visit": {"count": 6, "percent": 100.0}}
    assert r["escalations"] == {"total": 0, "by_kind": {}}
    assert r["shifts"]["coverage_percent"] == 66.7
    assert "months" not in r


def test_gender_and_age_band_are_percentages_of_those_who_disclosed() -> None:
    r = build(raw(), PERIOD)["callers"]
    assert r["by_gender"] == {"female": {"count": 9, "percent": 56.3},
                              "male": {"count": 6, "percent": 37.5},
                              "non_binary": {"count": 1, "percent": 6.3},
                              "not_disclosed": {"count": 4, "percent": None}}
    assert r["by_age_band"]["61_plus"] == {"count": 8, "percent": 50.0}
    # a code "not_disclosed" among the counts joins the count outside the base
    r = build(raw(callers={"by_age_band": {"18_24": 3, "not_disclosed": 2}}), PERIOD)
    assert r["callers"]["by_age_band"] == {"18_24": {"count": 3, "percent": 100.0},
                                           "not_disclosed": {"count": 6, "percent": None}}


def test_nothing_counted_has_no_percentages() -> None:
    r = build({}, PERIOD)
    assert r["contacts"]["total"] == 0 and r["contacts"]["by_channel"] == {}
    assert r["shifts"]["coverage_percent"] is None
    assert r["callers"]["by_gender"] == {"not_disclosed": {"count": 0, "percent": None}}


def test_a_year_lists_its_months() -> None:
    months = [("2026-04", raw()), ("2026-05", raw(contacts={"total": 3},
                                                  callers={"unique": 2}))]
    r = build(raw(), (date(2026, 4, 1), date(2027, 3, 31)), months=months)
    assert r["months"][1] == {"month": "2026-05", "contacts": {"total": 3},
                              "callers": {"unique": 2}, "referrals": {"total": 16}}


# ------------------------------------------------------------------- suppression

def test_partners_see_small_counts_as_fewer_than_five() -> None:
    full = build(raw(), PERIOD)
    p = for_partner(full)
    assert full["contacts"]["missed_calls"] == 3  # the report itself is untouched
    assert p["contacts"]["missed_calls"] == "<5"
    assert p["contacts"]["total"] == 40 and p["callers"]["unique"] == 20
    assert p["escalations"] == {"total": 0, "by_kind": {}}  # 0 gives no one away
    assert p["contacts"]["by_issue"]["self_harm"] == {"count": "<5", "percent": None}
    assert p["contacts"]["signposting"] == {"=SUM(A1)": 6, "Cruse": "<5"}
    assert p["debriefs"] == {"opened": 5, "completed": "<5", "overdue": "<5"}


def test_a_breakdown_with_a_hidden_count_shows_no_percentages() -> None:
    p = for_partner(build(raw(), PERIOD))
    # bereavement's 12 would tell, beside the total, nothing; but a percentage with its
    # count gives the base away: withheld throughout the breakdown
    assert p["contacts"]["by_issue"]["bereavement"] == {"count": 12, "percent": None}
    assert p["callers"]["by_gender"]["female"] == {"count": 9, "percent": None}
    # a breakdown with no small count keeps its percentages
    assert p["contacts"]["by_channel"]["phone"] == {"count": 30, "percent": 75.0}
    assert p["meetings"]["by_kind"]["home_visit"] == {"count": 6, "percent": 100.0}


def test_a_count_that_subtraction_would_give_away_is_withheld_too() -> None:
    p = for_partner(build(raw(), PERIOD))
    # referrals 16 = gp 1 + self 15: self is withheld, else 16 - 15 tells gp's 1
    assert p["referrals"]["by_source"] == {"gp": {"count": "<5", "percent": None},
                                           "self": {"count": None, "percent": None}}
    # shifts 9 = 6 + 2 + 1: two small ones summing to 3 tell neither (1 and 2, or 2 and 1)
    assert p["shifts"] == {"published": 9, "fully_covered": 6, "short": "<5", "empty": "<5",
                           "coverage_percent": 66.7}
    # direction 40 = 38 + 2: the smallest other count goes too
    assert p["contacts"]["by_direction"]["inbound"]["count"] is None
    # contacts 40 = 38 on shifts + 2 outside: the slots' smallest (13) is withheld
    assert p["contacts"]["outside_shifts"] == "<5"
    assert p["contacts"]["by_shift_slot"]["sun 20:00-02:00"]["count"] is None
    assert p["contacts"]["by_shift_slot"]["sat 20:00-02:00"]["count"] == 25


def test_small_counts_that_could_only_all_be_one_are_not_left_alone() -> None:
    r = build(raw(shifts={"published": 8, "fully_covered": 6, "short": 1, "empty": 1}),
              PERIOD)
    sh = for_partner(r)["shifts"]
    assert sh == {"published": 8, "fully_covered": None, "short": "<5", "empty": "<5",
                  "coverage_percent": None}


def test_a_small_total_hides_its_breakdown_and_its_percentages() -> None:
    r = build(raw(referrals={"total": 4, "by_source": {"gp": 1, "self": 3},
                             "accepted": 0}), PERIOD)
    p = for_partner(r)["referrals"]
    assert p == {"total": "<5", "by_source": {"gp": {"count": "<5", "percent": None},
                                              "self": {"count": "<5", "percent": None}},
                 "accepted": 0, "declined": "<5"}


def test_a_years_months_are_suppressed_and_protected_from_subtraction() -> None:
    months = [("2026-04", raw(contacts={"total": 36})), ("2026-05", raw(contacts={"total": 4}))]
    p = for_partner(build(raw(), PERIOD, months=months))
    assert [m["contacts"]["total"] for m in p["months"]] == [None, "<5"]


# -------------------------------------------------------------------------------- CSV

def _parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_csv_has_a_row_per_figure() -> None:
    table = _parse(to_csv(build(raw(), PERIOD)))
    assert table[0] == ["section", "breakdown", "code", "count", "percent"]
    assert ["contacts", "", "total", "40", ""] in table
    assert ["contacts", "by_channel", "phone", "30", "75.0"] in table
    assert ["contacts", "by_shift_slot", "sat 20:00-02:00", "25", "62.5"] in table
    assert ["callers", "by_gender", "not_disclosed", "4", ""] in table
    assert ["shifts", "", "coverage_percent", "", "66.7"] in table
    assert ["escalations", "", "total", "0", ""] in table
    # a name that a spreadsheet would run as a formula is quoted
    assert ["contacts", "signposting", "'=SUM(A1)", "6", ""] in table
    assert all(len(row) == 5 for row in table)
    assert not any(row[0] == "period" for row in table)


def test_csv_of_a_partners_year() -> None:
    months = [("2026-04", raw()), ("2026-05", raw(contacts={"total": 2}))]
    table = _parse(to_csv(for_partner(build(raw(), PERIOD, months=months))))
    assert ["contacts", "", "missed_calls", "<5", ""] in table
    assert ["referrals", "by_source", "self", "", ""] in table
    assert ["months", "2026-05", "contacts.total", "<5", ""] in table
    assert ["months", "2026-04", "callers.unique", "20", ""] in table
