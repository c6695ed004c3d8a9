"""Reading the register."""

from __future__ import annotations

from collections.abc import Iterable
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


def full_names(session: Session, citizen_ids: Iterable[int | None]) -> dict[int, str]:
    """The names of the citizens with these ids (None is skipped), by id: one query."""
    wanted = {citizen_id for citizen_id in citizen_ids if citizen_id is not None}
    if not wanted:
        return {}
    rows = session.execute(select(Citizen.id, Citizen.full_name).where(Citizen.id.in_(wanted)))
    return {row.id: row.full_name for row in rows}


def age_on(birth_date: date, today: date) -> int:
    """Whole years from ``birth_date`` to ``today`` (a birthday counts on its day)."""
    return (
        today.year
        - birth_date.year
        - ((today.month, today.day) < (birth_date.month, birth_date.day))
    )
