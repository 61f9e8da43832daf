"""Typed settings, read once from environment variables prefixed ``SOLIDARITY_``.

The defaults serve the embedded mode: SQLite files and a NATS child process under
``./var``, everything on 127.0.0.1. Production sets ``SOLIDARITY_DATABASE_URL`` (one
PostgreSQL schema per service) and ``SOLIDARITY_NATS_URL``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting the system reads. Field names are the variables without the prefix."""

    model_config = SettingsConfigDict(env_prefix="SOLIDARITY_", extra="ignore")

    data_dir: Path = Field(
        default=Path("./var"),
        description="Where embedded mode keeps its SQLite files, NATS data and generated secrets.",
    )
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL (postgresql://user:pass@host:port/db). Unset: SQLite files.",
    )
    db_schema_prefix: str = Field(
        default="",
        description="Prefix of each service's PostgreSQL schema (schema = prefix + service).",
    )
    nats_url: str | None = Field(
        default=None,
        description="NATS server(s), comma separated. Unset: `solidarity up` starts its own.",
    )
    nats_port: int = Field(
        default=0, description="Port of the embedded NATS server; 0 picks a free port."
    )
    stream_replicas: int = Field(
        default=1, ge=1, le=5, description="JetStream replicas per stream (3 in the cluster)."
    )
    stream_max_age_days: float = Field(
        default=30.0,
        gt=0,
        description="How long JetStream keeps a message. The bus is transport, not the record: "
        "a consumer away longer catches up from the source's /events log.",
    )
    stream_duplicate_window_s: float = Field(
        default=120.0, gt=0, description="JetStream de-duplication window for Nats-Msg-Id."
    )
    host: str = Field(default="127.0.0.1", description="HTTP bind address.")
    port: int = Field(default=8000, description="HTTP port.")
    public_url: str | None = Field(
        default=None,
        description="Base URL at which the services reach each other's /events for backfill "
        "(default http://<host>:<port>).",
    )
    service_urls: dict[str, str] = Field(
        default_factory=dict,
        description='Per-service base URLs for backfill, as JSON: {"contact": "http://contact:8000"}.',
    )
    jwt_secret: str | None = Field(
        default=None,
        description="HMAC secret that signs tokens. Unset: generated and kept in the data dir.",
    )
    jwt_issuer: str = Field(default="solidarity", description="The `iss` claim of tokens.")
    token_max_lifetime_s: int = Field(
        default=12 * 3600,
        ge=60,
        description="The longest a token may live (its `exp` minus its `iat`), in seconds: "
        "a longer one is refused, and `solidarity token --ttl` cannot exceed it.",
    )
    master_key: str | None = Field(
        default=None,
        description="Master key (hex, 32 bytes) that wraps per-subject data keys. "
        "Unset: generated and kept in the data dir.",
    )
    log_format: Literal["console", "json"] = Field(
        default="console", description="console on a terminal, json in production."
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    quiet_requests: bool | None = Field(
        default=None,
        description="Log a request that went well and fast at debug, not info (a client "
        "polling /health then floods nothing). Unset: on for `solidarity up` on a terminal, "
        "off otherwise.",
    )
    slow_request_ms: float = Field(
        default=1000.0, gt=0,
        description="A request slower than this is logged at info even when quiet.",
    )
    relay_batch_size: int = Field(default=500, ge=1, le=5000)
    relay_poll_interval_s: float = Field(
        default=1.0, gt=0, description="How often the relay looks for events saved elsewhere."
    )
    relay_ack_timeout_s: float = Field(default=5.0, gt=0)
    tick_interval_s: float = Field(
        default=30.0, gt=0, le=3600,
        description="How often each service does its work due by the clock (a shift that "
        "started without its check-ins, a debrief overdue).",
    )
    db_pool_timeout_s: float = Field(
        default=5.0, gt=0, le=60,
        description="How long a request waits for a database connection (and a PostgreSQL "
        "connection attempt may take) before it answers 503 store-unavailable.",
    )
    consumer_batch_size: int = Field(default=200, ge=1, le=5000)
    consumer_reconcile_interval_s: float = Field(
        default=30.0,
        gt=0,
        description="When the bus is quiet, how often a consumer checks the source log "
        "for an event it never received (a lost last event).",
    )
    max_body_bytes: int = Field(default=65536, ge=1024, description="Largest request body.")
    clock_skew_s: int = Field(
        default=300, ge=0, description="How far in the future a client timestamp may be."
    )
    on_shift_before_min: int = Field(
        default=30, ge=0, le=24 * 60,
        description="A supporter assigned to a shift is on shift (reads a caller's history, "
        "reads and answers texts) from this many minutes before the shift starts.",
    )
    on_shift_after_min: int = Field(
        default=60, ge=0, le=24 * 60,
        description="A supporter assigned to a shift stays on shift until this many minutes "
        "after the shift ends.",
    )
    referral_first_contact_days: int = Field(
        default=7, ge=1, le=366,
        description="Accepting a referral opens a follow-up to make first contact, due this "
        "many days after the acceptance.",
    )
    sms_provider: Literal["outbox", "twilio"] = Field(
        default="outbox",
        description="Where text replies go: `outbox` (embedded mode: stored, sealed, in the "
        "contact database's sms_outbox table, never sent) or `twilio` (Twilio's REST API).",
    )
    sms_auth_token: str | None = Field(
        default=None,
        description="The SMS provider's auth token: it checks the inbound webhook's "
        "X-Twilio-Signature and, with twilio, authenticates sends. Unset: generated and kept "
        "in the data dir (outbox only).",
    )
    sms_account_sid: str | None = Field(
        default=None, description="The Twilio account sid (required with sms_provider=twilio)."
    )
    sms_from_number: str | None = Field(
        default=None,
        description="The line's own number texts are sent from, E.164 (required with "
        "sms_provider=twilio).",
    )
    sms_webhook_url: str | None = Field(
        default=None,
        description="The public URL the SMS provider posts inbound texts to, exactly as "
        "configured there (https://.../contact/texts/inbound): the signature covers it. "
        "Unset: the URL of the request as received.",
    )
    call_provider: Literal["outbox", "twilio"] = Field(
        default="outbox",
        description="How call-backs are placed: `outbox` (embedded mode: recorded, numbers "
        "masked, in the contact database's call_outbox table, never dialled) or `twilio` "
        "(Twilio's Calls API rings the supporter's phone, then dials the caller).",
    )
    call_account_sid: str | None = Field(
        default=None, description="The Twilio account sid for calls (unset: "
        "SOLIDARITY_SMS_ACCOUNT_SID); required with call_provider=twilio.")
    call_auth_token: str | None = Field(
        default=None, description="The Twilio auth token for calls (unset: "
        "SOLIDARITY_SMS_AUTH_TOKEN); required with call_provider=twilio.")
    call_line_number: str | None = Field(
        default=None, description="The line's own number, E.164, that callers see when rung "
        "back (unset: SOLIDARITY_SMS_FROM_NUMBER); required with call_provider=twilio.")
    call_api_base: str = Field(
        default="https://api.twilio.com",
        description="The call provider's API origin (Calls.json is under "
        "/2010-04-01/Accounts/<sid>/).",
    )
    text_reopen_window_h: float = Field(
        default=24.0, ge=0, le=24 * 366,
        description="A text from a caller whose latest text conversation is closed reopens "
        "it (unclaimed) if it comes within this many hours of that conversation's last "
        "message; later, it opens a new conversation. 0: never reopen.",
    )

    # -- the shift service: eligibility, supervision, the rota's clock, debriefs ----------
    required_courses: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["induction", "mental_health_first_aid",
                                 "safeguarding_adults"],
        description="The courses a supporter needs current training in to be eligible for "
        "on-call shifts, comma separated (`induction,safeguarding_adults`); empty: none. "
        "The shift service refuses to start with a course it does not know.",
    )
    supervision_overdue_days: int = Field(
        default=42, ge=1, le=3660,
        description="A supporter's supervision is overdue this many days after their last "
        "one (or their start date, if never supervised).",
    )
    shift_uncovered_grace_min: int = Field(
        default=15, ge=0, le=24 * 60,
        description="A shift that started this many minutes ago without as many check-ins "
        "as it needs is recorded as uncovered (ShiftUncovered); its bag is checked then too.",
    )
    debrief_overdue_hours: int = Field(
        default=72, ge=1, le=24 * 366,
        description="A debrief still open this many hours after it was requested is "
        "flagged overdue.",
    )

    # -- the outreach service: approvals and safety check-ins ---------------------------
    outreach_grace_min: int = Field(
        default=30, ge=0, le=24 * 60,
        description="A meeting in progress whose latest expected end passed this many "
        "minutes ago without both check-outs, or a scheduled one nobody checked in to by "
        "this long after its planned end, raises SafetyCheckOverdue.",
    )
    outreach_assessment_max_age_days: int = Field(
        default=7, ge=1, le=366,
        description="A home visit may be approved only on a risk assessment made within "
        "this many days.",
    )

    # -- the reporting service: the coordinator's dashboard -----------------------------
    dashboard_heartbeat_s: float = Field(
        default=15.0, gt=0, le=300,
        description="GET /reporting/dashboard/stream sends a heartbeat comment after this "
        "many seconds without an update, and looks at the dashboard again then (times "
        "passing: a debrief becoming overdue, a shift starting).",
    )

    # -- the audit trail: the hash chain's signed checkpoints ---------------------------
    audit_checkpoint_interval_s: float = Field(
        default=300.0, gt=0, le=24 * 3600,
        description="How often each service signs its audit chain's head (a checkpoint) "
        "and publishes it; one is also made on demand.",
    )
    audit_signing_key: SecretStr | None = Field(
        default=None,
        description="The Ed25519 key that signs audit checkpoints: base64 of the raw 32-byte "
        "private key (secret: never logged). Unset: each service generates its own and "
        "keeps it in the data dir.",
    )
    audit_trusted_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="The public keys (base64 of the raw 32 bytes, comma separated) whose "
        "checkpoints a verification trusts. Empty: the keys of this deployment's own "
        "signers (SOLIDARITY_AUDIT_SIGNING_KEY, or those kept in the data dir).",
    )

    @field_validator("audit_trusted_keys", mode="before")
    @classmethod
    def _trusted_keys(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: comma separated
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("required_courses", mode="before")
    @classmethod
    def _courses(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: comma separated
            return [c.strip() for c in value.split(",") if c.strip()]
        return value

    @cached_property
    def is_postgres(self) -> bool:
        return bool(self.database_url)

    def schema_for(self, service: str) -> str:
        return f"{self.db_schema_prefix}{service}"

    def sqlite_path(self, service: str) -> Path:
        return self.data_dir / f"{service}.sqlite"

    def base_url_for(self, service: str) -> str:
        if service in self.service_urls:
            return self.service_urls[service].rstrip("/")
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{self.port}"

    def secret(self, name: str, nbytes: int = 32) -> str:
        """A secret kept in the data dir, created on first use (embedded mode only).

        Only its owner may read it: the file is created 0600 (never readable by others,
        not even for a moment) in a directory kept 0700; one found looser is tightened.
        Two processes creating it at once agree on one value (the first link wins)."""
        directory = self.data_dir / "secrets"
        path = directory / name
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        directory.mkdir(exist_ok=True, mode=0o700)
        _owner_only(directory, 0o700)
        if path.exists():
            _owner_only(path, 0o600)
            return path.read_text().strip()
        value = secrets.token_hex(nbytes)
        tmp = directory / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(value)
            try:
                os.link(tmp, path)  # fails if another process made it first
            except FileExistsError:
                return path.read_text().strip()
            except OSError:  # a file system without hard links: the last one wins
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return value

    @cached_property
    def effective_jwt_secret(self) -> str:
        return self.jwt_secret or self.secret("jwt-secret")

    @cached_property
    def effective_master_key(self) -> bytes:
        return bytes.fromhex(self.master_key or self.secret("master-key"))


def _owner_only(path: Path, mode: int) -> None:
    """Tighten ``path`` to ``mode`` if others may read it (best effort: not ours)."""
    with contextlib.suppress(OSError):
        if path.stat().st_mode & 0o077:
            path.chmod(mode)


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
