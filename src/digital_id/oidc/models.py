"""The protocol's replay caches (client-assertion, request-object and DPoP-proof ``jti``s
already used) and the pushed authorization requests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from digital_id.db.base import Base
from digital_id.db.types import BigIntegerId, UtcDateTime


class SeenClientAssertion(Base):
    """A ``jti`` a client has used in a private_key_jwt assertion, kept until the assertion
    expires, so no assertion is accepted twice by any worker."""

    __tablename__ = "seen_client_assertions"
    __table_args__ = (UniqueConstraint("client_id", "jti"),)

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    client_id: Mapped[int] = mapped_column(
        BigIntegerId, ForeignKey("clients.id", ondelete="CASCADE")
    )
    jti: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class SeenRequestObject(Base):
    """A ``jti`` a client has used in a request object that started an authorization flow,
    kept until the object expires: a second start with it, by anyone, is a replay."""

    __tablename__ = "seen_request_objects"
    __table_args__ = (UniqueConstraint("client_id", "jti"),)

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    client_id: Mapped[int] = mapped_column(
        BigIntegerId, ForeignKey("clients.id", ondelete="CASCADE")
    )
    jti: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class PushedAuthorizationRequest(Base):
    """An authorization request a client pushed (RFC 9126), validated and kept for the
    ``request_uri`` that names it. It starts one flow, before ``expires_at``; once taken, the
    flow's login, second-factor and consent steps read it until ``kept_until``."""

    __tablename__ = "pushed_authorization_requests"

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    client_id: Mapped[int] = mapped_column(
        BigIntegerId, ForeignKey("clients.id", ondelete="CASCADE")
    )
    # The SHA-256 of the request URI's random part: a database read does not give live URIs.
    reference_digest: Mapped[str] = mapped_column(String(64), unique=True)
    # The request's parameters as validated, a JSON array of [name, value] pairs.
    parameters: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    taken_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    kept_until: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class SeenDPoPProof(Base):
    """A DPoP proof's ``jti`` (RFC 9449 section 11.1), per key, kept until the proof is too
    old to be accepted anyway: a proof is good for one request, at any worker."""

    __tablename__ = "seen_dpop_proofs"
    __table_args__ = (UniqueConstraint("jkt", "jti"),)

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    jkt: Mapped[str] = mapped_column(String(64))  # the key's RFC 7638 thumbprint
    jti: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
