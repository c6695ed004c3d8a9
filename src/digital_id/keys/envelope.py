"""Encryption at rest for key-store files.

No well-kept library offers an encrypted key-file store, so this composes the `cryptography`
package's primitives: one key-encryption key per store, derived from the passphrase with
scrypt (salt and cost kept in the manifest), and AES-256-GCM per file with a fresh nonce and
the file's role (its kid or secret name) as associated data, so files cannot be swapped.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class KdfParameters:
    salt: str
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    @classmethod
    def fresh(cls) -> KdfParameters:
        return cls(salt=b64encode(os.urandom(16)))

    def as_dict(self) -> dict[str, object]:
        return {"name": "scrypt", "salt": self.salt, "n": self.n, "r": self.r, "p": self.p}


class DecryptionError(Exception):
    pass


class Envelope:
    def __init__(self, passphrase: str, kdf: KdfParameters) -> None:
        derived = Scrypt(salt=b64decode(kdf.salt), length=32, n=kdf.n, r=kdf.r, p=kdf.p).derive(
            passphrase.encode("utf-8")
        )
        self._aead = AESGCM(derived)

    def seal(self, plaintext: bytes, label: str) -> str:
        nonce = os.urandom(12)
        return b64encode(nonce + self._aead.encrypt(nonce, plaintext, label.encode("utf-8")))

    def open(self, sealed: str, label: str) -> bytes:
        raw = b64decode(sealed)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], label.encode("utf-8"))
        except InvalidTag:
            raise DecryptionError(label) from None
