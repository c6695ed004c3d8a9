"""The second factor: time-based one-time passwords (RFC 6238; 6 digits, 30 s, one step of
drift either way), with pyotp for the codes and segno for the enrolment QR code.

Secrets are encrypted at rest with AES-256-GCM under a key from the key store, bound to the
citizen they belong to (a secret copied to another row does not open). Each code is accepted
once: the time step it matched is stored, and a code for that step or an earlier one is
refused.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DIGITS = 6
INTERVAL = 30
DRIFT_STEPS = 1


class TotpCipher:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, citizen_id: int, secret: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, secret.encode("ascii"), _bound_to(citizen_id))
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, citizen_id: int, stored: str) -> str | None:
        try:
            raw = base64.b64decode(stored)
            return self._aead.decrypt(raw[:12], raw[12:], _bound_to(citizen_id)).decode("ascii")
        except (InvalidTag, ValueError):
            return None


def new_secret() -> str:
    return pyotp.random_base32()  # 160 bits, as RFC 4226 recommends


def matching_step(secret: str, code: str, *, now: datetime) -> int | None:
    """The time step ``code`` is valid for (now, or one step either side), else None."""
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)
    current = totp.timecode(now)
    for offset in range(-DRIFT_STEPS, DRIFT_STEPS + 1):
        step = current + offset
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


@dataclass(frozen=True)
class Enrolment:
    """What the enrolment page shows: the secret as text and as a QR code."""

    secret: str
    uri: str

    @property
    def grouped_secret(self) -> str:
        return " ".join(self.secret[i : i + 4] for i in range(0, len(self.secret), 4))

    @property
    def qr_svg(self) -> str:
        # Inline SVG: no script, no image fetch, nothing for the page's CSP to allow.
        svg: str = segno.make(self.uri, error="m").svg_inline(scale=5, title="QR")
        return svg


def enrolment(secret: str, *, account_name: str, issuer_name: str) -> Enrolment:
    uri = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL).provisioning_uri(
        name=account_name, issuer_name=issuer_name
    )
    return Enrolment(secret, uri)


def _bound_to(citizen_id: int) -> bytes:
    return f"digital-id totp|{citizen_id}".encode("ascii")
