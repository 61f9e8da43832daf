"""Personal data: encrypted with a key per data subject, and phone numbers as keyed hashes.

- ``KeyStore``: each data subject (a caller; an anonymous contact is its own subject)
  gets a random AES-256-GCM key, kept in ``subject_keys`` wrapped by the master key
  from settings. ``seal`` turns a value into an opaque token that events and read
  models store; ``open`` turns it back, or answers ``None`` once the subject's key is
  erased (crypto-shredding: the append-only store keeps its events, unreadable).
- ``PhoneIndex``: UK numbers normalised to E.164, then HMAC-SHA256 with a key derived
  from the master key. The hash is personal data too: it lives in a mutable table
  outside the event store, and erasure deletes its rows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import threading
from datetime import UTC, datetime

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from shared.domain import InvalidCommand, RuleBroken

TOKEN_PREFIX = "pd1:"  # noqa: S105 - a format marker, not a secret
ERASED = "[erased]"

privacy_metadata = sa.MetaData()

subject_keys = sa.Table(
    "subject_keys",
    privacy_metadata,
    sa.Column("subject_id", sa.String(64), primary_key=True),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# Subjects whose key was destroyed: no new key may ever be made for them, or data
# sealed after erasure would be readable again (and old tokens fail to open).
erased_subjects = sa.Table(
    "erased_subjects",
    privacy_metadata,
    sa.Column("subject_id", sa.String(64), primary_key=True),
    sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
)

phone_index = sa.Table(
    "phone_index",
    privacy_metadata,
    sa.Column("phone_hash", sa.String(64), primary_key=True),
    sa.Column("subject_id", sa.String(64), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


class MasterKeyMismatch(RuntimeError):
    """The configured master key cannot unwrap this database's keys."""


class ErasedSubject(RuleBroken):
    """Sealing was asked for a subject whose key was destroyed (a 422: nothing personal
    may be recorded for an erased person)."""


def derive_key(master_key: bytes, purpose: str) -> bytes:
    return hmac.new(master_key, f"solidarity:{purpose}".encode(), hashlib.sha256).digest()


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX)


class KeyStore:
    """Per-subject data keys, wrapped by the master key."""

    def __init__(self, engine: Engine, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError("the master key must be 32 bytes (64 hex characters)")
        self.engine = engine
        self._wrap = AESGCM(derive_key(master_key, "wrap-subject-keys"))
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()
        privacy_metadata.create_all(engine)
        self._check_master_key()

    KEY_CHECK = "_master-key-check"

    def _check_master_key(self) -> None:
        """Refuse to start with another master key than the one this database's keys
        were wrapped with: every read of personal data would fail, and new keys would be
        wrapped differently from the old ones."""
        with self.engine.connect() as conn:
            wrapped = conn.execute(
                sa.select(subject_keys.c.wrapped_key).where(
                    subject_keys.c.subject_id == self.KEY_CHECK)
            ).scalar()
        if wrapped is None:
            self._key(self.KEY_CHECK, create=True)
            return
        try:
            self._unwrap(self.KEY_CHECK, bytes(wrapped))
        except InvalidTag:
            raise MasterKeyMismatch(
                "SOLIDARITY_MASTER_KEY is not the key this database's personal-data keys "
                "were made with (restore the right key; do not start with a new one)"
            ) from None

    def _unwrap(self, subject_id: str, wrapped: bytes) -> bytes:
        return self._wrap.decrypt(wrapped[:12], wrapped[12:], subject_id.encode())

    def _key(self, subject_id: str, create: bool) -> bytes | None:
        with self._lock:
            if subject_id in self._cache:
                return self._cache[subject_id]
        with self.engine.connect() as conn:
            wrapped = conn.execute(
                sa.select(subject_keys.c.wrapped_key).where(
                    subject_keys.c.subject_id == subject_id
                )
            ).scalar()
        if wrapped is None:
            if not create:
                return None
            if self.is_erased(subject_id):
                raise ErasedSubject("this data subject was erased: nothing new is sealed")
            key = AESGCM.generate_key(bit_length=256)
            nonce = os.urandom(12)
            blob = nonce + self._wrap.encrypt(nonce, key, subject_id.encode())
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        sa.insert(subject_keys).values(
                            subject_id=subject_id, wrapped_key=blob, created_at=datetime.now(UTC)
                        )
                    )
            except IntegrityError:
                return self._key(subject_id, create=False)  # another thread made it first
        else:
            key = self._unwrap(subject_id, bytes(wrapped))
        with self._lock:
            self._cache[subject_id] = key
        return key

    def seal(self, subject_id: str, plaintext: str | None) -> str | None:
        """An opaque token for ``plaintext``, readable while the subject's key exists."""
        if plaintext is None:
            return None
        key = self._key(subject_id, create=True)
        assert key is not None
        nonce = os.urandom(12)
        ct = AESGCM(key).encrypt(nonce, plaintext.encode(), subject_id.encode())
        body = base64.urlsafe_b64encode(nonce + ct).decode()
        return f"{TOKEN_PREFIX}{subject_id}:{body}"

    def open(self, token: str | None) -> str | None:
        """The plaintext, or ``None`` if there is none or the subject was erased."""
        if token is None:
            return None
        if not is_sealed(token):
            raise ValueError("not a sealed value")
        subject_id, _, body = token[len(TOKEN_PREFIX):].rpartition(":")
        key = self._key(subject_id, create=False)
        if key is None:
            return None
        raw = base64.urlsafe_b64decode(body.encode())
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], subject_id.encode()).decode()
        except InvalidTag:  # not sealed with this key: unreadable, as if erased
            return None

    def reveal(self, token: str | None) -> str | None:
        """For views: the plaintext, ``[erased]`` once shredded, None if there was none."""
        if token is None:
            return None
        value = self.open(token)
        return ERASED if value is None else value

    def erase(self, subject_id: str, conn: Connection | None = None) -> bool:
        """Destroy the subject's key: everything sealed with it becomes unreadable."""
        with self._lock:
            self._cache.pop(subject_id, None)
        stmt = sa.delete(subject_keys).where(subject_keys.c.subject_id == subject_id)
        tomb = sa.insert(erased_subjects).values(subject_id=subject_id,
                                                 erased_at=datetime.now(UTC))
        if conn is not None:
            deleted = bool(conn.execute(stmt).rowcount)
            if not self.is_erased(subject_id, conn):
                conn.execute(tomb)
            return deleted
        with self.engine.begin() as c:
            deleted = bool(c.execute(stmt).rowcount)
            if not self.is_erased(subject_id, c):
                c.execute(tomb)
            return deleted

    def forget_unused(self, subject_id: str) -> None:
        """Drop a key made for a registration that was then refused (no tombstone:
        nothing was ever recorded with it)."""
        with self._lock:
            self._cache.pop(subject_id, None)
        with self.engine.begin() as c:
            c.execute(sa.delete(subject_keys).where(subject_keys.c.subject_id == subject_id))

    def is_erased(self, subject_id: str, conn: Connection | None = None) -> bool:
        stmt = sa.select(erased_subjects.c.subject_id).where(
            erased_subjects.c.subject_id == subject_id)
        if conn is not None:
            return conn.execute(stmt).first() is not None
        with self.engine.connect() as c:
            return c.execute(stmt).first() is not None


