"""The grant tables: authorization grants, codes (hashed), refresh tokens, revoked access tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from digital_id.db.base import Base
from digital_id.db.types import BigIntegerId, UtcDateTime


class AuthorizationGrant(Base):
    """One approved authorization: a citizen, an agency, the session it came from and the
    claims released. Every token belongs to one; revoking it stops them all at UserInfo.
    ``public_id`` is what access tokens carry (as the prefix of their ``jti``)."""

    __tablename__ = "authorization_grants"

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    citizen_id: Mapped[int] = mapped_column(
        BigIntegerId, ForeignKey("citizens.id", ondelete="CASCADE"), index=True
    )
    client_id: Mapped[int] = mapped_column(
        BigIntegerId, ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    session_id: Mapped[int | None] = mapped_column(
        BigIntegerId, ForeignKey("browser_sessions.id", ondelete="SET NULL"), index=True
    )
    scope: Mapped[str] = mapped_column(String(1000))
    userinfo_claims: Mapped[list[str]] = mapped_column(JSON)
    id_token_claims: Mapped[list[str]] = mapped_column(JSON)
    acr: Mapped[str] = mapped_column(String(100))
    amr: Mapped[list[str]] = mapped_column(JSON)
    auth_time: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The refresh token family: the generation of its one live token, and when it ends.
    refresh_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    offline_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The agency API the grant's access tokens are made out to (RFC 8707), or None: the
    # client itself.
    resource: Mapped[str | None] = mapped_column(String(2000))
    # The guardian who acted for the citizen, a child (``accounts.delegation``): the session
    # and the authentication are theirs, the claims the child's. None: the citizen themselves.
    actor_citizen_id: Mapped[int | None] = mapped_column(
        BigIntegerId, ForeignKey("citizens.id", ondelete="CASCADE"), index=True
    )


class RefreshToken(Base):
    """One refresh token, stored as its SHA-256. Tokens of a grant form a family; only the
    newest generation is live, an older one only within the grace window after it was rotated."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    grant_id: Mapped[int] = mapped_column(
        BigIntegerId, ForeignKey("authorization_grants.id", ondelete="CASCADE"), index=True
    )
    generation: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    idle_until: Mapped[datetime] = mapped_column(UtcDateTime)
    rotated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # A public client's token is bound to the DPoP key it was issued with (RFC 9449 section
    # 5): only a refresh request proving that key exchanges it.
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))


class AuthorizationCode(Base):
    """A code as issued: only its SHA-256, bound to the client, redirect URI, PKCE challenge
    and nonce. ``redeemed_at`` is set by the one redemption that wins."""

    __tablename__ = "authorization_codes"
    __table_args__ = (Index(None, "client_id", "nonce"),)

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    grant_id: Mapped[int] = mapped_column(
        BigIntegerId, ForeignKey("authorization_grants.id", ondelete="CASCADE"), index=True
    )
    client_id: Mapped[int] = mapped_column(
        BigIntegerId, ForeignKey("clients.id", ondelete="CASCADE")
    )
    redirect_uri: Mapped[str | None] = mapped_column(String(2000))
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(10))
    nonce: Mapped[str | None] = mapped_column(String(512))
    # The DPoP key (RFC 7638 thumbprint) the code is bound to (RFC 9449 section 10): only a
    # token request proving that key redeems it.
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    redeemed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class RevokedAccessToken(Base):
    """A revoked access token that no grant stands behind (client credentials), kept until
    it would have expired anyway."""

    __tablename__ = "revoked_access_tokens"

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    jti: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class DeviceAuthorization(Base):
    """One device authorization request (RFC 8628): a kiosk's, named by the digests of its
    device code (which the kiosk polls with) and its user code (which the citizen types).

    Its life: ``pending``; ``claimed_at`` once a browser entered the user code (that browser
    alone may go on, by the claim's digest); ``approved`` with its ``grant_id`` or
    ``denied`` once the citizen decided; ``redeemed_at`` set by the one poll that took the
    tokens."""

    __tablename__ = "device_authorizations"

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    client_id: Mapped[int] = mapped_column(
        BigIntegerId, ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    device_code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(1000))
    # The request's other parameters (claims, acr_values, ui_locales), as sent.
    parameters: Mapped[list[list[str]]] = mapped_column(JSON)
    interval: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    last_polled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claim_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    grant_id: Mapped[int | None] = mapped_column(
        BigIntegerId, ForeignKey("authorization_grants.id", ondelete="CASCADE")
    )
    redeemed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
