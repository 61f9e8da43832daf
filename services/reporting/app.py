"""Reporting's application: the queries of its reports.

Its own event log is empty for now: its state is derived from the other services'
events (``handlers.py``, into ``read_model.py``), not recorded.
"""

from __future__ import annotations

from typing import Any

from services.reporting import read_model
from shared.eventstore.application import ServiceApplication


class ReportingApplication(ServiceApplication):
    service = "reporting"
    name = "reporting"

    def monthly(self, month: str) -> dict[str, Any]:
        """The month's counts, in London wall-clock time."""
        return read_model.monthly(self.engine, month)
