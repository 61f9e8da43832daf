"""A service's notification log read as integration events, cheaply: the same events as
the library's path (``Mapper.to_domain_event`` on the recorder's ``Notification``s, links
from ``Chainer.hashes``, a validated ``IntegrationEvent``), value for value and type for
type (``tests/shared/test_log_reader.py`` holds the two side by side).

- Decoding: with the library's own mapper and JSON transcoder and no cipher or
  compressor, the state is parsed by ``orjson`` and each ``{"_type_": name, "_data_": v}``
  object (innermost first, as the library's object hook sees them) becomes what
  ``transcoder.names[name].decode(v)`` gives; the event is then made as the library makes
  it. What this cannot be sure to read alike (an integer beyond 64 bits, which ``orjson``
  reads as a float; ``NaN``; an unknown ``_type_``; any failure) is decoded again by the
  library, which gives its own result or raises its own error.
- A page is one query on the recorder's connection: the notifications, their links (a
  LEFT JOIN, when ``chain_hashes`` is a ``Chainer`` over the same database) and the
  position before the first. A link missing (an event not chained yet) and the page
  takes ``chain_hashes``' (which chains first). A recorder not known here or a failed
  query: read the library's way (with its retries).
- The envelope is built without validation when each value is of the type and range the
  model requires (a public type with those data keys it has validated once); anything
  else is validated, as before.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID, SafeUUID

import orjson
from eventsourcing import persistence as es
from eventsourcing.persistence import JSONTranscoder, Mapper, Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import resolve_topic
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed, Identifier

from shared.audit.chain import Chainer
from shared.messaging.envelope import IntegrationEvent, envelope_id

if TYPE_CHECKING:
    from shared.eventstore.application import Public, ServiceApplication

_new, _set, _NO = object.__new__, object.__setattr__, object()
# orjson reads an integer outside [-2**63, 2**64) as a float; the library keeps an int.
_BIG = float(2**63)


class _Inexact(Exception):  # orjson's reading is not the library's: ask the library
    pass


_CONTAINERS = frozenset((dict, list, float))  # what the walk looks into (or checks)


def _hook(d: dict[str, Any], names: dict[str, Any], direct: dict[str, Any]) -> Any:
    """The library's object hook over a parsed object, innermost objects first."""
    for k in [k for k, v in d.items() if type(v) in _CONTAINERS]:
        v = d[k]  # replaced in place below: the keys do not change
        t = type(v)
        if t is dict:
            if len(v) == 2 and "_type_" in v and "_data_" in v:
                n, x = v["_type_"], v["_data_"]
                if type(x) is str and type(n) is str:  # {"_type_": "datetime_iso", ...}
                    d[k] = direct[n](x)
                    continue
            d[k] = (_hook(v, names, direct) if not _CONTAINERS.isdisjoint(map(type, v.values()))
                    else _transcoded(v, names))
        elif t is list:
            if not _CONTAINERS.isdisjoint(map(type, v)):
                _hook_list(v, names, direct)
        elif not -_BIG < v < _BIG:
            raise _Inexact
    return _transcoded(d, names)


def _transcoded(d: dict[str, Any], names: dict[str, Any]) -> Any:
    """The hook on an object whose members are done."""
    if len(d) == 2 and "_type_" in d and "_data_" in d:
        return names[d["_type_"]].decode(d["_data_"])
    return d


def _hook_list(items: list[Any], names: dict[str, Any], direct: dict[str, Any]) -> None:
    for i, v in enumerate(items):
        t = type(v)
        if t is dict:
            items[i] = _hook(v, names, direct)
        elif t is list:
            _hook_list(v, names, direct)
        elif t is float and not -_BIG < v < _BIG:
            raise _Inexact


_UNKNOWN = SafeUUID.unknown


def uuid_from_text(text: str) -> UUID:
    """``UUID(text)``. For 32 letters and digits, which ``UUID`` hands to ``int(text, 16)``
    untouched, the same UUID made without its other checks (by setting its two slots,
    as unpickling does); anything else through ``UUID`` itself."""
    if len(text) != 32 or not text.isalnum():
        return UUID(text)
    made = _new(UUID)
    _set(made, "int", int(text, 16))
    _set(made, "is_safe", _UNKNOWN)
    return made


# The library's own transcodings' decode, less its ``assert isinstance(data, str)``: what
# each does with a str (the only data they are handed directly).
_STR_DECODERS: dict[type, Callable[[str], Any]] = {
    es.DatetimeAsISO: datetime.fromisoformat, es.UUIDAsHex: uuid_from_text,
    es.DecimalAsStr: Decimal}


