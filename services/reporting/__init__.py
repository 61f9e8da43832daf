"""Reporting service: the monitoring counts, read from the other services' events."""

from fastapi import APIRouter

from services.reporting import api, api_dashboard, handlers, read_model
from services.reporting.app import ReportingApplication
from shared.eventstore.projection import ReadModel
from shared.service_module import ServiceModule

UPSTREAMS = ("contact", "shift", "outreach")


def router() -> APIRouter:
    """The report's routes and the dashboard's, under /reporting."""
    r = api.router()
    r.include_router(api_dashboard.router())
    return r


REPORTS = ReadModel("reporting", read_model.metadata, handlers.apply, subscriptions=UPSTREAMS)

MODULE = ServiceModule(
    name="reporting",
    application=ReportingApplication,
    router=router,
    read_models=(REPORTS,),
)
