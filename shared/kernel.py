"""What every service's domain shares, and nothing that does I/O.

- The domain's errors. Each rule is checked once, in an aggregate, and raises one of
  these; the web layer maps each type to one problem (``shared.web.problems``), so the
  same rule answers the same way through every path.
- Who acts and in answer to what. The web layer (or a consumer, or the SMS webhook)
  sets it once per command with ``acting``; every event of ``Aggregate`` stamps it in
  its ``meta`` field when triggered, so no command method takes it as a parameter.
- Small value checks, and the format marker of sealed personal data (the domain
  refuses a personal field that is not sealed; sealing itself is ``shared.privacy``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

from eventsourcing.domain import Aggregate as _LibraryAggregate
from eventsourcing.domain import filter_kwargs_for_method_params

TOKEN_PREFIX = "pd1:"  # noqa: S105 - a format marker, not a secret
ERASED = "[erased]"
SYSTEM_ACTOR = "system"


# ------------------------------------------------------------------------- errors


class DomainError(Exception):
    """Base of every error a domain or an application raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidCommand(DomainError, ValueError):
    """A command the domain refuses because of its input. ``field`` names what is
    wrong, for the 422."""

    def __init__(self, field: str, message: str, location: str = "body") -> None:
        super().__init__(message)
        self.args = (f"{field}: {message}",)
        self.field = field
        self.location = location  # body, query or path: where the client sent it

    def at(self, location: str) -> InvalidCommand:
        return InvalidCommand(self.field, self.message, location)


class RuleBroken(DomainError):
    """A command refused because of the aggregate's state, not its input (a 422 that
    says which rule): closing a contact at immediate risk without an escalation."""


class NotPermitted(DomainError):
    """A read or command that the record itself forbids to this actor (a 403): a
    caller's history without their consent."""


class NotKnown(DomainError):
    """No such thing, or not one the actor may know of (a 404)."""


class Conflicting(DomainError):
    """The command conflicts with what is stored or being stored (a 409): a phone
    number already known, a message being recorded by another request."""


class VersionMismatch(DomainError):
    """The client named another version than the stored one (If-Match: a 412)."""

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(
            f"If-Match names version {expected}, but the resource is at version {current}; "
            "reload it and try again."
        )
        self.expected = expected
        self.current = current


def check_expected_version(current: int, expected: int | None) -> None:
    if expected is not None and current != expected:
        raise VersionMismatch(expected, current)


# ---------------------------------------------------------------- who acts, and why

_acting: ContextVar[dict[str, str] | None] = ContextVar("solidarity_acting", default=None)


def command_meta(actor: str, correlation_id: str | None = None,
                 causation_id: str | None = None) -> dict[str, str]:
    """Who did it and in answer to what: stored in every event as ``meta``."""
    meta = {"actor": actor}
    if correlation_id:
        meta["correlation_id"] = correlation_id
    if causation_id:
        meta["causation_id"] = causation_id
    return meta


def current_meta() -> dict[str, str]:
    """The ``meta`` of the command being handled (``system`` outside any)."""
    meta = _acting.get()
    return dict(meta) if meta else {"actor": SYSTEM_ACTOR}


def current_actor() -> str:
    return current_meta()["actor"]


def set_acting(actor: str, correlation_id: str | None = None,
               causation_id: str | None = None) -> None:
    """Set who acts for the rest of this context (one HTTP request's task)."""
    _acting.set(command_meta(actor, correlation_id, causation_id))


@contextlib.contextmanager
def acting(actor: str, correlation_id: str | None = None,
           causation_id: str | None = None) -> Iterator[dict[str, str]]:
    """Who acts inside the block (a consumer's reaction, the SMS webhook, a test)."""
    token = _acting.set(command_meta(actor, correlation_id, causation_id))
    try:
        yield current_meta()
    finally:
        _acting.reset(token)


def _with_meta(event_class: type[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    if kwargs.get("meta") is None and filter_kwargs_for_method_params(
        {"meta": None}, event_class
    ):
        kwargs = {**kwargs, "meta": current_meta()}
    return kwargs


class Aggregate(_LibraryAggregate):
    """The services' aggregate base: every event with a ``meta`` field is stamped with
    who acts (``current_meta``) when it is triggered. Replayed events keep theirs."""

    @classmethod
    def _create(cls, event_class: Any, *, id: Any = None, **kwargs: Any) -> Any:
        return super()._create(event_class, id=id, **_with_meta(event_class, kwargs))

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        super().trigger_event(event_class, **_with_meta(event_class, kwargs))


# ------------------------------------------------------------------- value checks


def is_sealed(value: object) -> bool:
    """A sealed personal value (``shared.privacy`` makes them): never plaintext."""
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX)


def require_sealed(field: str, value: str | None) -> str | None:
    """Personal data must arrive sealed: never plaintext in an event."""
    if value is None:
        return None
    if not is_sealed(value):
        raise InvalidCommand(field, "personal data must be sealed before it is recorded")
    return value


def one_of(field: str, value: Any, allowed: frozenset[str], optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if value not in allowed:
        allowed_list = ", ".join(sorted(allowed))
        raise InvalidCommand(field, f"unknown value {value!r}; allowed: {allowed_list}")
    return value


def _require_offset(field: str, value: object) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidCommand(field, "must include a UTC offset, e.g. 2026-11-29T22:10:00+00:00")


def require_aware(field: str, value: datetime) -> datetime:
    """A timestamp must carry its offset; it is kept in UTC. One whose UTC form is out of
    Python's range (year 1 at +01:00, 9999-12-31 at -01:00) is refused, never raised."""
    _require_offset(field, value)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidCommand(field, "is out of range") from None


def require_within(field: str, value: datetime, earliest: datetime,
                   latest: datetime) -> datetime:
    """A timestamp inside a plausible window (both ends included), kept in UTC. The
    window is the domain's rule; the message names it, never the value given."""
    _require_offset(field, value)
    if not earliest <= value <= latest:  # aware datetimes compare without converting
        raise InvalidCommand(field, f"must be from {earliest.isoformat()} "
                                    f"to {latest.isoformat(timespec='seconds')}")
    return require_aware(field, value)


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