def direct_decoders(names: dict[str, Any]) -> dict[str, Callable[[str], Any]]:
    """Each transcoding's decode of a str, by name."""
    return {name: _STR_DECODERS.get(type(t)) or t.decode for name, t in names.items()}


def decode_state(state: bytes, names: dict[str, Any],
                 direct: dict[str, Callable[[str], Any]] | None = None) -> Any:
    """What the library's ``JSONTranscoder.decode`` gives for ``state`` (raises where
    this cannot be sure of giving the same: the caller then asks the library)."""
    if direct is None:
        direct = direct_decoders(names)
    parsed = orjson.loads(state)
    if type(parsed) is dict:
        return _hook(parsed, names, direct)
    if type(parsed) is list:
        _hook_list(parsed, names, direct)
    elif type(parsed) is float and not -_BIG < parsed < _BIG:
        raise _Inexact
    return parsed


class DomainEvents:
    """``mapper.to_domain_event``, faster where it can be exactly the same."""

    def __init__(self, mapper: Mapper[Any]) -> None:
        self.mapper, transcoder = mapper, mapper.transcoder
        self.fast = (type(mapper) is Mapper and mapper.cipher is None
                     and mapper.compressor is None and type(transcoder) is JSONTranscoder)
        self.names: dict[str, Any] = getattr(transcoder, "names", {}) if self.fast else {}
        self._convertors: dict[tuple[type, type], Callable[[Any], Any]] = {}
        self._names: dict[str, Any] = {}  # the transcodings ``direct`` was made from
        self.direct: dict[str, Callable[[str], Any]] = {}

    def decode(self, topic: str, originator_id: Any, version: int, state: bytes,
               notification: Notification | None = None, nid: int = 0) -> Any:
        if self.fast:
            try:
                return self._decode(topic, originator_id, version, state)
            except Exception:  # noqa: S110 - the library decodes it, or raises its error
                pass
        if notification is None:
            notification = Notification(id=nid, originator_id=originator_id,
                                        originator_version=version, topic=topic, state=state)
        return self.mapper.to_domain_event(notification)

    def _decode(self, topic: str, originator_id: Any, version: int, state: bytes) -> Any:
        # Mapper.to_domain_event, step for step, with the state decoded by decode_state.
        cls = resolve_topic(topic)
        names = self.names
        if names != self._names:  # a transcoding registered since
            self._names, self.direct = dict(names), direct_decoders(names)
        event_state = decode_state(state, names, self.direct)
        key = (cls, type(originator_id))
        convert = self._convertors.get(key)
        if convert is None:
            convert = self._convertors[key] = es.find_id_convertor(
                cls, cast(Hashable, type(originator_id)))
        event_state["originator_id"] = convert(originator_id)
        event_state["originator_version"] = version
        class_version = getattr(cls, "class_version", 1)
        from_version = event_state.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(event_state)
            from_version += 1
        domain_event = _new(cls)
        _set(domain_event, "__dict__", event_state)
        return domain_event


_FIELDS_SET = set(IntegrationEvent.model_fields)
# What model_construct does for this model (no aliases, no post-init hook, not a root
# model), without its per-field loop; else model_construct itself.
_DIRECT = (not IntegrationEvent.__pydantic_post_init__
           and not IntegrationEvent.__pydantic_root_model__
           and all(f.alias is None and f.validation_alias is None
                   for f in IntegrationEvent.model_fields.values()))


def _construct(values: dict[str, Any]) -> IntegrationEvent:
    if not _DIRECT:
        return IntegrationEvent.model_construct(**values)
    event = _new(IntegrationEvent)
    _set(event, "__dict__", values)
    _set(event, "__pydantic_fields_set__", _FIELDS_SET.copy())
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event


_OPTIONAL_TEXT = frozenset((str, type(None)))


