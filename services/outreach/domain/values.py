"""Small values and checks the meeting uses: who acted, a person's id, a number of
minutes, the clock. Copied from the other services' domains on purpose: outreach imports
nothing from them. No I/O here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.outreach.domain.codes import MAX_MINUTES, MAX_REF
from shared.kernel import Conflicting, InvalidCommand, require_aware, require_sealed

# An event's who-and-why, read back where a record shows who did it. An apply method
# that needs it takes ``meta: Meta = None`` before its ``*``: the library counts every
# keyword-only parameter as required when the method is called as a command, and the
# base ``Aggregate`` (shared.kernel) stamps the real value on the event as it is made.
Meta = dict[str, str] | None


def actor_of(meta: Meta) -> str:
    return (meta or {}).get("actor", "")


def person_id(field: str, value: object) -> str:
    """A person known to the system by the ``sub`` of their token (or a caller by their
    ``caller_ref``): never a name."""
    if not isinstance(value, str) or not value.strip() or value != value.strip() \
            or len(value) > MAX_REF:
        raise InvalidCommand(field, "an id: a non-empty string of at most "
                                    f"{MAX_REF} characters, without surrounding spaces")
    return value


def minutes(field: str, value: object, least: int, most: int = MAX_MINUTES) -> int:
    """A whole number of minutes from ``least`` to ``most``."""
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
        raise InvalidCommand(field, f"a whole number of minutes from {least} to {most}")
    return value


def clock(now: datetime | None) -> datetime:
    """The time of a command: ``now`` (tests, replays, the application's clock) or the
    system's, in UTC."""
    return require_aware("now", now) if now is not None else datetime.now(UTC)


def needs_status(status: str, allowed: frozenset[str], doing: str, needed: str) -> None:
    """An illegal transition: a 409 naming the current status and what is needed."""
    if status not in allowed:
        raise Conflicting(f"cannot {doing}: the meeting is {status}; {needed}")


def entry(event: str, at: datetime, meta: Meta, **fields: Any) -> dict[str, Any]:
    """One line of the decision trail: what, when, who, and the decision's fields."""
    return {"event": event, "at": at, "actor": actor_of(meta), **fields}


def required_sealed(field: str, value: str | None) -> str:
    """Free text that must be given, sealed."""
    if value is None:
        raise InvalidCommand(field, "is required")
    sealed = require_sealed(field, value)
    assert sealed is not None
    return sealed
