"""The server-side record behind a citizen's browser session, and the back-channel logouts its end owes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from digital_id.db.base import Base
from digital_id.db.types import BigIntegerId, UtcDateTime
from digital_id.registry.models import Citizen


class BrowserSession(Base):
    """One logged-in browser. The cookie holds a random token whose SHA-256 is stored here;
    ``sid`` is the public session identifier agencies see in ID tokens."""

    __tablename__ = "browser_sessions"

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    sid: Mapped[str] = mapped_column(String(43), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    citizen_id: Mapped[int] = mapped_column(
        BigIntegerId, ForeignKey("citizens.id", ondelete="CASCADE"), index=True
    )
    auth_time: Mapped[datetime] = mapped_column(UtcDateTime)
    acr: Mapped[str] = mapped_column(String(100))
    amr: Mapped[list[str]] = mapped_column(JSON)
    device_hint: Mapped[str | None] = mapped_column(String(200))
    # The recognised browser (``accounts.models.RecognisedBrowser``) the login was on: a lock
    # applies to the session, and to the tokens it gave, as it applies to that browser.
    recognised_browser_id: Mapped[int | None] = mapped_column(
        BigIntegerId, ForeignKey("recognised_browsers.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Loaded with the session where it is resumed (``service.resume``): a page that acts
    # for the session needs its citizen, and gets them without a second statement.
    citizen: Mapped[Citizen] = relationship(Citizen, lazy="select", viewonly=True)


class LogoutDelivery(Base):
    """A back-channel logout owed to an agency (an outbox row, written in the logout's own
    transaction). Any worker may deliver it; the logout token is signed at each attempt."""

    __tablename__ = "logout_deliveries"

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    client_id: Mapped[int] = mapped_column(
        BigIntegerId, ForeignKey("clients.id", ondelete="CASCADE")
    )
    sub: Mapped[str] = mapped_column(String(64))
    sid: Mapped[str] = mapped_column(String(43))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    abandoned_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
