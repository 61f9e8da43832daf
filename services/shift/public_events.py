"""Outbound: the shift service's domain events as public integration events. Its
aggregates arrive with the shift issue; until then it publishes nothing."""

from __future__ import annotations

from typing import Any

from shared.eventstore.application import Public


def public_event(event: Any) -> Public | None:
    return None
