"""The audit chain in the running system, SQLite and PostgreSQL: every save is chained
by the service that made it, the services sign their chain heads, and
``solidarity audit verify`` finds a store clean and then locates a byte changed behind
the system's back."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest
import sqlalchemy as sa

from services import audit_cli
from services.registry import SERVICES
from shared.config import Settings
from shared.eventstore.store import create_engine
from tests.support import Stack, contact_body, stack_settings, wait_for


def _verify(settings: Settings, capsys: pytest.CaptureFixture[str],
            service: str | None = None) -> tuple[int, dict[str, Any]]:
    code = audit_cli.cmd_verify(argparse.Namespace(service=service, json=True), settings)
    return code, json.loads(capsys.readouterr().out)


def _flip_a_byte(settings: Settings, notification_id: int) -> None:
    """An attacker with the database: one byte of one stored event, nothing else."""
    engine = create_engine(settings, "contact")
    pg = engine.dialect.name == "postgresql"
    # The library names the table after the application on PostgreSQL.
    table, key = ("contact_events", "notification_id") if pg else ("stored_events", "rowid")
    try:
        with engine.begin() as conn:
            state = bytearray(conn.execute(sa.text(
                f"SELECT state FROM {table} WHERE {key} = :i"),
                {"i": notification_id}).scalar_one())
            state[len(state) // 2] ^= 0x01
            conn.execute(sa.text(f"UPDATE {table} SET state = :s WHERE {key} = :i"),
                         {"s": bytes(state), "i": notification_id})
    finally:
        engine.dispose()


def test_saves_are_chained_signed_and_a_changed_byte_is_found(
    settings: Settings, nats_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    s = stack_settings(settings, nats_url=nats_url)
    with Stack(s) as stack:
        with stack.client() as c:
            for _ in range(4):
                assert c.post("/contact/contacts", json=contact_body()).status_code == 201
            store = c.get("/contact/health").json()["store"]
            # Chained by the save itself, not at some later moment.
            assert store["chained"] == store["head"] >= 4
        checkpoint = stack.runtime("contact").checkpoint()
        assert checkpoint is not None and checkpoint.notification_id == store["head"]
        head = store["head"]

    code, verdicts = _verify(s, capsys)
    assert code == 0, verdicts
    assert set(verdicts) == set(SERVICES)
    contact = verdicts["contact"]
    assert contact["ok"] and contact["problem"] is None
    assert contact["checked"] == head and contact["head"]["notification_id"] == head
    assert contact["checkpoints"] >= 1

    _flip_a_byte(s, 2)
    code, verdicts = _verify(s, capsys, "contact")
    assert code == 1
    assert verdicts["contact"]["problem"]["kind"] == "changed"
    assert verdicts["contact"]["problem"]["notification_id"] == 2

    # The words on a terminal say where, and nothing of what the event held.
    assert audit_cli.cmd_verify(argparse.Namespace(service="contact", json=False), s) == 1
    out = capsys.readouterr().out
    assert "contact: CHANGED at notification 2" in out


def test_events_saved_while_no_process_ran_are_chained_at_start(
    settings: Settings, nats_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store written before the chain existed (an upgrade) is chained at the first
    start: the chain then covers every event."""
    s = stack_settings(settings, nats_url=nats_url)
    with Stack(s, services=("contact",)) as stack, stack.client() as c:
        assert c.post("/contact/contacts", json=contact_body()).status_code == 201
        head = c.get("/contact/health").json()["store"]["head"]
    engine = create_engine(s, "contact")
    try:
        with engine.begin() as conn:  # as if the chain had never been kept
            conn.execute(sa.text("DELETE FROM audit_chain"))
            conn.execute(sa.text("DELETE FROM audit_checkpoints"))
    finally:
        engine.dispose()
    _, verdicts = _verify(s, capsys, "contact")
    assert verdicts["contact"]["unchained"] == head and verdicts["contact"]["checked"] == 0

    with Stack(s, services=("contact",)) as stack, stack.client() as c:
        wait_for(lambda: c.get("/contact/health").json()["store"]["chained"] == head,
                 10, 0.1, "the old events chained at start")
    code, verdicts = _verify(s, capsys, "contact")
    assert code == 0 and verdicts["contact"]["checked"] == head


def test_a_checkpoint_on_demand_covers_what_was_just_saved(
    settings: Settings, nats_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    s = stack_settings(settings, nats_url=nats_url, audit_checkpoint_interval_s=3600)
    with Stack(s, services=("contact",)) as stack, stack.client() as c:
        first = c.get("/contact/health").json()["store"]["head"]
        assert c.post("/contact/contacts", json=contact_body()).status_code == 201
        head = c.get("/contact/health").json()["store"]["head"]
        assert head > first  # signed at start; this contact came after
        code = audit_cli.cmd_audit(argparse.Namespace(action="checkpoint",
                                                      service="contact"), s)
        assert code == 0
        assert f"contact: checkpoint at notification {head} " in capsys.readouterr().out
    code, verdicts = _verify(s, capsys, "contact")
    assert code == 0 and verdicts["contact"]["checkpoints"] >= 2
