"""The integration-event contract: what one service tells the others on the bus.

JSON on subject ``solidarity.<service>.<aggregate>.<event>``, one stream per service.
It carries the minimum other services need (Caldicott): never a caller's name, phone
number, free-text notes or message bodies (``chain_hash`` is the event's link in its
service's audit chain, ``shared.audit``: a hash). ``INTEGRATION_EVENT_SCHEMA`` is its JSON
schema, also kept as ``shared/messaging/integration-event.schema.json`` for other systems.
"""

from __future__ import annotations

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
    return uuid.uuid5(ENVELOPE_NAMESPACE, f"{service}:{notification_id}")


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
