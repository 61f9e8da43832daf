"""The services of the system, in the order they start. Adding a service is a package
that exports a ``ServiceModule`` and one line here."""

from __future__ import annotations

from services import contact, outreach, reporting, shift
from shared.service_module import ServiceModule

REGISTRY: tuple[ServiceModule, ...] = (
    shift.MODULE,
    contact.MODULE,
    outreach.MODULE,
    reporting.MODULE,
)

MODULES: dict[str, ServiceModule] = {m.name: m for m in REGISTRY}
SERVICES: tuple[str, ...] = tuple(MODULES)
