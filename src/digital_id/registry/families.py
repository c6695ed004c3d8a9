"""Families as the register records them: each member's relationship within the family card
(SHDK). An import may bring an impossible family (two heads, or a child older than the head
of the family); such a card's relationships are refused as a whole (``refuse_impossible``),
so nobody can act for anyone on it until the register is corrected."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased

from digital_id.registry.models import Citizen
from digital_id.registry.nik import mask_nik
from digital_id.registry.vocabulary import CHILD, KEPALA_KELUARGA


@dataclass(frozen=True)
class RefusedFamily:
    """A family card whose relationships were refused, and why (its number masked)."""

    kk_number: str
    reason: str

    @property
    def masked(self) -> str:
        return mask_nik(self.kk_number)


def impossible_families(session: Session) -> list[RefusedFamily]:
    """The family cards with two heads or more, or a child older than the head."""
    heads = session.scalars(
        select(Citizen.kk_number)
        .where(Citizen.family_relationship == KEPALA_KELUARGA)
        .group_by(Citizen.kk_number)
        .having(func.count() > 1)
    ).all()
    child, head = aliased(Citizen), aliased(Citizen)
    older_children = session.scalars(
        select(child.kk_number)
        .join(
            head,
            (head.kk_number == child.kk_number) & (head.family_relationship == KEPALA_KELUARGA),
        )
        .where(child.family_relationship == CHILD, child.birth_date < head.birth_date)
        .distinct()
    ).all()
    refused = dict.fromkeys(heads, "two heads of the family")
    for kk in older_children:
        refused.setdefault(kk, "a child older than the head of the family")
    return [RefusedFamily(kk, reason) for kk, reason in sorted(refused.items())]


def refuse_impossible(session: Session, *, now: datetime) -> list[RefusedFamily]:
    """Clear the relationships on every impossible family card; the refused cards (the
    caller records them in the audit trail, which this layer does not reach)."""
    refused = impossible_families(session)
    for family in refused:
        session.execute(
            update(Citizen)
            .where(Citizen.kk_number == family.kk_number)
            .values(family_relationship="", updated_at=now)
        )
    return refused
