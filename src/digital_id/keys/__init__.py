"""Signing keys and server secrets: an encrypted key store on disk, its lifecycle, the JWKS."""

from digital_id.keys.errors import (
    KeyRuleError,
    KeyStoreError,
    UnknownKeyError,
    WrongPassphraseError,
)
from digital_id.keys.records import KeyRecord, KeyState
from digital_id.keys.store import ALGORITHMS, KeySnapshot, KeyStore

__all__ = [
    "ALGORITHMS",
    "KeyRecord",
    "KeyRuleError",
    "KeySnapshot",
    "KeyState",
    "KeyStore",
    "KeyStoreError",
    "UnknownKeyError",
    "WrongPassphraseError",
]
