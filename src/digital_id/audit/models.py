"""The audit trail's tables: the events, the heads of their hash chains, and the signed
checkpoints over those heads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from digital_id.db.base import Base
from digital_id.db.types import BigIntegerId, UtcDateTime


class AuditEvent(Base):
    """One security event in one chain. ``hash`` covers every field and the previous event's
    hash in the same chain, so an edited, deleted or inserted row breaks that chain. Rows are
    only ever appended."""

    __tablename__ = "audit_events"
    __table_args__ = (UniqueConstraint("chain", "sequence"),)

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    chain: Mapped[int] = mapped_column(BigIntegerId, ForeignKey("audit_chains.id"))
    sequence: Mapped[int] = mapped_column(BigIntegerId)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    tag: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(64), index=True)
    request_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    previous_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditChain(Base):
    """The head of one chain: its last sequence number and hash. A writer locks the row while
    it appends (a row lock on PostgreSQL, the write lock on SQLite), so a chain never forks;
    the head also shows a truncated tail. Each process appends to chains of its own, so their
    locks are not contended (see ``audit.chains``). The id comes from the database, so no two
    processes or servers ever make the same chain."""

    __tablename__ = "audit_chains"

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    sequence: Mapped[int] = mapped_column(BigIntegerId)
    hash: Mapped[str] = mapped_column(String(64))
    # When it was last appended to (or taken): a chain idle for long was left by a process
    # that ended, and a new process takes it rather than making one more.
    appended_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AuditCheckpoint(Base):
    """Every chain's head at one moment, signed (a JWS by the key store's active signing
    key), so a chain cut back or deleted after it is caught, and by anyone holding the
    published JWKS."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    token: Mapped[str] = mapped_column(Text)
