"""The rate-limit counters: one row per subject and window."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from digital_id.db.base import Base
from digital_id.db.types import UtcDateTime


class RateLimitWindow(Base):
    """How many times one subject (an IP address, a NIK, a client) did one thing in one fixed
    window. ``subject_key`` is a keyed hash of the scope and the value, never the value: an IP
    address or a NIK is personal data and has no business in a counter table."""

    __tablename__ = "rate_limit_windows"

    subject_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_ends_at: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True, index=True)
    # Which limit the row counts for, so an operator can see what is being limited.
    scope: Mapped[str] = mapped_column(String(32))
    hits: Mapped[int] = mapped_column(Integer)
