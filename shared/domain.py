"""What every service's domain shares: the error an aggregate raises when a command
would break a rule, and small value checks. No I/O here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any


class InvalidCommand(ValueError):
    """A command the domain refuses. ``field`` names what is wrong, for the 422."""

    def __init__(self, field: str, message: str, location: str = "body") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.location = location  # body, query or path: where the client sent it

    def at(self, location: str) -> InvalidCommand:
        return InvalidCommand(self.field, self.message, location)


class RuleBroken(Exception):
    """A command refused because of the aggregate's state, not its input (a 422 that
    says which rule): closing a contact at immediate risk without an escalation."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def require_aware(field: str, value: datetime) -> datetime:
    """A timestamp must carry its offset; it is kept in UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidCommand(field, "must include a UTC offset, e.g. 2026-11-29T22:10:00+00:00")
    return value.astimezone(UTC)


def require_not_future(field: str, value: datetime, now: datetime, skew: timedelta) -> None:
    if value > now + skew:
        raise InvalidCommand(field, "is in the future")


def require_codes(
    field: str, values: Any, allowed: frozenset[str], *, at_least: int = 0
) -> list[str]:
    if not isinstance(values, list | tuple):
        raise InvalidCommand(field, "must be a list")
    out: list[str] = []
    for v in values:
        if v not in allowed:
            allowed_list = ", ".join(sorted(allowed))
            raise InvalidCommand(field, f"unknown value {v!r}; allowed: {allowed_list}")
        if v not in out:
            out.append(v)
    if len(out) < at_least:
        raise InvalidCommand(field, f"needs at least {at_least} value(s)")
    return out
