"""Reading the register."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.registry.models import Citizen


def find_by_nik(session: Session, nik: str) -> Citizen | None:
    return session.scalars(select(Citizen).where(Citizen.nik == nik)).one_or_none()


def family_members(session: Session, kk_number: str) -> list[Citizen]:
    """Everyone on one family card (Kartu Keluarga), oldest first."""
    statement = select(Citizen).where(Citizen.kk_number == kk_number).order_by(Citizen.birth_date)
    return list(session.scalars(statement))
