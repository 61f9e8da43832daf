"""Reporting service: read models fed from the bus (reports, dashboard, audit views)."""
