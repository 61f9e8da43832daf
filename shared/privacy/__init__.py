"""Privacy primitives: per-subject keys (``keys``), the phone index (``phones``) and
erasure that leaves no byte behind (``shred``)."""

from shared.privacy.keys import ErasedSubject, KeyStore, MasterKeyMismatch
from shared.privacy.phones import PhoneIndex, normalise_uk_phone

__all__ = ["ErasedSubject", "KeyStore", "MasterKeyMismatch", "PhoneIndex", "normalise_uk_phone"]
