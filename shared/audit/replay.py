"""Replay: an aggregate as it was at a moment, rebuilt from its stored events, with the
list of its events up to then (who, when, and the reasons of each decision).

Why from the events and not from a read table: the events are the record; a read table
is a view that may have been rebuilt since. The aggregate is folded from its events
whose time (the event's ``timestamp``, when the service recorded it) is at or before
``as_of``, by the aggregate's own code (``event.mutate``), exactly as the service loads
it to decide a command.

What is shown is driven by what the domain already guarantees: every personal value
(a name, a number, an address, any free text) is stored sealed (``shared.kernel``
refuses it otherwise), so a view is the aggregate's public attributes with every
sealed value passed through a ``reveal``: the key store's (the plaintext, or
``[erased]`` once the subject's key was destroyed) for a role that may see personal
data, ``hidden`` (None) for everyone else. A service says only what the events do not
say by themselves (``Hooks``): which events are decisions and which of their fields
are the reasons, computed attributes worth showing (a meeting's trail, a contact's
current risk level), and how an id is found (a caller by ``caller_ref``).

A clean module: no HTTP, no NATS, no service named; the reading of the store is
``events_of`` (the library's ``app.events``).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Protocol
from uuid import UUID

from shared.kernel import SYSTEM_ACTOR, InvalidCommand, NotKnown, is_sealed

Reveal = Callable[[str | None], str | None]


def hidden(_token: str | None) -> str | None:
    """Every sealed value hidden (null): the view of a role that may not see them."""
    return None


class DomainEvent(Protocol):
    """What replay reads of a stored domain event."""

    @property
    def originator_id(self) -> Any: ...
    @property
    def originator_version(self) -> int: ...
    @property
    def timestamp(self) -> datetime: ...

    def mutate(self, aggregate: Any) -> Any: ...


def parse_uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True)
class Hooks:
    """What one service tells replay (``services/<service>/audit.py``).

    - ``decisions``: event type (``event_type``: ``Meeting.Approved``) -> the fields of
      that event that are the decision and its reasons;
    - ``extras``: aggregate class name -> more state, computed from the aggregate
      (properties, a trail) and presented like the rest;
    - ``find``: an id as a client gives it -> the aggregate's UUID (None: not one);
    - ``id_doc``: what ``find`` accepts, for the API's documentation.
    """

    service: str
    decisions: Mapping[str, tuple[str, ...]]
    extras: Mapping[str, Callable[[Any], dict[str, Any]]] = dataclasses.field(
        default_factory=dict)
    find: Callable[[str], UUID | None] = parse_uuid
    id_doc: str = "The aggregate's id (a UUID)."



def event_type(event: object) -> str:
    """An event's type as replay names it: its class's name inside its module
    (``Meeting.Approved``, ``Contact.RiskAssessed``; ``CheckedIn`` for an event class
    declared at module level and mixed into its aggregate)."""
    return type(event).__qualname__


def aggregate_type(aggregate: object) -> str:
    return type(aggregate).__name__


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def jsonable(value: Any, reveal: Reveal) -> Any:
    """``value`` as JSON-ready data: times in UTC ISO 8601, ids and dates as text,
    codes as their values, and every sealed string through ``reveal``."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return reveal(value) if is_sealed(value) else value
    if isinstance(value, enum.Enum):
        return jsonable(value.value, reveal)
    if isinstance(value, datetime):
        return _utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(jsonable(k, reveal)): jsonable(v, reveal) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v, reveal) for v in value), key=str)
    if isinstance(value, Iterable):
        return [jsonable(v, reveal) for v in value]
    return str(value)


def state_of(aggregate: Any, hooks: Hooks, reveal: Reveal) -> dict[str, Any]:
    """The aggregate's public attributes (and the service's extras), presented."""
    state: dict[str, Any] = {"id": aggregate.id, "version": aggregate.version,
                             "created_on": aggregate.created_on,
                             "modified_on": aggregate.modified_on}
    state.update((k, v) for k, v in vars(aggregate).items() if not k.startswith("_"))
    extra = hooks.extras.get(aggregate_type(aggregate))
    if extra is not None:
        state.update(extra(aggregate))
    out = jsonable(state, reveal)
    assert isinstance(out, dict)
    return out


def event_entry(event: DomainEvent, hooks: Hooks, reveal: Reveal) -> dict[str, Any]:
    """One line of the replay's event list: version, type, time, who, and the decision's
    fields (null for an event that is no decision)."""
    kind = event_type(event)
    meta = getattr(event, "meta", None) or {}
    fields = hooks.decisions.get(kind)
    decision = None
    if fields is not None:
        decision = {f: jsonable(getattr(event, f, None), reveal) for f in fields}
    return {"version": event.originator_version, "type": kind,
            "at": _utc(event.timestamp).isoformat(),
            "actor": str(meta.get("actor") or SYSTEM_ACTOR), "decision": decision}


def fold(events: Sequence[DomainEvent], as_of: datetime) -> tuple[Any, list[DomainEvent]]:
    """The aggregate rebuilt from its events recorded at or before ``as_of``, and those
    events. Raises ``NotKnown`` when there are none (no such aggregate, or it did not
    exist yet then)."""
    if not events:
        raise NotKnown("No such record.")
    moment = _utc(as_of)
    upto = [e for e in events if _utc(e.timestamp) <= moment]
    # Versions are consecutive from 1: an event recorded after as_of ends the fold even
    # if a later one carries an earlier clock (a clock stepped back).
    upto = [e for i, e in enumerate(upto, 1) if e.originator_version == i]
    if not upto:
        first = _utc(events[0].timestamp).isoformat()
        raise NotKnown(f"The record did not exist yet at {moment.isoformat()}: its first "
                       f"event was recorded at {first}.")
    aggregate = None
    for e in upto:
        aggregate = e.mutate(aggregate)
    return aggregate, upto


def replay(events: Sequence[DomainEvent], as_of: datetime, hooks: Hooks,
           reveal: Reveal = hidden) -> dict[str, Any]:
    """The replay document of one aggregate as of a moment (see the module)."""
    aggregate, upto = fold(events, as_of)
    return {"id": str(aggregate.id), "type": aggregate_type(aggregate),
            "as_of": _utc(as_of).isoformat(), "version": upto[-1].originator_version,
            "state": state_of(aggregate, hooks, reveal),
            "events": [event_entry(e, hooks, reveal) for e in upto]}


def find(hooks: Hooks, ident: str) -> UUID:
    """The aggregate id a client named; a 422 on the path when it cannot be one."""
    found = hooks.find(ident)
    if found is None:
        raise InvalidCommand("aggregate_id", hooks.id_doc, location="path")
    return found


def events_of(app: Any, aggregate_id: UUID) -> list[DomainEvent]:
    """Every stored event of one aggregate, in order (the library's event store)."""
    return list(app.events.get(aggregate_id))


def replay_stored(app: Any, hooks: Hooks, ident: str, as_of: datetime | None,
                  reveal: Reveal = hidden) -> dict[str, Any]:
    """Replay one aggregate of ``app``'s store as of ``as_of`` (default: now)."""
    return replay(events_of(app, find(hooks, ident)), as_of or datetime.now(UTC), hooks,
                  reveal)
