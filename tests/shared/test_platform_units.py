"""Platform pieces without I/O: envelope, auth, log redaction, settings, store URLs."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.reporting.handlers import london_month
from shared.config import Settings
from shared.eventstore.store import PostgresParams, eventsourcing_env
from shared.logging import redact_query
from shared.messaging.envelope import (
    SCHEMA_PATH,
    IntegrationEvent,
    envelope_id,
    json_schema,
    subject_for,
)
from shared.web.auth import Role, decode_token, issue_token
from shared.web.problems import Unauthorized

SECRET = "a-test-secret-of-enough-length-for-hs256"


def _event(**overrides: object) -> IntegrationEvent:
    fields: dict[str, object] = {
        "id": envelope_id("contact", 3),
        "service": "contact",
        "notification_id": 3,
        "previous_notification_id": 2,
        "aggregate_type": "Contact",
        "aggregate_id": uuid.uuid4(),
        "aggregate_version": 1,
        "type": "ContactLogged",
        "occurred_at": datetime(2026, 11, 29, tzinfo=UTC),
        "actor": "s-1",
        "data": {"channel": "phone"},
    }
    fields.update(overrides)
    return IntegrationEvent(**fields)  # type: ignore[arg-type]


def test_envelope_round_trip_subject_and_stable_id() -> None:
    ev = _event()
    assert IntegrationEvent.from_bytes(ev.to_bytes()) == ev
    assert ev.subject == "solidarity.contact.contact.contact_logged"
    assert ev.msg_id == "contact:3"
    assert envelope_id("contact", 3) == ev.id != envelope_id("contact", 4)
    assert subject_for("outreach", "HomeVisit", "HomeVisitApproved") == (
        "solidarity.outreach.home_visit.home_visit_approved"
    )


@pytest.mark.parametrize(
    "bad",
    [{"type": "contact logged"}, {"notification_id": 0}, {"previous_notification_id": -1},
     {"service": "Contact"}, {"extra": 1}],
)
def test_envelope_rejects_malformed(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        _event(**bad)


def test_the_published_json_schema_file_is_current() -> None:
    on_disk = json.loads(Path(SCHEMA_PATH).read_text())
    assert on_disk == json.loads(json.dumps(json_schema())), (
        "regenerate with: python -m shared.messaging.envelope"
    )
    assert set(on_disk["required"]) >= {
        "id", "service", "notification_id", "previous_notification_id", "aggregate_type",
        "aggregate_id", "aggregate_version", "type", "occurred_at", "actor",
    }


def test_tokens_round_trip_and_refuse_tampering() -> None:
    token = issue_token(SECRET, sub="u1", role=Role.SUPPORTER, name="Sam")
    p = decode_token(SECRET, token)
    assert (p.sub, p.role, p.name, p.actor) == ("u1", Role.SUPPORTER, "Sam", "u1")
    with pytest.raises(Unauthorized):
        decode_token("another-secret-" * 3, token)
    with pytest.raises(Unauthorized):
        decode_token(SECRET, token[:-2] + "xx")
    with pytest.raises(ValueError):
        issue_token(SECRET, sub="u1", role="superuser")


def test_access_log_redacts_query_values_that_may_be_personal() -> None:
    q = redact_query("phone=07700900123&limit=5&month=2026-11&name=Jo")
    assert "07700900123" not in q and "Jo" not in q
    assert "limit=5" in q and "month=2026-11" in q


def test_london_month_follows_wall_clock() -> None:
    assert london_month(datetime(2026, 5, 31, 23, 30, tzinfo=UTC)) == "2026-06"  # BST
    assert london_month(datetime(2026, 10, 31, 23, 30, tzinfo=UTC)) == "2026-10"  # GMT


def test_settings_and_store_selection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOLIDARITY_DATA_DIR", str(tmp_path))
    s = Settings()
    assert s.data_dir == tmp_path and not s.is_postgres
    env = eventsourcing_env(s, "contact")
    assert env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
    assert env["SQLITE_DBNAME"] == str(tmp_path / "contact.sqlite")
    # Generated secrets are kept, so tokens survive a restart.
    assert Settings().effective_jwt_secret == s.effective_jwt_secret
    assert (tmp_path / "secrets" / "jwt-secret").stat().st_mode & 0o077 == 0
    monkeypatch.setenv("SOLIDARITY_SERVICE_URLS", '{"contact": "http://contact:8000/"}')
    assert Settings().base_url_for("contact") == "http://contact:8000"


def test_postgres_url_parsing() -> None:
    pg = PostgresParams.from_url("postgresql://app:p%40ss@db.local:6543/solidarity")
    assert (pg.user, pg.password, pg.host, pg.port, pg.dbname) == (
        "app", "p@ss", "db.local", 6543, "solidarity")
    with pytest.raises(ValueError):
        PostgresParams.from_url("mysql://x@y/z")
