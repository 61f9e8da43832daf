"""Replay as pure folding (``shared.audit.replay``): an aggregate defined here (no
service's domain), its events stamped at chosen times, folded up to a moment and
presented for a role that sees personal data and for one that does not."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.domain import event

from shared.audit.replay import Hooks, fold, hidden, jsonable, replay
from shared.kernel import ERASED, Aggregate, InvalidCommand, NotKnown, acting

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # the night the clocks go forward
SEALED = "pd1:subject-1:c2VhbGVk"


class Visit(Aggregate):
    """A stand-in aggregate: requested, assessed, approved."""

    @classmethod
    def request(cls, address: str) -> Visit:
        return cls._create(cls.Requested, address=address, on=date(2026, 3, 29).isoformat())

    class Requested(Aggregate.Created):
        address: str
        on: str
        meta: dict[str, str]

    def __init__(self, *, address: str, on: str, meta: dict[str, str]) -> None:
        self.address = address
        self.on = date.fromisoformat(on)
        self.status = "requested"
        self.assessments: list[dict[str, Any]] = []
        self.approval: dict[str, Any] | None = None
        self._private = "never shown"

    class Assessed(Aggregate.Event):
        level: str
        notes: str
        at: datetime
        meta: dict[str, str]

    @event(Assessed)
    def assess(self, meta: dict[str, str] | None = None, *, level: str, notes: str,
               at: datetime) -> None:
        self.assessments.append({"n": len(self.assessments) + 1, "level": level,
                                 "notes": notes, "at": at})
        self.status = "assessed"

    class Approved(Aggregate.Event):
        by: str
        assessment_n: int
        meta: dict[str, str]

    @event(Approved)
    def approve(self, meta: dict[str, str] | None = None, *, by: str,
                assessment_n: int) -> None:
        self.approval = {"by": by, "assessment_n": assessment_n}
        self.status = "approved"


HOOKS = Hooks(service="demo",
              decisions={"Visit.Assessed": ("level", "notes"),
                         "Visit.Approved": ("by", "assessment_n")},
              extras={"Visit": lambda v: {"approved": v.approval is not None}})


def history() -> list[Any]:
    """Requested at T0, assessed at T0+10 min, approved at T0+20 min."""
    with acting("coord-1"):
        visit = Visit.request(SEALED)
        visit.assess(level="medium", notes=SEALED, at=T0 + timedelta(minutes=9))
        visit.approve(by="coord-1", assessment_n=1)
    return [dataclasses.replace(e, timestamp=T0 + timedelta(minutes=10 * i))
            for i, e in enumerate(visit.collect_events())]


def test_before_the_approval_it_is_unapproved_and_after_approved() -> None:
    events = history()
    before = replay(events, T0 + timedelta(minutes=19, seconds=59), HOOKS)
    assert before["version"] == 2 and before["type"] == "Visit"
    assert before["state"]["status"] == "assessed" and before["state"]["approval"] is None
    assert before["state"]["approved"] is False  # the service's extra
    assert [e["type"] for e in before["events"]] == ["Visit.Requested", "Visit.Assessed"]

    after = replay(events, T0 + timedelta(minutes=20), HOOKS)  # at the moment: included
    assert after["version"] == 3 and after["state"]["status"] == "approved"
    assert after["state"]["approval"] == {"by": "coord-1", "assessment_n": 1}
    approved = after["events"][-1]
    assert approved == {"version": 3, "type": "Visit.Approved",
                        "at": (T0 + timedelta(minutes=20)).isoformat(), "actor": "coord-1",
                        "decision": {"by": "coord-1", "assessment_n": 1}}
    assert after["events"][0]["decision"] is None  # a request is no decision
    assert after["events"][0]["actor"] == "coord-1"
    assert after["as_of"] == (T0 + timedelta(minutes=20)).isoformat()


def test_personal_data_is_hidden_or_opened_and_private_attributes_never_shown() -> None:
    events = history()
    hidden_view = replay(events, T0 + timedelta(hours=1), HOOKS)
    assert hidden_view["state"]["address"] is None
    assert hidden_view["state"]["assessments"][0]["notes"] is None
    assert hidden_view["events"][1]["decision"] == {"level": "medium", "notes": None}
    assert "_private" not in hidden_view["state"] and SEALED not in str(hidden_view)

    def opened(token: str | None) -> str | None:
        return None if token is None else "Flat 3"

    view = replay(events, T0 + timedelta(hours=1), HOOKS, opened)
    assert view["state"]["address"] == "Flat 3"
    assert view["events"][1]["decision"]["notes"] == "Flat 3"
    erased = replay(events, T0 + timedelta(hours=1), HOOKS, lambda t: ERASED)
    assert erased["state"]["address"] == ERASED
    # Times in UTC ISO 8601, dates as dates, the id as text.
    assert view["state"]["on"] == "2026-03-29"
    assert view["state"]["assessments"][0]["at"] == "2026-03-29T00:39:00+00:00"
    assert view["id"] == str(events[0].originator_id) == view["state"]["id"]


def test_before_it_existed_and_unknown_are_404s_that_say_which() -> None:
    events = history()
    with pytest.raises(NotKnown, match=r"did not exist yet.*first event was recorded at "
                       r"2026-03-29T00:30:00"):
        fold(events, T0 - timedelta(seconds=1))
    with pytest.raises(NotKnown, match="No such record"):
        fold([], T0)


def test_a_clock_stepped_back_ends_the_fold_at_the_first_later_event() -> None:
    events = history()
    events[2] = dataclasses.replace(events[2], timestamp=T0 + timedelta(minutes=5))
    aggregate, upto = fold(events, T0 + timedelta(minutes=6))
    assert [e.originator_version for e in upto] == [1]  # not 1 and 3
    assert aggregate.status == "requested"


def test_the_id_is_found_by_the_service_or_refused_on_the_path() -> None:
    from shared.audit.replay import find

    assert find(HOOKS, str(uuid.UUID(int=5))) == uuid.UUID(int=5)
    with pytest.raises(InvalidCommand) as caught:
        find(HOOKS, "not-an-id")
    assert caught.value.location == "path" and caught.value.field == "aggregate_id"


def test_jsonable_covers_what_aggregates_hold() -> None:
    when = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    value = {"t": when, "d": date(2026, 1, 2), "u": uuid.UUID(int=1), "s": {"b", "a"},
             "tup": (1, SEALED), uuid.UUID(int=2): [None, True, 1.5]}
    assert jsonable(value, hidden) == {
        "t": "2026-10-25T01:30:00+00:00", "d": "2026-01-02",
        "u": "00000000-0000-0000-0000-000000000001", "s": ["a", "b"], "tup": [1, None],
        "00000000-0000-0000-0000-000000000002": [None, True, 1.5]}
