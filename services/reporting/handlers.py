"""Inbound: how reporting applies other services' integration events to its read
models.

Each handler runs inside the projection's transaction, beside the tracking row, so an
event's effect and the record that it was applied commit together or not at all. An
event may feed several figures (the shift service's ``ShiftPublished`` gives the slot
of a contact's shift and a shift's cover): each figures module's handler runs, in the
order of ``SOURCES``.

A page of events (a rebuild's, a consumer's batch) is applied by ``apply_page``, with
the same effect: its runs of contacts logged and risks assessed as one unit of work
each (``pages``), every other event by its handlers, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.reporting import contact_figures, dashboard_events, pages, service_figures
from services.reporting.read_model import directory_names
from services.reporting.report import london_month
from shared.messaging.envelope import IntegrationEvent

__all__ = ["HANDLERS", "Handler", "apply", "apply_page", "directory_entry", "london_month"]

Handler = Callable[[Connection, IntegrationEvent], None]


def directory_entry(conn: Connection, ev: IntegrationEvent) -> None:
    d = ev.data
    where = directory_names.c.entry_id == d["entry_id"]
    if conn.execute(sa.select(directory_names.c.entry_id).where(where)).first() is None:
        conn.execute(sa.insert(directory_names).values(entry_id=d["entry_id"], name=d["name"]))
    else:
        conn.execute(sa.update(directory_names).where(where).values(name=d["name"]))


DIRECTORY: dict[tuple[str, str], Handler] = {
    ("contact", "DirectoryEntryAdded"): directory_entry,
    ("contact", "DirectoryEntryUpdated"): directory_entry,
}
SOURCES: tuple[dict[tuple[str, str], Handler], ...] = (
    DIRECTORY, contact_figures.HANDLERS, service_figures.HANDLERS, dashboard_events.HANDLERS)


def _collect() -> dict[tuple[str, str], tuple[Handler, ...]]:
    collected: dict[tuple[str, str], list[Handler]] = {}
    for source in SOURCES:
        for key, handler in source.items():
            collected.setdefault(key, []).append(handler)
    return {key: tuple(handlers) for key, handlers in collected.items()}


HANDLERS = _collect()


def apply(conn: Connection, ev: IntegrationEvent) -> None:
    """Apply one event: those reporting has no use for change nothing but the tracking."""
    for handler in HANDLERS.get((ev.service, ev.type), ()):
        handler(conn, ev)


# The event types a run may hold: those whose only handler is the one ``pages`` does
# over a run (a handler added for one elsewhere takes it out of the runs).
RUNS = frozenset(key for key, handler in pages.RUN_HANDLERS.items()
                 if HANDLERS.get(key) == (handler,))


def apply_page(conn: Connection, events: Sequence[IntegrationEvent]) -> None:
    """Apply several events in order, with the effect of ``apply`` on each: a run of
    contacts logged and risks assessed as one unit of work, any other event that
    reporting uses (which ends the run) by its handlers. One it has no use for (a
    caller registered) changes nothing, so it does not end a run."""
    run: list[IntegrationEvent] = []
    for ev in events:
        key = (ev.service, ev.type)
        if key in RUNS and pages.plain(ev):
            run.append(ev)
        elif key in HANDLERS:
            _flush(conn, run)
            apply(conn, ev)
    _flush(conn, run)


def _flush(conn: Connection, run: list[IntegrationEvent]) -> None:
    if len(run) > 1:
        pages.apply_run(conn, run)
    elif run:
        apply(conn, run[0])
    run.clear()
