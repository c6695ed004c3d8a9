"""Finding a citizen's account row: the one that exists, or one made on first need."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.accounts.models import CitizenAccount
from digital_id.registry.models import Citizen
from digital_id.registry.service import find_by_nik


class CitizenNotFoundError(Exception):
    """No citizen with that NIK in the register."""


def existing_account(session: Session, citizen: Citizen | None) -> CitizenAccount | None:
    if citizen is None:
        return None
    return session.scalars(
        select(CitizenAccount).where(CitizenAccount.citizen_id == citizen.id)
    ).one_or_none()


def account_for(session: Session, citizen: Citizen, now: datetime) -> CitizenAccount:
    """The citizen's account row, added (not yet activated) when there is none."""
    account = existing_account(session, citizen)
    if account is None:
        account = CitizenAccount(
            citizen_id=citizen.id, failed_attempts=0, lock_count=0, updated_at=now
        )
        session.add(account)
    return account


def registered_citizen(session: Session, nik: str) -> Citizen:
    """The register's record for a NIK an operator or a seeding script names."""
    citizen = find_by_nik(session, nik)
    if citizen is None:
        raise CitizenNotFoundError("no citizen with that NIK in the register")
    return citizen
