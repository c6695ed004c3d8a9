"""Who may act for whom, from the family card: a parent on the card (its head, or the head's
husband or wife) may act for a member recorded as the head's child (``ANAK``) who is under 17
and unmarried (the age of an adult's identity card, UU 24/2013 article 63). One rule,
``may_act_for``, that every delegated login and token asks."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.db.types import WIB
from digital_id.registry.models import Citizen
from digital_id.registry.service import age_on
from digital_id.registry.vocabulary import CHILD, PARENTS

ADULT_AGE = 17
UNMARRIED = "BELUM KAWIN"


def may_act_for(guardian: Citizen, child: Citizen, today: date) -> bool:
    """Whether ``guardian`` may act for ``child`` today, as the register stands."""
    return (
        guardian.id != child.id
        and guardian.kk_number == child.kk_number
        and guardian.family_relationship in PARENTS
        and child.family_relationship == CHILD
        and guardian.status == "active"
        and child.status == "active"
        and child.marital_status == UNMARRIED
        and age_on(child.birth_date, today) < ADULT_AGE
    )


def today_in_indonesia(now: datetime) -> date:
    """The day a delegation is judged on: the calendar's in western Indonesia (WIB), so a
    child's 17th birthday ends it at midnight there, as an agreement's expiry does."""
    return now.astimezone(WIB).date()


def children_in_care(session: Session, guardian: Citizen, today: date) -> list[Citizen]:
    """The members of the guardian's family card they may act for today, youngest first."""
    if guardian.family_relationship not in PARENTS:
        return []
    members = session.scalars(
        select(Citizen)
        .where(Citizen.kk_number == guardian.kk_number, Citizen.family_relationship == CHILD)
        .order_by(Citizen.birth_date.desc())
    )
    return [child for child in members if may_act_for(guardian, child, today)]
