"""The audit trail over the bus, on SQLite and PostgreSQL with real NATS: every event
carries its chain hash (on the bus and on ``/<service>/events``); the checkpoints the
services sign reach reporting, which keeps those a trusted key signed and refuses the
rest; a store put back from an older backup is caught, not miscounted, until a
rebuild; and ``GET /reporting/audit/verify``."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import nats
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.audit import CheckpointStore, Signer
from shared.config import Settings
from shared.eventstore.store import create_engine
from shared.messaging.bus import checkpoint_subject
from shared.messaging.envelope import IntegrationEvent
from shared.web.auth import Role
from tests.support import (
    Stack,
    contact_body,
    monthly_count,
    stack_settings,
    stream_messages,
    wait_for,
)
from tests.system.test_audit_trail import _flip_a_byte


def _settings(settings: Settings, nats_url: str) -> Settings:
    # Checkpoints often, no clock work: the state compared is the test's alone.
    # (and the log read soon when the bus is quiet: it drops an id published before).
    return stack_settings(settings, nats_url=nats_url, tick_interval_s=3600,
                          audit_checkpoint_interval_s=0.3, consumer_reconcile_interval_s=1.0)


def _applied(stack: Stack, service: str = "contact") -> int:
    """The source's head, once reporting has applied up to it."""
    projection = stack.runtime("reporting").projection
    app = stack.runtime(service).app

    def done() -> int | None:
        head = app.max_notification_id()
        return head if head and projection.last_applied(service) == head else None

    return int(wait_for(done, 30, 0.1, f"reporting applied {service}'s events"))


def _links(stack: Stack, service: str, head: int) -> dict[int, str]:
    chainer = stack.runtime(service).chainer
    assert chainer is not None
    return {n: h.hex() for n, h in chainer.hashes(range(1, head + 1)).items()}


def _held(stack: Stack, service: str) -> list[Any]:
    return CheckpointStore(stack.runtime("reporting").engine).list(service)


def _reporting_health(c: httpx.Client) -> dict[str, Any]:
    resp = c.get("/reporting/health")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _consumer(health: dict[str, Any], upstream: str) -> dict[str, Any]:
    (found,) = [h for h in health["consumers"] if h["durable"] == f"reporting-from-{upstream}"]
    return dict(found)


def test_events_carry_their_chain_hash_and_checkpoints_reach_reporting(
    settings: Settings, nats_url: str
) -> None:
    with Stack(_settings(settings, nats_url)) as stack, stack.client() as c:
        for _ in range(3):
            assert c.post("/contact/contacts", json=contact_body()).status_code == 201
        head = _applied(stack)
        links = _links(stack, "contact", head)
        assert len(links) == head

        page = c.get("/contact/events", params={"after": 0, "limit": 100}).json()["items"]
        assert {e["notification_id"]: e["chain_hash"] for e in page} == links
        on_bus = [IntegrationEvent.from_bytes(m)
                  for m in asyncio.run(stream_messages(nats_url, "contact"))]
        assert {e.notification_id: e.chain_hash for e in on_bus} == links

        # The head contact signed reaches reporting's table, as signed.
        kept = wait_for(lambda: [cp for cp in _held(stack, "contact")
                                 if cp.notification_id == head], 20, 0.1,
                        "contact's checkpoint of its head kept by reporting")
        assert kept[0].head == links[head]
        own = CheckpointStore(stack.runtime("contact").engine).latest("contact")
        assert own is not None and own.to_dict() == kept[-1].to_dict()
        checkpoints = _reporting_health(c)["store"]["checkpoints"]
        assert checkpoints["held"]["contact"] >= 1 and checkpoints["rejected"] == 0
        assert checkpoints["subscribed"] is True


