"""What a service package exports: its ``ServiceModule``.

The composition root (``services/system.py``) builds every service from one of these
and names no service in a branch: a new service is a package that exports a module
and one line in ``services/registry.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter

from shared.eventstore.application import Public, ServiceApplication
from shared.eventstore.projection import ReadModel
from shared.eventstore.reactions import Reactions

# The adapters a service may ask the composition root for (beside its engine and
# settings, which every service gets): ``keys`` (per-subject keys), ``phones`` (the
# phone index), ``sms`` (the SMS provider chosen by settings) and ``calls`` (the call
# placer of call-backs, chosen by settings).
ADAPTERS = frozenset({"keys", "phones", "sms", "calls"})


def no_public_events(event: Any) -> Public | None:
    return None


@dataclass(frozen=True)
class ServiceModule:
    """One service: its name, application class, router, the mapping of its domain
    events to public integration events (outbound), its read models (each fed by its
    own log or by subscriptions to other services' streams), its reactions to other
    services' events (inbound events answered with its own, ``handlers.py``) and the
    adapters it uses."""

    name: str
    application: type[ServiceApplication]
    router: Callable[[], APIRouter] | None = None
    public_events: Callable[[Any], Public | None] = no_public_events
    read_models: tuple[ReadModel, ...] = ()
    adapters: frozenset[str] = field(default_factory=frozenset)
    reactions: Reactions | None = None

    def __post_init__(self) -> None:
        unknown = self.adapters - ADAPTERS
        if unknown:
            raise ValueError(f"{self.name}: unknown adapter(s) {sorted(unknown)}")

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """The services whose streams this one consumes."""
        out: list[str] = []
        upstreams = [s for model in self.read_models for s in model.subscriptions]
        if self.reactions is not None:
            upstreams.extend(self.reactions.subscriptions)
        for upstream in upstreams:
            if upstream not in out:
                out.append(upstream)
        return tuple(out)
