"""Agency client registrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from digital_id.db.base import Base
from digital_id.db.types import BigIntegerId, UtcDateTime


class Client(Base):
    """One agency app known to Digital ID.

    ``registration`` holds the validated RFC 7591 metadata; ``client_secret_hash`` the
    SHA-256 of the secret (secrets are 256-bit random, so a fast hash is enough), never the
    secret itself.
    """

    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    client_name: Mapped[str] = mapped_column(String(200))
    registration: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"))
    client_secret_hash: Mapped[str | None] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    secret_rotated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # An operator's suspension of the agency's data-sharing agreement (clients.agreements):
    # nothing is released while it holds.
    suspended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    suspension_reason: Mapped[str | None] = mapped_column(String(500))

    def display_name(self, language: str) -> str:
        """The name the agency registered for ``language``, else its default name."""
        return str(
            self.registration.get(f"client_name#{language}")
            or self.registration.get("client_name")
            or self.client_id
        )


class ClientsVersion(Base):
    """One row whose ``version`` a database trigger bumps on every change to ``clients``
    (any writer: the CLI, a migration, plain SQL), so a server's cache of registrations
    (``clients.cache``) sees a change with one small read."""

    __tablename__ = "clients_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)
