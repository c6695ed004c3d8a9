"""A citizen's login credentials, kept apart from the register record."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from digital_id.db.base import Base
from digital_id.db.types import BigIntegerId, UtcDateTime


class CitizenAccount(Base):
    """One per citizen who has been offered or completed activation.

    The failure counters and locks (one for the PIN, one for the second factor) live in the
    database, so a lock survives restarts and holds across every worker.
    """

    __tablename__ = "citizen_accounts"

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    citizen_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),
        ForeignKey("citizens.id", ondelete="CASCADE"),
        unique=True,
    )
    pin_hash: Mapped[str | None] = mapped_column(String(200))
    activated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    activation_code_hash: Mapped[str | None] = mapped_column(String(64))
    activation_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    lock_count: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The second factor: secrets sealed by accounts.totp.TotpCipher, never in the clear.
    totp_secret: Mapped[str | None] = mapped_column(String(200))
    totp_pending_secret: Mapped[str | None] = mapped_column(String(200))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    totp_enrolled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Wrong one-time codes count apart from wrong PINs: whoever is asked for a code has just
    # passed the PIN, and a PIN success must not give them a fresh round of guesses.
    otp_failed_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    otp_lock_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    otp_locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Set by an operator; kept apart from the register's status, which an import rewrites.
    blocked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The WebAuthn user handle every passkey of the citizen carries (random, never the NIK:
    # authenticators may show or sync it), made at the first enrolment.
    passkey_user_handle: Mapped[str | None] = mapped_column(String(64), unique=True)


class RecognisedBrowser(Base):
    """A browser where the citizen logged in successfully, named by its signed cookie
    (``accounts.browsers``) until ``expires_at``.

    It has a failure counter and lock of its own, so the lock strangers cause on the account
    (``CitizenAccount``) does not stop the citizen here, while wrong PINs typed here still
    lock this browser and cannot be tried without end."""

    __tablename__ = "recognised_browsers"

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    # The random name the cookie carries (signed, so it cannot be guessed or made up).
    public_id: Mapped[str] = mapped_column(String(43), unique=True)
    citizen_id: Mapped[int] = mapped_column(
        BigIntegerId, ForeignKey("citizens.id", ondelete="CASCADE"), index=True
    )
    recognised_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_login_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    lock_count: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Passkey(Base):
    """A passkey the citizen enrolled (WebAuthn Level 3): its credential id and public key
    (COSE), the authenticator's signature counter, the name the citizen gave it, and whether
    it is bound to one device (``hwk``) or may be synced (``swk``, RFC 8176)."""

    __tablename__ = "passkeys"

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    citizen_id: Mapped[int] = mapped_column(
        BigIntegerId, ForeignKey("citizens.id", ondelete="CASCADE"), index=True
    )
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)  # base64url
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(64))
    device_bound: Mapped[bool] = mapped_column(Boolean)
    transports: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class PasskeyChallenge(Base):
    """A challenge the server gave a browser for one ceremony: single use (taken by one
    DELETE), for five minutes, for enrolment by one citizen or for a login (by anyone, or by
    one citizen when stepping up)."""

    __tablename__ = "passkey_challenges"

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    challenge_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(10))
    citizen_id: Mapped[int | None] = mapped_column(
        BigIntegerId, ForeignKey("citizens.id", ondelete="CASCADE")
    )
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
