"""The contact aggregate's rules, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.contact.domain import ISSUES, Contact
from services.contact.handlers import public_event
from shared.domain import InvalidCommand

NOW = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)
META = {"actor": "supporter-1", "correlation_id": "c-1"}


def log(**overrides: object) -> Contact:
    fields: dict[str, object] = {
        "channel": "phone",
        "started_at": NOW - timedelta(minutes=30),
        "ended_at": NOW - timedelta(minutes=10),
        "issues": ["bereavement"],
        "meta": META,
        "now": NOW,
    }
    fields.update(overrides)
    return Contact.log(**fields)  # type: ignore[arg-type]


def test_a_logged_contact_keeps_its_coded_fields_in_utc() -> None:
    london = datetime(2026, 7, 1, 23, 30).astimezone()  # any offset is kept as UTC
    c = log(started_at=london, ended_at=None, issues=["housing", "housing", "abuse"])
    assert c.started_at.tzinfo == UTC and c.started_at == london
    assert c.issues == ["housing", "abuse"]  # duplicates folded, order kept
    assert c.version == 1 and c.logged_by == "supporter-1"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"channel": "fax"}, "channel"),
        ({"issues": []}, "issues"),
        ({"issues": ["unicorns"]}, "issues"),
        ({"issues": "housing"}, "issues"),
        ({"started_at": datetime(2026, 11, 29, 21, 0)}, "started_at"),  # naive
        ({"started_at": NOW + timedelta(hours=1), "ended_at": None}, "started_at"),
        ({"ended_at": NOW - timedelta(hours=1)}, "ended_at"),  # before the start
        ({"ended_at": NOW + timedelta(hours=1)}, "ended_at"),
    ],
)
def test_invalid_contacts_are_refused_naming_the_field(overrides: dict[str, object],
                                                       field: str) -> None:
    with pytest.raises(InvalidCommand) as info:
        log(**overrides)
    assert info.value.field == field


def test_a_small_clock_skew_is_tolerated() -> None:
    c = log(started_at=NOW + timedelta(minutes=2), ended_at=None)
    assert c.started_at == NOW + timedelta(minutes=2)


def test_a_correction_is_a_new_event_with_its_reason_and_keeps_the_original() -> None:
    c = log()
    c.correct(reason="pd1:s:re-read", issues=["panic_attack"], meta={"actor": "coord"},
              now=NOW)
    logged, corrected = c.collect_events()
    assert isinstance(logged, Contact.Logged) and logged.issues == ["bereavement"]
    assert isinstance(corrected, Contact.Corrected)
    assert corrected.reason == "pd1:s:re-read" and corrected.meta["actor"] == "coord"
    assert c.issues == ["panic_attack"] and c.corrections == 1 and c.version == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"reason": " ", "issues": ["housing"]}, "reason"),
        ({"reason": "x"}, "issues"),
        ({"reason": "x", "issues": []}, "issues"),
        ({"reason": "x", "ended_at": NOW - timedelta(hours=2)}, "ended_at"),
    ],
)
def test_invalid_corrections_are_refused(kwargs: dict[str, object], field: str) -> None:
    c = log()
    with pytest.raises(InvalidCommand) as info:
        c.correct(meta=META, now=NOW, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert c.version == 1


def test_public_events_carry_coded_fields_only() -> None:
    c = log()
    c.correct(reason="pd1:s:sealed", issues=["housing"], meta=META, now=NOW)
    logged, corrected = c.collect_events()
    pub = public_event(logged)
    assert pub is not None and pub.type == "ContactLogged"
    assert "summary" not in pub.data and "phone" not in pub.data
    assert {"contact_id", "channel", "issues", "caller_ref", "age_band"} <= set(pub.data)
    pub2 = public_event(corrected)
    assert pub2 is not None and pub2.type == "ContactCorrected"
    assert "reason" not in pub2.data
    assert "pd1:" not in repr(pub2.data)


def test_issue_codes_are_the_fifteen_of_the_monitoring_form() -> None:
    assert len(ISSUES) == 15 and "suicidal_thoughts" in ISSUES
