"""The integration-event contract: what one service tells the others on the bus.

JSON on subject ``solidarity.<service>.<aggregate>.<event>``, one stream per service.
It carries the minimum other services need (Caldicott): never a caller's name, phone
number, free-text notes or message bodies (``chain_hash`` is the event's link in its
service's audit chain, ``shared.audit``: a hash). ``INTEGRATION_EVENT_SCHEMA`` is its JSON
schema, also kept as ``shared/messaging/integration-event.schema.json`` for other systems.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ENVELOPE_NAMESPACE = uuid.UUID("5b6f1f52-8c43-4c1e-9a57-0f8f9f6b2a11")
SCHEMA_PATH = Path(__file__).with_name("integration-event.schema.json")


class IntegrationEvent(BaseModel):
    """One published event. ``previous_notification_id`` is 0 for a service's first event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID = Field(description="Stable id: the same event always has the same id.")
    service: str = Field(pattern=r"^[a-z][a-z_]*$")
    notification_id: int = Field(ge=1, description="Position in the service's notification log.")
    previous_notification_id: int = Field(
        ge=0, description="Position of the event the service published before this one."
    )
    aggregate_type: str
    aggregate_id: uuid.UUID
    aggregate_version: int = Field(ge=1)
    type: str = Field(pattern=r"^[A-Z][A-Za-z0-9]*$", description="Past tense: ContactLogged.")
    occurred_at: datetime
    actor: str = Field(description="Subject id of who caused it (never a name).")
    correlation_id: str | None = None
    causation_id: str | None = None
    schema_version: int = Field(default=1, ge=1)
    data: dict[str, Any] = Field(default_factory=dict)
    chain_hash: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$",
        description="Hex SHA-256 of this event's link in its service's audit hash chain "
        "(covering every event before it). A consumer that meets a notification id it "
        "already applied with another chain_hash knows the source's store was rewound. "
        "Absent on events published before the chain existed.",
    )

    @property
    def subject(self) -> str:
        return subject_for(self.service, self.aggregate_type, self.type)

    @property
    def msg_id(self) -> str:
        return f"{self.service}:{self.notification_id}"

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> IntegrationEvent:
        return cls.model_validate_json(raw)


def envelope_id(service: str, notification_id: int) -> uuid.UUID:
    """``uuid5(ENVELOPE_NAMESPACE, f"{service}:{notification_id}")``, a third of its cost
    (it runs once per event read): the namespace and service hashed once, and the UUID
    made from its int as ``UUID(bytes=..., version=5)`` would make it."""
    prefix = _prefixes.get(service)
    if prefix is None:
        prefix = hashlib.sha1(ENVELOPE_NAMESPACE.bytes + f"{service}:".encode(),
                              usedforsecurity=False)
        if len(_prefixes) < 64:
            _prefixes[service] = prefix
    digest = prefix.copy()
    digest.update(f"{notification_id}".encode())
    value = (int.from_bytes(digest.digest()[:16]) & _V5_MASK) | _V5_BITS
    if not _DIRECT_UUID:
        return uuid.UUID(int=value)
    made = _new(uuid.UUID)
    _set(made, "int", value)
    _set(made, "is_safe", _UNKNOWN)
    return made


_prefixes: dict[str, Any] = {}
# RFC 4122 variant and version 5, as uuid.UUID(bytes=..., version=5) sets them.
_V5_MASK = ~((0xC000 << 48) | (0xF000 << 64))
_V5_BITS = (0x8000 << 48) | (5 << 76)
_new, _set = object.__new__, object.__setattr__
_UNKNOWN = uuid.SafeUUID.unknown  # (an enum member: looked up once)
_DIRECT_UUID = True


def _direct_uuid_is_uuid5() -> bool:
    """Whether the UUID made without the constructor's checks (by setting its two slots,
    as unpickling does) is exactly uuid5's here; the checked constructor otherwise."""
    for i in (1, 2, 99, 123456789):
        made, expected = envelope_id("s", i), uuid.uuid5(ENVELOPE_NAMESPACE, f"s:{i}")
        if (made != expected or str(made) != str(expected) or hash(made) != hash(expected)
                or made.is_safe is not expected.is_safe or made.version != 5):
            return False
    _prefixes.clear()
    return True


_DIRECT_UUID = _direct_uuid_is_uuid5()


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def subject_for(service: str, aggregate_type: str, event_type: str) -> str:
    return f"solidarity.{service}.{snake(aggregate_type)}.{snake(event_type)}"


def stream_name(service: str) -> str:
    return f"SOLIDARITY_{service.upper()}"


def stream_subjects(service: str) -> list[str]:
    return [f"solidarity.{service}.>"]


def json_schema() -> dict[str, Any]:
    schema = IntegrationEvent.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://solidarity.example/schemas/integration-event.json"
    return schema


def write_json_schema(path: Path = SCHEMA_PATH) -> None:
    path.write_text(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":  # python -m shared.messaging.envelope regenerates the schema file
    write_json_schema()
