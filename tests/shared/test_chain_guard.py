"""Reporting's guard of its sources' audit chains (``services/reporting/audit.py``) with
the consumer that applies their events (``shared/messaging/consumer.py``), on a real
reporting store, SQLite and PostgreSQL: a notification id applied before that comes again
with another chain hash stops the source (nothing more of it applied) until a rebuild
empties the flag; a redelivery does not, nor an event without a chain hash; a checkpoint
whose head differs from what was applied at its id stops it too; checkpoints a trusted
key did not sign are refused."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from services.reporting import REPORTS
from services.reporting.audit import Chained, ChainKeeper
from shared.audit import Signer
from shared.config import Settings
from shared.eventstore.projection import Projection
from shared.eventstore.store import create_engine
from shared.messaging.bus import Bus
from shared.messaging.consumer import Consumer
from shared.messaging.envelope import IntegrationEvent, envelope_id
from shared.messaging.sources import LocalEventSource

SIGNER = Signer(Ed25519PrivateKey.generate(), "contact")


def _hash(n: int, history: str = "first") -> str:
    return hashlib.sha256(f"{history}:{n}".encode()).hexdigest()


def _event(n: int, history: str | None = "first", service: str = "contact") -> IntegrationEvent:
    # A type no handler of reporting's uses: only its tracking and chain hash are kept.
    return IntegrationEvent(
        id=envelope_id(service, n), service=service, notification_id=n,
        previous_notification_id=n - 1, aggregate_type="Probe", aggregate_id=uuid.uuid4(),
        aggregate_version=1, type="ProbeRecorded", occurred_at=datetime.now(UTC),
        actor="test", chain_hash=None if history is None else _hash(n, history))


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = create_engine(settings, "reporting")
    try:
        yield engine
    finally:
        engine.dispose()


def _parts(engine: Engine, upstream: str = "contact") -> tuple[Projection, ChainKeeper,
                                                              Consumer]:
    assert isinstance(REPORTS.apply, Chained)
    projection = Projection(engine, REPORTS)
    keeper = REPORTS.apply.keeper(engine, [SIGNER.public_key])
    # Never started: handle_batch applies without NATS, and no gap sends it to the log.
    consumer = Consumer(projection, upstream, Bus("nats://127.0.0.1:1"),
                        LocalEventSource({}), guard=keeper)
    return projection, keeper, consumer


def test_a_repeated_id_with_another_hash_stops_the_source_until_a_rebuild(
    engine: Engine,
) -> None:
    projection, keeper, consumer = _parts(engine)
    asyncio.run(consumer.handle_batch([_event(1), _event(2), _event(3)]))
    assert projection.last_applied("contact") == 3

    asyncio.run(consumer.handle_batch([_event(2), _event(3)]))  # a redelivery: same hashes
    assert keeper.rewound() == {} and consumer.duplicate_count == 2

    # The store was put back to 1 and wrote again: 2 comes with another hash, and 4 in
    # the same batch (which would follow 3) is not applied either.
    asyncio.run(consumer.handle_batch([_event(2, "second"), _event(4, "second")]))
    rewound = keeper.rewound()["contact"]
    assert (rewound["notification_id"], rewound["reason"]) == (2, "hash_differs")
    assert "solidarity reporting rebuild" in rewound["action"]
    assert projection.last_applied("contact") == 3
    asyncio.run(consumer.handle_batch([_event(5, "second")]))  # nothing more, ever
    assert projection.last_applied("contact") == 3
    assert consumer.applied_count == 3

    projection.drop()  # a rebuild: the flag goes with the read tables
    assert keeper.rewound() == {}
    asyncio.run(consumer.handle_batch([_event(1), _event(2, "second")]))
    assert projection.last_applied("contact") == 2 and keeper.rewound() == {}


def test_events_without_a_chain_hash_are_never_flagged(engine: Engine) -> None:
    projection, keeper, consumer = _parts(engine)
    asyncio.run(consumer.handle_batch([_event(1, None), _event(2, None)]))
    asyncio.run(consumer.handle_batch([_event(1), _event(2, "second"), _event(3)]))
    assert keeper.rewound() == {} and projection.last_applied("contact") == 3
    assert keeper.admits_last("contact", 2, None)  # applied without one: not judged


def test_a_source_that_lost_the_event_applied_last_is_stopped(engine: Engine) -> None:
    _, keeper, consumer = _parts(engine)
    asyncio.run(consumer.handle_batch([_event(1), _event(2)]))
    assert keeper.admits_last("contact", 2, _event(2))
    assert not keeper.admits_last("contact", 2, None)
    assert keeper.rewound()["contact"]["reason"] == "event_gone"
    assert not keeper.admits("contact", [_event(3)])


def test_checkpoints_are_kept_when_trusted_and_compared_with_what_was_applied(
    engine: Engine,
) -> None:
    _, keeper, consumer = _parts(engine)
    asyncio.run(consumer.handle_batch([_event(1), _event(2), _event(3)]))

    good = SIGNER.sign("contact", 2, _hash(2))
    assert keeper.keep(json.dumps(good.to_dict()).encode()) is True
    assert keeper.keep(json.dumps(good.to_dict()).encode()) is False  # kept once
    assert keeper.rewound() == {}

    forger = Signer(Ed25519PrivateKey.generate(), "contact")
    forged = forger.sign("contact", 3, _hash(3, "forged"))
    assert keeper.keep(json.dumps(forged.to_dict()).encode()) is False
    assert keeper.keep(b"\xff not json") is False
    status = keeper.status()
    assert (status["received"], status["kept"], status["rejected"]) == (4, 1, 2)
    assert status["held"] == {"contact": 1}
    assert status["last_rejected"]["reason"] == "malformed"
    assert keeper.rewound() == {}  # a refused checkpoint proves nothing

    rewritten = SIGNER.sign("contact", 3, _hash(3, "second"))
    assert keeper.keep(json.dumps(rewritten.to_dict()).encode()) is True
    rewound = keeper.rewound()["contact"]
    assert (rewound["notification_id"], rewound["reason"]) == (3, "checkpoint_differs")
    assert [c.notification_id for c in keeper.checkpoints.list("contact")] == [2, 3]