class Envelopes:
    """Integration events from domain events, as ``IntegrationEvent(...)`` validates
    them, without validating what is of the right type already."""

    def __init__(self, service: str, public: Callable[[Any], Public]) -> None:
        self.service = service
        self.public = public
        # (public type, *data keys) the model has validated: the type's pattern, the
        # service's and the keys' type are then known to pass.
        self._accepted: set[tuple[str, ...]] = set()
        self._aggregates: dict[type, str] = {}

    def envelope(self, nid: int, previous: int, event: Any,
                 chain_hash: bytes | None) -> IntegrationEvent:
        public = self.public(event)
        meta: dict[str, Any] = getattr(event, "meta", None) or {}
        occurred_at: datetime = getattr(event, "timestamp", None) or datetime.now(UTC)
        cls = type(event)
        aggregate_type = self._aggregates.get(cls)
        if aggregate_type is None:
            aggregate_type = self._aggregates[cls] = cls.__qualname__.split(".")[0]
        data, kind, schema_version = public.data, public.type, public.schema_version
        correlation_id, causation_id = meta.get("correlation_id"), meta.get("causation_id")
        aggregate_id, version = event.originator_id, event.originator_version
        actor = str(meta.get("actor", "system"))
        values = {  # in the model's order of fields
            "id": envelope_id(self.service, nid), "service": self.service,
            "notification_id": nid, "previous_notification_id": previous,
            "aggregate_type": aggregate_type, "aggregate_id": aggregate_id,
            "aggregate_version": version, "type": kind, "occurred_at": occurred_at,
            "actor": actor, "correlation_id": correlation_id, "causation_id": causation_id,
            "schema_version": schema_version, "data": data,
            "chain_hash": chain_hash.hex() if chain_hash is not None else None}
        accepted = type(kind) is str and type(data) is dict and (kind, *data)
        if (accepted and accepted in self._accepted
                and type(nid) is type(previous) is type(version) is type(schema_version) is int
                and nid >= 1 and previous >= 0 and version >= 1 and schema_version >= 1
                and type(aggregate_id) is UUID and type(occurred_at) is datetime
                and type(actor) is str and type(correlation_id) in _OPTIONAL_TEXT
                and type(causation_id) in _OPTIONAL_TEXT
                and (chain_hash is None or len(chain_hash) == 32)):
            values["data"] = dict(data)  # validation gives a copy too
            return _construct(values)
        built = IntegrationEvent(**values)  # raises as it always did
        if accepted and len(self._accepted) < 4096:
            self._accepted.add(accepted)
        return built


