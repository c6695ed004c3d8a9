"""What each citizen has agreed to release to each agency."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from digital_id.db.base import Base
from digital_id.db.types import BigIntegerId, UtcDateTime


class Consent(Base):
    """One per citizen and agency: the claims granted so far. Withdrawal keeps the row (with
    ``revoked_at``) so the history survives; granting again clears it."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("citizen_id", "client_id"),)

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    citizen_id: Mapped[int] = mapped_column(
        BigIntegerId, ForeignKey("citizens.id", ondelete="CASCADE")
    )
    client_id: Mapped[int] = mapped_column(
        BigIntegerId, ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    claims: Mapped[list[str]] = mapped_column(JSON)
    granted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The guardian who last granted it for the citizen, a child; None: the citizen did.
    given_by_citizen_id: Mapped[int | None] = mapped_column(
        BigIntegerId, ForeignKey("citizens.id", ondelete="CASCADE"), index=True
    )


class ConsentReceipt(Base):
    """A signed record of one consent decision, kept for the citizen to download. The JWT is
    the receipt; the other columns find it."""

    __tablename__ = "consent_receipts"

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    receipt_id: Mapped[str] = mapped_column(String(32), unique=True)
    citizen_id: Mapped[int] = mapped_column(
        BigIntegerId, ForeignKey("citizens.id", ondelete="CASCADE"), index=True
    )
    client_id: Mapped[int] = mapped_column(
        BigIntegerId, ForeignKey("clients.id", ondelete="CASCADE")
    )
    decision: Mapped[str] = mapped_column(String(16))
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    token: Mapped[str] = mapped_column(Text)
    # The guardian who decided for the citizen, a child; None: the citizen did.
    actor_citizen_id: Mapped[int | None] = mapped_column(
        BigIntegerId, ForeignKey("citizens.id", ondelete="CASCADE"), index=True
    )
