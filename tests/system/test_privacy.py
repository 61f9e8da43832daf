"""Personal data never lands in clear: not in the SQLite files, not in PostgreSQL's
tables, not on NATS, not in the logs; and after erasure no API gives it back."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.registry import SERVICES
from services.reporting.handlers import london_month
from shared.config import Settings
from shared.eventstore.store import PostgresParams
from shared.logging import configure_logging
from shared.web.auth import Role
from tests.support import Stack, contact_body, stack_settings, stream_messages, wait_for

PHONE_WRITTEN = "07700 900461"
SECRETS = ["900461", "+447700900461", "Bluebell", "ate all the paracetamol in Kennington"]


async def _everything_on_nats(url: str) -> bytes:
    return b"".join([b"".join(await stream_messages(url, service)) for service in SERVICES])


def _postgres_text(settings: Settings) -> str:
    """Every row of every table in the test's schemas, as text."""
    assert settings.database_url
    engine = sa.create_engine(PostgresParams.from_url(settings.database_url).sqlalchemy_url())
    chunks: list[str] = []
    try:
        with engine.connect() as conn:
            for service in SERVICES:
                schema = settings.schema_for(service)
                tables = conn.execute(sa.text(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"
                ), {"s": schema}).scalars().all()
                for table in tables:
                    rows = conn.execute(sa.text(f'SELECT * FROM "{schema}"."{table}"')).all()
                    for row in rows:
                        for value in row:
                            if isinstance(value, bytes | memoryview):
                                chunks.append(bytes(value).decode("latin-1"))
                            else:
                                chunks.append(str(value))
    finally:
        engine.dispose()
    return "\n".join(chunks)


def _files_text(data_dir: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("latin-1") for p in data_dir.rglob("*") if p.is_file()
    )


def test_personal_data_is_nowhere_in_clear(
    settings: Settings, nats_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "DEBUG")
    logging.getLogger().setLevel(logging.INFO)
    try:
        _exercise_and_check(settings, nats_url, capfd)
    finally:
        configure_logging("console", "WARNING")
        logging.getLogger().setLevel(logging.WARNING)


def _exercise_and_check(settings: Settings, nats_url: str,
                        capfd: pytest.CaptureFixture[str]) -> None:
    s = stack_settings(settings, nats_url=nats_url)
    with Stack(s) as stack:
        with stack.client(Role.COORDINATOR, sub="coord-1") as c:
            r = c.post("/contact/callers", json={
                "alias": "Bluebell", "phone": PHONE_WRITTEN, "consent_to_keep_history": True,
                "consent_to_text": True})
            assert r.status_code == 201
            ref = r.json()["caller_ref"]
            started = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
            r = c.post("/contact/contacts", json=contact_body(
                started_at=started, ended_at=None, caller_ref=ref,
                summary="She said she ate all the paracetamol in Kennington",
                issues=["overdose"]))
            assert r.status_code == 201
            contact_id = r.json()["id"]
            c.post(f"/contact/contacts/{contact_id}/risk-assessments", json={
                "level": "high", "decision": "Bluebell agreed a safety plan",
                "reasoning": "ate all the paracetamol in Kennington"})
            c.post("/contact/contacts", json=contact_body(
                started_at=started, ended_at=None, answered=False, issues=[],
                phone=PHONE_WRITTEN))
            assert c.get("/contact/callers/lookup",
                         params={"phone": PHONE_WRITTEN}).status_code == 200
            # Bad input that carries personal data must not echo it back.
            bad = c.post("/contact/callers", json={"phone": PHONE_WRITTEN})
            assert bad.status_code == 409 and "900461" not in bad.text
            bad = c.post("/contact/contacts", json=contact_body(
                channel="Bluebell", summary="ate all the paracetamol in Kennington"))
            assert bad.status_code == 422
            assert "Bluebell" not in bad.text and "paracetamol" not in bad.text
            r = c.get(f"/contact/callers/{ref}/history", params={"purpose": "check Bluebell"})
            assert r.status_code == 200
            month = london_month(datetime.now(UTC))
            wait_for(lambda: c.get("/reporting/monthly", params={"month": month}
                                   ).json()["contacts"]["total"] == 1, what="reporting")
            relay = stack.runtime("contact").relay
            wait_for(lambda: relay.position == stack.runtime("contact").app.max_notification_id(),
                     what="everything published")
            events_text = c.get("/contact/events", params={"limit": 1000}).text

            # After erasure no API gives any of it back.
            assert c.delete(f"/contact/callers/{ref}/personal-data").status_code == 200
            after = [
                c.get(f"/contact/callers/{ref}").text,
                c.get(f"/contact/contacts/{contact_id}").text,
                c.get("/contact/contacts").text,
                c.get("/contact/contacts", params={"caller_ref": ref}).text,
                c.get("/contact/callers/lookup", params={"phone": PHONE_WRITTEN}).text,
                c.get("/contact/follow-ups", params={
                    "due_before": (datetime.now(UTC) + timedelta(days=2)).isoformat()}).text,
            ]
            report = c.get("/reporting/monthly", params={"month": month}).json()
            assert report["contacts"]["total"] == 1
        nats_bytes = asyncio.run(_everything_on_nats(nats_url)).decode("latin-1")
    logs = capfd.readouterr()
    stored = _postgres_text(s) if s.database_url else _files_text(s.data_dir)
    assert "pd1:" in stored, "the personal data should be there, sealed"
    for secret in SECRETS:
        assert secret not in stored, f"{secret!r} in the store"
        assert secret not in nats_bytes, f"{secret!r} on NATS"
        assert secret not in events_text, f"{secret!r} in /events"
        assert secret not in logs.out + logs.err, f"{secret!r} in the logs"
        for body in after:
            assert secret not in body, f"{secret!r} readable after erasure"
    assert "request" in logs.err and "[redacted]" in logs.err  # the access log did run