def test_a_checkpoint_not_signed_by_a_trusted_key_is_refused(
    settings: Settings, nats_url: str
) -> None:
    forger = Signer(Ed25519PrivateKey.generate(), "contact")
    forged = forger.sign("contact", 1, "ab" * 32).to_dict()

    async def publish(body: bytes) -> None:
        nc = await nats.connect(nats_url)
        try:
            await nc.jetstream().publish(checkpoint_subject("contact"), body)
        finally:
            await nc.close()

    with Stack(_settings(settings, nats_url)) as stack, stack.client() as c:
        wait_for(lambda: _held(stack, "contact"), 20, 0.1, "contact's first checkpoint")
        asyncio.run(publish(json.dumps(forged).encode()))
        asyncio.run(publish(b"not a checkpoint"))
        refused = wait_for(lambda: (h := _reporting_health(c)["store"]["checkpoints"])
                           ["rejected"] >= 2 and h, 20, 0.1, "two checkpoints refused")
        assert refused["last_rejected"]["reason"] == "malformed"
        assert all(cp.key_id != forger.key_id for cp in _held(stack, "contact"))
        assert _reporting_health(c)["status"] == "ok"  # refused, counted: not a fault


def _backup(s: Settings) -> Callable[[], None]:
    """A consistent copy of contact's whole store now (the stack running); returns what
    puts it back (the stack stopped), as restoring an older backup does."""
    if not s.is_postgres:
        src = s.sqlite_path("contact")
        copy = src.with_name("contact-backup.sqlite")
        with closing(sqlite3.connect(src)) as live, closing(sqlite3.connect(copy)) as bak:
            live.backup(bak)

        def restore_file() -> None:
            for suffix in ("-wal", "-shm"):
                Path(f"{src}{suffix}").unlink(missing_ok=True)
            shutil.copyfile(copy, src)

        return restore_file
    schema = s.schema_for("contact")
    bak = f"{schema}_bak"
    engine = create_engine(s, "contact")
    with engine.begin() as conn:
        tables = list(conn.execute(sa.text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = :s "
            "AND table_type = 'BASE TABLE'"), {"s": schema}).scalars())
        sequences = dict(conn.execute(sa.text(
            "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = :s"),
            {"s": schema}).all())
        conn.execute(sa.text(f'CREATE SCHEMA "{bak}"'))
        for t in tables:
            conn.execute(sa.text(f'CREATE TABLE "{bak}"."{t}" AS SELECT * FROM "{schema}"."{t}"'))

    def restore_schema() -> None:
        try:
            with engine.begin() as conn:
                for t in tables:
                    conn.execute(sa.text(f'TRUNCATE "{schema}"."{t}"'))
                    conn.execute(sa.text(
                        f'INSERT INTO "{schema}"."{t}" SELECT * FROM "{bak}"."{t}"'))
                for name, value in sequences.items():
                    conn.execute(sa.text(
                        "SELECT setval(format('%I.%I', CAST(:s AS text), CAST(:n AS text)),"
                        " CAST(:v AS bigint), CAST(:called AS boolean))"),
                        {"s": schema, "n": name, "v": value or 1, "called": value is not None})
                conn.execute(sa.text(f'DROP SCHEMA "{bak}" CASCADE'))
        finally:
            engine.dispose()

    return restore_schema


