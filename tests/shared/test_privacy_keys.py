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
