"""What a citizen's consent looks like to them: the agencies with access, each with its
latest receipt, and the receipts themselves (the portal lists these)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.clients.models import Client
from digital_id.consent.models import Consent, ConsentReceipt
from digital_id.db.types import storable


@dataclass(frozen=True)
class AgencyAccess:
    """An agency a citizen's standing consent covers."""

    client_id: str
    name: str
    consent: Consent
    latest_receipt: str | None


def agencies(session: Session, citizen_id: int) -> list[AgencyAccess]:
    """Every agency the citizen's standing consent covers, oldest consent first, with the id
    of the latest receipt the citizen was given for it: one query."""
    latest_receipt = (
        select(ConsentReceipt.receipt_id)
        .where(
            ConsentReceipt.citizen_id == Consent.citizen_id,
            ConsentReceipt.client_id == Consent.client_id,
        )
        .order_by(ConsentReceipt.issued_at.desc())
        .limit(1)
        .correlate(Consent)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Client.client_id, Client.client_name, Consent, latest_receipt)
        .join(Consent, Consent.client_id == Client.id)
        .where(Consent.citizen_id == citizen_id, Consent.revoked_at.is_(None))
        .order_by(Consent.granted_at)
    ).all()
    return [
        AgencyAccess(client_id, name, consent, receipt_id)
        for client_id, name, consent, receipt_id in rows
    ]


def receipts(session: Session, citizen_id: int) -> list[tuple[ConsentReceipt, str]]:
    """Every receipt the citizen was given, newest first, with its agency's client_id."""
    rows = session.execute(
        select(ConsentReceipt, Client.client_id)
        .join(Client, Client.id == ConsentReceipt.client_id)
        .where(ConsentReceipt.citizen_id == citizen_id)
        .order_by(ConsentReceipt.issued_at.desc(), ConsentReceipt.id.desc())
    ).all()
    return list(rows)


def receipt_token(session: Session, citizen_id: int, receipt_id: str) -> str | None:
    """The signed receipt with this id, if it is one of the citizen's."""
    if not storable(receipt_id):
        return None
    return session.scalar(
        select(ConsentReceipt.token).where(
            ConsentReceipt.receipt_id == receipt_id, ConsentReceipt.citizen_id == citizen_id
        )
    )
