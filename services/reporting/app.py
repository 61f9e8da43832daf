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

    def _raw(self, conn: Connection, start: datetime, end: datetime,
             now: datetime) -> dict[str, Any]:
        """The raw counts of [start, end): the contact figures and the services'."""
        overdue_after = timedelta(hours=self.settings.debrief_overdue_hours)
        return {**contact_figures.figures(conn, start, end, now=now),
                **service_figures.figures(conn, start, end, now=now,
                                          debrief_overdue_after=overdue_after)}

    def monthly(self, month: str, now: datetime | None = None) -> dict[str, Any]:
        """The report of a month of London time (``YYYY-MM``), every count in full."""
        first, last, start, end = report.month_period(month)
        with self._snapshot() as conn:
            raw = self._raw(conn, start, end, now or datetime.now(UTC))
        return report.build(raw, (first, last))

    def year(self, start: str, now: datetime | None = None) -> dict[str, Any]:
        """The report of twelve months of London time from ``start`` (``YYYY-04``: a
        financial year), with each month's contacts, callers and referrals. Its
        figures are counted over the whole year, not summed from the months: a caller
        in two months is one caller of the year."""
        first, last, begin, end = report.year_period(start)
        now = now or datetime.now(UTC)
        with self._snapshot() as conn:
            raw = self._raw(conn, begin, end, now)
            months = []
            for month in report.months_of(start):
                _, _, m_start, m_end = report.month_period(month)
                months.append((month, contact_figures.figures(conn, m_start, m_end, now=now)))
        return report.build(raw, (first, last), months=months)
