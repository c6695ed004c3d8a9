"""The population register's tables."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from digital_id.db.base import Base
from digital_id.db.types import BigIntegerId, UtcDateTime
from digital_id.registry import vocabulary


def _one_of(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join("'" + value.replace("'", "''") + "'" for value in values)
    return f"{column} IN ({quoted})"


class Citizen(Base):
    """One resident's record, holding what the e-KTP holds.

    ``id`` is internal and never leaves the service; the NIK identifies the record to
    operators and is never used as an OpenID Connect subject.
    """

    __tablename__ = "citizens"

    id: Mapped[int] = mapped_column(BigIntegerId, primary_key=True, autoincrement=True)
    nik: Mapped[str] = mapped_column(String(16), unique=True)
    kk_number: Mapped[str] = mapped_column(String(16))
    full_name: Mapped[str] = mapped_column(String(120))
    birth_place: Mapped[str] = mapped_column(String(80))
    birth_date: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(1))
    blood_type: Mapped[str] = mapped_column(String(3))
    religion: Mapped[str] = mapped_column(String(40))
    marital_status: Mapped[str] = mapped_column(String(20))
    occupation: Mapped[str] = mapped_column(String(80))
    nationality: Mapped[str] = mapped_column(String(3))
    street: Mapped[str] = mapped_column(String(200))
    rt: Mapped[str] = mapped_column(String(3))
    rw: Mapped[str] = mapped_column(String(3))
    village: Mapped[str] = mapped_column(String(80))
    district_code: Mapped[str] = mapped_column(String(6))
    status: Mapped[str] = mapped_column(String(10), default="active")
    # The member's relationship within the family card (SHDK), "" when the register has none.
    family_relationship: Mapped[str] = mapped_column(String(20), default="", server_default="")
    record_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_citizens_kk_number", "kk_number"),
        CheckConstraint(_one_of("sex", vocabulary.SEXES), name="sex"),
        CheckConstraint(_one_of("blood_type", vocabulary.BLOOD_TYPES), name="blood_type"),
        CheckConstraint(_one_of("religion", vocabulary.RELIGIONS), name="religion"),
        CheckConstraint(
            _one_of("marital_status", vocabulary.MARITAL_STATUSES), name="marital_status"
        ),
        CheckConstraint(_one_of("nationality", vocabulary.NATIONALITIES), name="nationality"),
        CheckConstraint(_one_of("status", vocabulary.CITIZEN_STATUSES), name="status"),
        CheckConstraint("record_version >= 1", name="record_version_positive"),
    )
