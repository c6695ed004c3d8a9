"""Reading the register."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.db.types import storable
from digital_id.registry.models import Citizen


def find_by_nik(session: Session, nik: str) -> Citizen | None:
    if not storable(nik):
        return None
    return session.scalars(select(Citizen).where(Citizen.nik == nik)).one_or_none()


def get(session: Session, citizen_id: int) -> Citizen:
    """The citizen with this id, who must exist (a session or an account names them)."""
    return session.get_one(Citizen, citizen_id)


def age_on(birth_date: date, today: date) -> int:
    """Whole years from ``birth_date`` to ``today`` (a birthday counts on its day)."""
    return (
        today.year
        - birth_date.year
        - ((today.month, today.day) < (birth_date.month, birth_date.day))
    )