_UK_MOBILE_OR_LANDLINE = re.compile(r"^\+44[1-9]\d{8,9}$")


def normalise_uk_phone(raw: str) -> str:
    """E.164 for a UK number written as 07..., +447..., 447..., 00447..., with spaces,
    dashes, dots or brackets. Raises InvalidCommand naming `phone` otherwise."""
    if not isinstance(raw, str):
        raise InvalidCommand("phone", "must be a string")
    cleaned = re.sub(r"[\s\-().]", "", raw)
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    if cleaned.startswith("+44"):
        rest = cleaned[3:]
    elif cleaned.startswith("44") and len(cleaned) >= 12:
        rest = cleaned[2:]
    elif cleaned.startswith("0"):
        rest = cleaned[1:]
    else:
        raise InvalidCommand("phone", "is not a UK phone number")
    rest = rest.removeprefix("0")  # "+44 (0)7700 ..." written with the trunk zero
    number = "+44" + rest
    if not _UK_MOBILE_OR_LANDLINE.match(number):
        raise InvalidCommand("phone", "is not a UK phone number")
    return number


class PhoneIndex:
    """Keyed hashes of phone numbers, to find a known caller without storing the number."""

    def __init__(self, engine: Engine, master_key: bytes) -> None:
        self.engine = engine
        self._key = derive_key(master_key, "phone-hash")
        privacy_metadata.create_all(engine)

    def hash(self, phone: str) -> str:
        return hmac.new(self._key, normalise_uk_phone(phone).encode(), hashlib.sha256).hexdigest()

    def find(self, phone: str) -> str | None:
        digest = self.hash(phone)
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(phone_index.c.subject_id).where(phone_index.c.phone_hash == digest)
            ).scalar()

    def claim(self, phone: str, subject_id: str) -> str | None:
        """Record the number for the subject. If another subject holds it, change nothing
        and return that subject's id."""
        digest = self.hash(phone)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(phone_index).values(
                        phone_hash=digest, subject_id=subject_id, created_at=datetime.now(UTC)
                    )
                )
        except IntegrityError:
            holder = self.find(phone)
            if holder is None:  # released meanwhile: try once more
                return self.claim(phone, subject_id)
            return None if holder == subject_id else holder
        return None

    def release(self, phone: str) -> None:
        digest = self.hash(phone)
        with self.engine.begin() as conn:
            conn.execute(sa.delete(phone_index).where(phone_index.c.phone_hash == digest))

    def erase_subject(self, subject_id: str, conn: Connection | None = None) -> int:
        stmt = sa.delete(phone_index).where(phone_index.c.subject_id == subject_id)
        if conn is not None:
            return int(conn.execute(stmt).rowcount)
        with self.engine.begin() as c:
            return int(c.execute(stmt).rowcount)
