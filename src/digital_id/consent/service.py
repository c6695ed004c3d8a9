"""Recording and checking what a citizen has agreed to release to an agency."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.audit import trail
from digital_id.audit.trail import EventContext, citizen_of, citizen_ref
from digital_id.clients.models import Client
from digital_id.consent.models import Consent
from digital_id.db.engine import dialect_insert
from digital_id.grants.revocation import revoke_agency_grants


def stored(session: Session, *, citizen_id: int, client_pk: int) -> Consent | None:
    """The citizen's consent row for the agency, live or withdrawn, or None (never given)."""
    return session.scalars(
        select(Consent).where(Consent.citizen_id == citizen_id, Consent.client_id == client_pk)
    ).one_or_none()


@dataclass(frozen=True)
class StoredConsent:
    """The citizen's consent row for an agency as a statement earlier in this transaction
    read it (``row`` None: never given), for a later step of the same request to use instead
    of reading it again (``stored_or_known``)."""

    citizen_id: int
    client_pk: int
    row: Consent | None


def stored_or_known(
    session: Session, known: StoredConsent | None, *, citizen_id: int, client_pk: int
) -> Consent | None:
    """``stored``, answered from ``known`` when that is the same citizen's row for the same
    agency (the login's own statement read it); otherwise read."""
    if known is not None and (known.citizen_id, known.client_pk) == (citizen_id, client_pk):
        return known.row
    return stored(session, citizen_id=citizen_id, client_pk=client_pk)


def live(consent: Consent | None) -> Consent | None:
    """``consent`` if it stands (given and not withdrawn), else None."""
    return consent if consent is not None and consent.revoked_at is None else None


def current(session: Session, *, citizen_id: int, client_pk: int) -> Consent | None:
    """The citizen's live consent for the agency, or None (never given, or withdrawn)."""
    return live(stored(session, citizen_id=citizen_id, client_pk=client_pk))


def covers(
    consent: Consent | None, claims: Collection[str], *, given_by: int | None = None
) -> bool:
    """Whether an earlier consent already granted every one of ``claims``, decided by the
    same person: the citizen (``given_by`` None), or the guardian ``given_by`` acting for
    them. A child come of age decides afresh on what a parent granted, and each parent
    decides for themselves."""
    return (
        consent is not None
        and consent.given_by_citizen_id == given_by
        and set(claims) <= set(consent.claims)
    )


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
    return grant_onto(
        session,
        stored(session, citizen_id=citizen_id, client_pk=client_pk),
        citizen_id=citizen_id,
        client_pk=client_pk,
        claims=claims,
        now=now,
        client_id=client_id,
        events=events,
    )


def grant_onto(
    session: Session,
    consent: Consent | None,
    *,
    citizen_id: int,
    client_pk: int,
    claims: Collection[str],
    now: datetime,
    client_id: str | None = None,
    events: EventContext | None = None,
    given_by: int | None = None,
) -> Consent:
    """``grant``, given the row ``stored`` returned earlier in this transaction (None: there
    was none), so a page that has just read it does not read it again. ``given_by``: the
    guardian granting it for the citizen, a child (None: the citizen themselves)."""
    inserted = False
    if consent is None:
        consent, inserted = _added_unless_there(
            session, citizen_id=citizen_id, client_pk=client_pk, claims=claims, now=now
        )
    if inserted:
        pass  # made as it stands
    elif consent.revoked_at is not None:
        consent.claims = sorted(set(claims))
        consent.granted_at = consent.updated_at = now
        consent.revoked_at = None
    else:
        consent.claims = sorted(set(consent.claims) | set(claims))
        consent.updated_at = now
    consent.given_by_citizen_id = given_by
    session.flush()
    trail.record(
        session,
        "consent:granted",
        context=events,
        actor="citizen",
        client_id=client_id,
        subject=citizen_ref(citizen_id),
        details={"claims": sorted(set(claims)), **guardian_detail(given_by)},
        now=now,
    )
    return consent


def guardian_detail(guardian_id: int | None) -> dict[str, str]:
    """What an audit event says of the guardian who acted for its subject, a child."""
    return {} if guardian_id is None else {"guardian": citizen_ref(guardian_id)}


def guardian_in(details: dict[str, Any]) -> int | None:
    """The guardian an audit event's details name (``guardian_detail``), if any."""
    return citizen_of(details.get("guardian"))


def _added_unless_there(
    session: Session, *, citizen_id: int, client_pk: int, claims: Collection[str], now: datetime
) -> tuple[Consent, bool]:
    """The citizen's consent for the agency made with ``claims`` (True); or, when another
    transaction made it first (the citizen approving in two tabs at once), that row, locked,
    for this grant to add to (False). Both read no row; the unique constraint decides who was
    first, and the second's INSERT waits for the first to end. One statement when there is no
    race."""
    insert = dialect_insert(session.get_bind().dialect.name)
    added = session.scalars(
        insert(Consent)
        .values(
            citizen_id=citizen_id,
            client_id=client_pk,
            claims=sorted(set(claims)),
            granted_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["citizen_id", "client_id"])
        .returning(Consent)
    ).one_or_none()
    if added is not None:
        return added, True
    there = session.scalars(
        select(Consent)
        .where(Consent.citizen_id == citizen_id, Consent.client_id == client_pk)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    return there, False


def agencies_with_access(session: Session, citizen_id: int) -> list[tuple[str, str, list[str]]]:
    """(client_id, name, granted claims) for every agency the citizen's live consent covers."""
    rows = session.execute(
        select(Client.client_id, Client.client_name, Consent.claims)
        .join(Consent, Consent.client_id == Client.id)
        .where(Consent.citizen_id == citizen_id, Consent.revoked_at.is_(None))
        .order_by(Consent.granted_at)
    ).all()
    return [(client_id, name, list(claims)) for client_id, name, claims in rows]


@dataclass(frozen=True)
class Withdrawal:
    """What withdrawing consent ended: for the receipt and the back-channel logouts."""

    consent: Consent
    grants_revoked: int
    session_ids: tuple[int, ...]


def withdraw(
    session: Session,
    *,
    citizen_id: int,
    client_pk: int,
    client_id: str,
    now: datetime,
    events: EventContext | None = None,
    withdrawn_by: int | None = None,
) -> Withdrawal | None:
    """Withdraw the citizen's consent for the agency: the consent ends, every grant of that
    agency for the citizen is revoked (refresh and access tokens with it), all in one
    transaction with its audit event. None when there was no live consent. ``withdrawn_by``:
    the guardian withdrawing it for the citizen, a child."""
    consent = current(session, citizen_id=citizen_id, client_pk=client_pk)
    if consent is None:
        return None
    consent.revoked_at = now
    consent.updated_at = now
    revoked = revoke_agency_grants(session, citizen_id=citizen_id, client_pk=client_pk, now=now)
    session.flush()
    trail.record(
        session,
        "consent:revoked",
        context=events,
        actor="citizen",
        client_id=client_id,
        subject=citizen_ref(citizen_id),
        details={
            "claims": sorted(consent.claims),
            "grants_revoked": len(revoked),
            **guardian_detail(withdrawn_by),
        },
        now=now,
    )
    return Withdrawal(
        consent, len(revoked), tuple(sorted({sid for sid in revoked if sid is not None}))
    )
