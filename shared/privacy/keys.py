"""Personal data: encrypted with a key per data subject.

- ``KeyStore``: each data subject (a caller; an anonymous contact is its own subject)
  gets a random AES-256-GCM key, kept in ``subject_keys`` wrapped by the master key
  from settings. ``seal`` turns a value into an opaque token that events and read
  models store; ``open`` turns it back, or answers ``None`` once the subject's key is
  erased (crypto-shredding: the append-only store keeps its events, unreadable).
- The phone index is in ``phones.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
from datetime import UTC, datetime

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from shared.kernel import ERASED, TOKEN_PREFIX, RuleBroken, is_sealed

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



class MasterKeyMismatch(RuntimeError):
    """The configured master key cannot unwrap this database's keys."""


class ErasedSubject(RuleBroken):
    """Sealing was asked for a subject whose key was destroyed (a 422: nothing personal
    may be recorded for an erased person)."""


def derive_key(master_key: bytes, purpose: str) -> bytes:
    return hmac.new(master_key, f"solidarity:{purpose}".encode(), hashlib.sha256).digest()


class KeyStore:
    """Per-subject data keys, wrapped by the master key."""

    def __init__(self, engine: Engine, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError("the master key must be 32 bytes (64 hex characters)")
        self.engine = engine
        self._wrap = AESGCM(derive_key(master_key, "wrap-subject-keys"))
        self._cache: dict[str, bytes] = {}
        self._erasures = 0  # bumped by every erasure (see _key)
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

    def _stored(self, subject_id: str) -> bytes | None:
        """The subject's wrapped key as stored, if any."""
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(subject_keys.c.wrapped_key).where(
                    subject_keys.c.subject_id == subject_id
                )
            ).scalar()
        return None if value is None else bytes(value)

    def _key(self, subject_id: str, create: bool) -> bytes | None:
        with self._lock:
            if subject_id in self._cache:
                return self._cache[subject_id]
            erasures = self._erasures
        wrapped = self._stored(subject_id)
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
            key = self._unwrap(subject_id, wrapped)
        with self._lock:
            # A key read before an erasure committed is not kept: cached after the
            # erasure dropped it from the cache, it would stay readable in memory.
            if self._erasures == erasures:
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
            self._erasures += 1
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
            self._erasures += 1
        with self.engine.begin() as c:
            c.execute(sa.delete(subject_keys).where(subject_keys.c.subject_id == subject_id))

    def is_erased(self, subject_id: str, conn: Connection | None = None) -> bool:
        stmt = sa.select(erased_subjects.c.subject_id).where(
            erased_subjects.c.subject_id == subject_id)
        if conn is not None:
            return conn.execute(stmt).first() is not None
        with self.engine.connect() as c:
            return c.execute(stmt).first() is not None
