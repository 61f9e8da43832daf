"""Reporting service: the monitoring counts, read from the other services' events."""

from services.reporting import api, handlers, read_model
from services.reporting.app import ReportingApplication
from shared.eventstore.projection import ReadModel
from shared.service_module import ServiceModule

UPSTREAMS = ("contact", "shift", "outreach")

REPORTS = ReadModel("reporting", read_model.metadata, handlers.apply, subscriptions=UPSTREAMS)

MODULE = ServiceModule(
    name="reporting",
    application=ReportingApplication,
    router=api.router,
    read_models=(REPORTS,),
)
