"""The per-subject key store on both stores: a wrong master key is refused at start."""

from __future__ import annotations

import pytest

from shared.config import Settings


def test_a_different_master_key_is_refused_at_start(settings: Settings) -> None:
    from shared.eventstore.store import create_engine
    from shared.privacy import KeyStore, MasterKeyMismatch

    engine = create_engine(settings, "contact")
    try:
        keys = KeyStore(engine, bytes(32))
        token = keys.seal("subject-1", "Bluebell")
        assert KeyStore(engine, bytes(32)).open(token) == "Bluebell"  # same key: fine
        with pytest.raises(MasterKeyMismatch):
            KeyStore(engine, b"\x01" * 32)
    finally:
        engine.dispose()


def _file_bytes(settings: Settings, service: str) -> bytes:
    path = settings.sqlite_path(service)
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal"))
                    if p.exists())


def _wrapped(engine: object, subject: str) -> bytes:
    import sqlalchemy as sa

    from shared.privacy.keys import subject_keys

    with engine.connect() as conn:  # type: ignore[attr-defined]
        value = conn.execute(sa.select(subject_keys.c.wrapped_key)
                             .where(subject_keys.c.subject_id == subject)).scalar()
    assert value is not None
    return bytes(value)


def _checkpoint(engine: object) -> None:
    """Everything in the write-ahead log into the file (outside any transaction)."""
    with engine.connect() as conn:  # type: ignore[attr-defined]
        conn.connection.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").close()


def test_shredding_leaves_no_byte_of_the_key_in_a_sqlite_file(tmp_path: object) -> None:
    """``KeyStore.erase`` alone deletes the row but leaves its bytes in the SQLite
    write-ahead log (the test proves it can fail); ``shred`` zeroes them and empties the
    log, and runs ``also`` (the phone index's deletion) in the same transaction."""
    import sqlalchemy as sa

    from shared.eventstore.store import create_engine
    from shared.privacy import KeyStore
    from shared.privacy.shred import shred

    settings = Settings(data_dir=tmp_path)  # type: ignore[call-arg]
    engine = create_engine(settings, "contact")
    try:
        keys = KeyStore(engine, bytes(32))
        plain, shredded = keys.seal("s-plain", "Bluebell"), keys.seal("s-shred", "Primrose")
        assert keys.open(plain) == "Bluebell" and keys.open(shredded) == "Primrose"
        plain_key, shredded_key = _wrapped(engine, "s-plain"), _wrapped(engine, "s-shred")
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE also_gone (v BLOB)"))
            conn.execute(sa.text("INSERT INTO also_gone VALUES (:v)"), {"v": b"HASH-0123456789"})
        _checkpoint(engine)
        assert plain_key in _file_bytes(settings, "contact")

        assert keys.erase("s-plain") is True
        assert plain_key in _file_bytes(settings, "contact")  # deleted, still in the log

        assert shred(engine, keys, "s-shred",
                     also=lambda conn: conn.execute(sa.text("DELETE FROM also_gone"))) is True
        stored = _file_bytes(settings, "contact")
        assert shredded_key not in stored and b"HASH-0123456789" not in stored
        assert keys.open(shredded) is None and keys.is_erased("s-shred")
        assert shred(engine, keys, "s-shred") is False  # again: nothing left to destroy
    finally:
        engine.dispose()


def test_a_key_read_while_it_is_erased_is_not_kept_in_memory(tmp_path: object) -> None:
    """A reader that loaded the key just before an erasure committed must not put it in
    the cache after the erasure emptied it: the data would stay readable until restart.
    Here the erasure runs between the reader's load and its caching."""
    from shared.eventstore.store import create_engine
    from shared.privacy import KeyStore
    from shared.privacy.shred import shred

    class Racing(KeyStore):
        erase_while_loading = False

        def _stored(self, subject_id: str) -> bytes | None:
            wrapped = super()._stored(subject_id)
            if self.erase_while_loading:
                self.erase_while_loading = False
                shred(self.engine, self, subject_id)
            return wrapped

    settings = Settings(data_dir=tmp_path)  # type: ignore[call-arg]
    engine = create_engine(settings, "outreach")
    try:
        keys = Racing(engine, bytes(32))
        token = keys.seal("C-RACE0001", "1 Chapel Street")
        keys._cache.clear()  # a fresh process: the key is read from the store
        keys.erase_while_loading = True
        assert keys.open(token) == "1 Chapel Street"  # read before the erasure: shown once
        assert keys.open(token) is None and keys.reveal(token) == "[erased]"
        assert "C-RACE0001" not in keys._cache
    finally:
        engine.dispose()