class LogReader:
    """One service's notification log as integration events (see the module)."""

    def __init__(self, app: ServiceApplication, public: Callable[[Any], Public]) -> None:
        self.app = app
        self.events = DomainEvents(app.mapper)
        self.envelopes = Envelopes(app.service, public)
        self._chainer: Any = _NO  # the Chainer the join was decided for
        self._chain_table: Any = None  # the audit_chain to join, or None

    def from_notification(self, n: Notification, previous: int,
                          chain_hash: bytes | None = None) -> IntegrationEvent:
        event = self.events.decode(n.topic, n.originator_id, n.originator_version, n.state, n)
        return self.envelopes.envelope(n.id, previous, event, chain_hash)

    def page(self, after: int, limit: int) -> list[IntegrationEvent]:
        """Up to ``limit`` integration events after position ``after``, chained."""
        read = self._read(after, limit)
        if read is None:  # the library's way
            notes = self.app.select_notifications(after, limit)
            read = ([(n.id, n.originator_id, n.originator_version, n.topic, n.state, None)
                     for n in notes],
                    self.app.previous_notification_id(notes[0].id) if notes else 0, False)
        rows, previous, joined = read
        if not rows:
            return []
        hashes: Any = {}
        if joined and all(r[5] is not None for r in rows):
            hashes = {r[0]: r[5] if type(r[5]) is bytes else bytes(r[5]) for r in rows}
        elif self.app.chain_hashes:
            hashes = self.app.chain_hashes([r[0] for r in rows])
        out = []
        decode, envelope = self.events.decode, self.envelopes.envelope
        for nid, originator_id, version, topic, state, *_ in rows:
            event = decode(topic, originator_id, version, state, None, nid)
            out.append(envelope(nid, previous, event, hashes.get(nid)))
            previous = nid
        return out

    # -- the one query -----------------------------------------------------------
    def _read(self, after: int,
              limit: int) -> tuple[Sequence[Sequence[Any]], int, bool] | None:
        """(rows of (id, originator id, version, topic, state, link), the position
        before the first, whether links were joined); None: read the library's way."""
        recorder = self.app.recorder
        if not isinstance(recorder, SQLiteApplicationRecorder | PostgresApplicationRecorder):
            return None
        try:
            chain = self._chain()
            if isinstance(recorder, SQLiteApplicationRecorder):
                return self._read_sqlite(recorder, chain, after, limit)
            return self._read_postgres(recorder, chain, after, limit)
        except Exception:
            return None

    def _chain(self) -> Any:
        """The audit_chain table to join (its name, or None: none, or not the one of
        this database, or links kept by something other than a ``Chainer``)."""
        hashes = self.app.chain_hashes
        chainer = getattr(hashes, "__self__", None)
        if chainer is not self._chainer:
            self._chainer, self._chain_table = chainer, None
            if (type(chainer) is Chainer
                    and getattr(hashes, "__func__", None) is Chainer.hashes):
                self._chain_table = _same_store(self.app.recorder, chainer)
        return self._chain_table

    def _read_sqlite(self, recorder: SQLiteApplicationRecorder, chain: str | None,
                     after: int, limit: int) -> tuple[Sequence[Sequence[Any]], int, bool]:
        table = recorder.events_table_name
        hash_column, join = ", c.hash", " LEFT JOIN audit_chain c ON c.notification_id = e.rowid"
        if chain is None:
            hash_column, join = ", NULL", ""
        statement = (  # the names are the recorder's own
            "SELECT e.rowid, e.originator_id, e.originator_version, e.topic, e.state"  # noqa: S608
            f"{hash_column}, (SELECT MAX(rowid) FROM {table} WHERE rowid <= ?) "
            f"FROM {table} e{join} WHERE e.rowid > ? ORDER BY e.rowid LIMIT ?")
        with recorder.datastore.transaction(commit=False) as c:
            cursor = c.sqlite_cursor
            cursor.row_factory = None  # plain tuples
            cursor.execute(statement, (after, after, limit))
            rows = cursor.fetchall()
        previous = _previous(rows)
        if recorder.datastore.originator_id_type == "uuid":  # convert_originator_id
            rows = [(r[0], uuid_from_text(r[1]), r[2], r[3], r[4], r[5]) for r in rows]
        return rows, previous, chain is not None

    def _read_postgres(self, recorder: PostgresApplicationRecorder, chain: Any,
                       after: int, limit: int) -> tuple[Sequence[Sequence[Any]], int, bool]:
        ds = recorder.datastore
        events = SQL("{}.{}").format(Identifier(ds.schema),
                                     Identifier(recorder.events_table_name))
        hash_column: Composed | SQL = SQL(", NULL::bytea")
        join: Composed | SQL = SQL("")
        if chain is not None:
            hash_column = SQL(", c.hash")
            join = SQL(" LEFT JOIN {}.audit_chain c ON c.notification_id = e.notification_id"
                       ).format(Identifier(chain))
        statement = SQL(
            "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state"
            "{hash}, (SELECT MAX(notification_id) FROM {events} WHERE notification_id <= %s) "
            "FROM {events} e{join} WHERE e.notification_id > %s "
            "ORDER BY e.notification_id LIMIT %s"
        ).format(hash=hash_column, events=events, join=join)
        with ds.get_connection() as conn, conn.cursor(row_factory=tuple_row) as cursor:
            cursor.execute(statement, (after, after, limit), prepare=True)
            rows = cursor.fetchall()
        return rows, _previous(rows), chain is not None


def _previous(rows: Sequence[Sequence[Any]]) -> int:  # the MAX(...) column
    return int(rows[0][6] or 0) if rows else 0


def _same_store(recorder: Any, chainer: Chainer) -> str | None:
    """Where the chainer's audit_chain is, seen from the recorder's connection, if it is
    in the recorder's database (SQLite: the same file; PostgreSQL: the same server and
    database; the engine's schema), else None."""
    engine = chainer.engine
    try:
        if isinstance(recorder, SQLiteApplicationRecorder):
            same = engine.dialect.name == "sqlite" and bool(engine.url.database) and (
                os.path.samefile(str(engine.url.database), recorder.datastore.pool.db_name))
            return "main" if same else None
        if (not isinstance(recorder, PostgresApplicationRecorder)
                or engine.dialect.name != "postgresql"):
            return None
        where = ("SELECT current_database(), inet_server_addr()::text, inet_server_port(), "
                 "pg_postmaster_start_time()::text, current_schema()")
        with engine.connect() as conn:
            theirs = tuple(conn.exec_driver_sql(where).one())
        with (recorder.datastore.get_connection() as rconn,
              rconn.cursor(row_factory=tuple_row) as cursor):
            ours = cursor.execute(where).fetchone()
        same = ours is not None and tuple(ours)[:4] == theirs[:4] and theirs[4]
        return str(theirs[4]) if same else None
    except Exception:
        return None
