"""The audit trail's tables: the events, and the head of their hash chain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from digital_id.db.base import Base
from digital_id.db.types import BigIntegerId, UtcDateTime


class AuditEvent(Base):
    """One security event. ``hash`` covers every field and the previous event's hash, so an
    edited, deleted or inserted row breaks the chain. Rows are only ever appended."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    sequence: Mapped[int] = mapped_column(BigIntegerId, unique=True)
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


class AuditHead(Base):
    """The chain's one head row. Appending locks it first (a row lock on PostgreSQL, the write
    lock on SQLite), so concurrent writers in any number of workers append one at a time and
    the chain never forks; it also shows a truncated tail."""

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sequence: Mapped[int] = mapped_column(BigIntegerId)
    hash: Mapped[str] = mapped_column(String(64))
