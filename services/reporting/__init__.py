"""Reporting service: the monitoring counts, read from the other services' events, and
the keeper of their audit trail (their signed checkpoints, the chain hash of every event
it applied: ``audit.py``)."""

from fastapi import APIRouter

from services.reporting import api, api_audit, api_dashboard, audit, handlers, read_model
from services.reporting.app import ReportingApplication
from shared.eventstore.projection import ReadModel
from shared.service_module import ServiceModule

UPSTREAMS = ("contact", "shift", "outreach")


def router() -> APIRouter:
    """The report's routes, the dashboard's and the audit's, under /reporting."""
    r = api.router()
    r.include_router(api_dashboard.router())
    r.include_router(api_audit.router())
    return r


# Each event's chain hash is kept with its effect (audit.Chained): a rewound source shows.
CHAINED = audit.Chained(handlers.apply, handlers.apply_page)
REPORTS = ReadModel("reporting", read_model.metadata, CHAINED, subscriptions=UPSTREAMS,
                    apply_page=CHAINED.page)

MODULE = ServiceModule(
    name="reporting",
    application=ReportingApplication,
    router=router,
    read_models=(REPORTS,),
)
