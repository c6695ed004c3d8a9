"""Recording and checking what a citizen has agreed to release to an agency."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.audit import trail
from digital_id.audit.trail import EventContext, citizen_ref
from digital_id.clients.models import Client
from digital_id.consent.models import Consent


def current(session: Session, *, citizen_id: int, client_pk: int) -> Consent | None:
    """The citizen's live consent for the agency, or None (never given, or withdrawn)."""
    consent = session.scalars(
        select(Consent).where(Consent.citizen_id == citizen_id, Consent.client_id == client_pk)
    ).one_or_none()
    if consent is None or consent.revoked_at is not None:
        return None
    return consent


def covers(consent: Consent | None, claims: Collection[str]) -> bool:
    """Whether an earlier consent already granted every one of ``claims``."""
    return consent is not None and set(claims) <= set(consent.claims)


def grant(
    session: Session,
    *,
    citizen_id: int,
    client_pk: int,
    claims: Collection[str],
    now: datetime,
    client_id: str | None = None,
    events: EventContext | None = None,
) -> Consent:
    """Add ``claims`` to the citizen's consent for the agency (a withdrawn one starts afresh),
    recorded in the audit trail in the same transaction."""
    consent = session.scalars(
        select(Consent).where(Consent.citizen_id == citizen_id, Consent.client_id == client_pk)
    ).one_or_none()
    if consent is None:
        consent = Consent(
            citizen_id=citizen_id,
            client_id=client_pk,
            claims=sorted(set(claims)),
            granted_at=now,
            updated_at=now,
        )
        session.add(consent)
    elif consent.revoked_at is not None:
        consent.claims = sorted(set(claims))
        consent.granted_at = consent.updated_at = now
        consent.revoked_at = None
    else:
        consent.claims = sorted(set(consent.claims) | set(claims))
        consent.updated_at = now
    session.flush()
    trail.record(
        session,
        "consent:granted",
        context=events,
        actor="citizen",
        client_id=client_id,
        subject=citizen_ref(citizen_id),
        details={"claims": sorted(set(claims))},
        now=now,
    )
    return consent


def agencies_with_access(session: Session, citizen_id: int) -> list[tuple[str, str, list[str]]]:
    """(client_id, name, granted claims) for every agency the citizen's live consent covers."""
    rows = session.execute(
        select(Client.client_id, Client.client_name, Consent.claims)
        .join(Consent, Consent.client_id == Client.id)
        .where(Consent.citizen_id == citizen_id, Consent.revoked_at.is_(None))
        .order_by(Consent.granted_at)
    ).all()
    return [(client_id, name, list(claims)) for client_id, name, claims in rows]
