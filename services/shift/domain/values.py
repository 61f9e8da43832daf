"""Small values and checks the shift service's aggregates share: who acted, a person's
id, plain dates. No I/O here.

Dates travel inside events as ISO strings (``YYYY-MM-DD``): the library's JSON
transcoder knows ``datetime``, ``UUID`` and ``Decimal`` but not ``date``. Commands
take and aggregates show ``date`` values.
"""

from __future__ import annotations

from datetime import date, datetime

from services.shift.domain.codes import EARLIEST_DATE, LONDON, MAX_PERSON_ID
from shared.kernel import InvalidCommand

# An event's who-and-why, read back where a record shows who did it. An apply method
# that needs it takes ``meta: Meta = None`` before its ``*``: the library counts every
# keyword-only parameter as required when the method is called as a command, and the
# base ``Aggregate`` (shared.kernel) stamps the real value on the event as it is made.
Meta = dict[str, str] | None


def actor_of(meta: Meta) -> str:
    return (meta or {}).get("actor", "")


def person_id(field: str, value: object) -> str:
    """A person known to the system, by the ``sub`` of their token (a supporter's is
    their UUID as text): never a name."""
    if not isinstance(value, str) or not value.strip() or value != value.strip() \
            or len(value) > MAX_PERSON_ID:
        raise InvalidCommand(field, "a person's id: a non-empty string of at most "
                                    f"{MAX_PERSON_ID} characters, without surrounding spaces")
    return value


def london_today(now: datetime | None = None) -> date:
    """Today in London, where the line works (``now`` for tests and replays)."""
    return (now or datetime.now(LONDON)).astimezone(LONDON).date()


def plain_date(field: str, value: object, latest: date, earliest: date = EARLIEST_DATE) -> date:
    """A calendar date (not a timestamp) inside a plausible window, both ends included."""
    if not isinstance(value, date) or isinstance(value, datetime):
        raise InvalidCommand(field, "must be a date, e.g. 2026-11-29")
    if not earliest <= value <= latest:
        raise InvalidCommand(field, f"must be from {earliest.isoformat()} "
                                    f"to {latest.isoformat()}")
    return value


def years_after(day: date, years: int) -> date:
    """The same day ``years`` later (28 February for a 29th without its leap year)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def from_iso(value: str | None) -> date | None:
    return date.fromisoformat(value) if value is not None else None
