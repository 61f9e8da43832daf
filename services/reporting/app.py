"""Reporting's application: the queries of its reports.

Its own event log is empty for now: its state is derived from the other services'
events (``handlers.py``, into the tables of ``contact_events`` and ``service_figures``),
not recorded. A report is read in one transaction (a snapshot, on PostgreSQL): its
figures agree with each other even while events are being applied.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from services.reporting import contact_figures, report, service_figures
from shared.eventstore.application import ServiceApplication


class ReportingApplication(ServiceApplication):
    service = "reporting"
    name = "reporting"

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        options = ({"isolation_level": "REPEATABLE READ"}
                   if self.engine.dialect.name == "postgresql" else {})
        with self.engine.connect().execution_options(**options) as conn, conn.begin():
            yield conn

    def _services(self, conn: Connection, start: datetime, end: datetime,
                  now: datetime) -> dict[str, Any]:
        """The shift and outreach figures of [start, end)."""
        overdue_after = timedelta(hours=self.settings.debrief_overdue_hours)
        return service_figures.figures(conn, start, end, now=now,
                                       debrief_overdue_after=overdue_after)

    def monthly(self, month: str, now: datetime | None = None) -> dict[str, Any]:
        """The report of a month of London time (``YYYY-MM``), every count in full."""
        first, last, start, end = report.month_period(month)
        now = now or datetime.now(UTC)
        with self._snapshot() as conn:
            raw = {**contact_figures.month_figures(conn, month, start, end, now=now),
                   **self._services(conn, start, end, now)}
        return report.build(raw, (first, last))

    def year(self, start: str, now: datetime | None = None) -> dict[str, Any]:
        """The report of twelve months of London time from ``start`` (``YYYY-04``: a
        financial year), with each month's contacts, callers and referrals. Its
        figures are counted over the whole year, not summed from the months: a caller
        in two months is one caller of the year."""
        first, last, begin, end = report.year_period(start)
        now = now or datetime.now(UTC)
        months = [(m, *report.month_period(m)[2:]) for m in report.months_of(start)]
        with self._snapshot() as conn:
            contact_raw, each = contact_figures.year_figures(conn, months, now=now)
            raw = {**contact_raw, **self._services(conn, begin, end, now)}
        return report.build(raw, (first, last), months=each)