def test_a_store_restored_from_an_older_backup_is_caught_not_miscounted(
    settings: Settings, nats_url: str
) -> None:
    s = _settings(settings, nats_url)
    with Stack(s) as stack, stack.client() as c:
        for _ in range(4):
            assert c.post("/contact/contacts", json=contact_body()).status_code == 201
        _applied(stack)
        restore = _backup(s)
        for _ in range(4):
            assert c.post("/contact/contacts", json=contact_body()).status_code == 201
        head = _applied(stack)
        wait_for(lambda: any(cp.notification_id == head for cp in _held(stack, "contact")),
                 20, 0.1, "the head's checkpoint kept by reporting")
        assert monthly_count(c) == 8
    restore()

    with Stack(s) as stack, stack.client() as c, stack.client(Role.AUDITOR) as auditor:
        for _ in range(3):  # their notification ids repeat ids reporting applied
            assert c.post("/contact/contacts", json=contact_body()).status_code == 201
        health = wait_for(lambda: (h := _reporting_health(c)) and _consumer(
            h, "contact")["source_rewound"] and h, 30, 0.1, "source_rewound in health")
        rewound = _consumer(health, "contact")["source_rewound"]
        assert rewound["upstream"] == "contact" and 0 < rewound["notification_id"] <= head
        assert "solidarity audit verify" in rewound["action"]
        assert "solidarity reporting rebuild" in rewound["action"]
        assert health["status"] == "degraded"
        assert _consumer(health, "shift")["source_rewound"] is None

        # Nothing of the rewound source is applied: the report stands still, the new
        # contacts are neither counted nor taken for duplicates.
        consumer = next(x for x in stack.runtime("reporting").consumers
                        if x.upstream == "contact")
        contact = stack.runtime("contact")
        wait_for(lambda: contact.relay.position == contact.app.max_notification_id(), 20,
                 0.1, "the new contacts published")
        assert monthly_count(c) == 8
        assert consumer.applied_count == 0 and consumer.duplicate_count == 0
        board = c.get("/reporting/dashboard").json()
        assert [(a["upstream"], a["kind"]) for a in board["audit_alerts"]["items"]] == [
            ("contact", "source_rewound")]
        # Reporting holds checkpoints of the old history that contact's chain lost.
        verdict = auditor.get("/reporting/audit/verify").json()["services"]["contact"]
        assert not verdict["ok"] and verdict["problem"]["kind"] == "checkpoint_mismatch"

        resp = c.post("/reporting/rebuild", timeout=120)
        assert resp.status_code == 200, resp.text
        assert resp.json()["applied"]["contact"] == stack.runtime(
            "contact").app.max_notification_id()
        assert monthly_count(c) == 4 + 3  # what the restored store holds
        health = _reporting_health(c)
        assert _consumer(health, "contact")["source_rewound"] is None
        assert c.get("/reporting/dashboard").json()["audit_alerts"]["count"] == 0
        assert c.post("/contact/contacts", json=contact_body()).status_code == 201
        _applied(stack)  # applied again (from the log: the bus still drops repeated ids)
        assert monthly_count(c) == 8
        assert _consumer(_reporting_health(c), "contact")["source_rewound"] is None


def test_the_audit_verification_endpoint(settings: Settings, nats_url: str) -> None:
    s = _settings(settings, nats_url)
    with Stack(s) as stack, stack.client(Role.AUDITOR) as auditor:
        with stack.client() as c:
            for _ in range(3):
                assert c.post("/contact/contacts", json=contact_body()).status_code == 201
            head = _applied(stack)
        wait_for(lambda: any(cp.notification_id == head for cp in _held(stack, "contact")),
                 20, 0.1, "the head's checkpoint kept by reporting")
        resp = auditor.get("/reporting/audit/verify")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["ok"] is True
        assert set(body["services"]) == {"contact", "shift", "outreach", "reporting"}
        contact = body["services"]["contact"]
        assert contact["scope"] == "store" and contact["problem"] is None
        assert contact["checked"] == head and contact["head"]["notification_id"] == head
        assert contact["checkpoints_held"] >= 1 and contact["checkpoints"] >= 1

        _flip_a_byte(s, 2)
        body = auditor.get("/reporting/audit/verify").json()
        assert body["ok"] is False
        problem = body["services"]["contact"]["problem"]
        assert (problem["kind"], problem["notification_id"]) == ("changed", 2)
        assert body["services"]["shift"]["ok"] is True

        with stack.client(Role.SUPPORTER) as supporter:
            denied = supporter.get("/reporting/audit/verify")
        assert denied.status_code == 403
        assert denied.headers["content-type"].startswith("application/problem+json")
        with stack.client(Role.COORDINATOR) as coordinator:
            assert coordinator.get("/reporting/audit/verify").status_code == 403
