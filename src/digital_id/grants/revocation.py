"""Revoking grants (one, a citizen's, an agency's) and client-credentials access tokens.

Revoking a grant revokes everything that hangs off it: its refresh token family, and its
access tokens wherever they are checked (UserInfo, introspection). Only this module sets a
grant's ``revoked_at`` or marks an access token revoked.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digital_id.audit import trail
from digital_id.audit.trail import EventContext, citizen_ref
from digital_id.clients.models import Client
from digital_id.db.purge import purge_expired
from digital_id.grants.models import AuthorizationGrant, RevokedAccessToken


def revoke_grant(
    session: Session,
    grant_id: int,
    now: datetime,
    *,
    reason: str,
    events: EventContext | None = None,
    actor: str | None = None,
) -> None:
    """Revoke one grant, recorded in the audit trail (nothing, if it was revoked already)."""
    revoked = session.execute(
        update(AuthorizationGrant)
        .where(AuthorizationGrant.id == grant_id, AuthorizationGrant.revoked_at.is_(None))
        .values(revoked_at=now)
        .returning(AuthorizationGrant.citizen_id, AuthorizationGrant.client_id)
    ).one_or_none()
    if revoked is not None:
        client_id = session.scalar(select(Client.client_id).where(Client.id == revoked[1]))
        trail.record(
            session,
            "token:revoked",
            context=events,
            actor=actor,
            client_id=client_id,
            subject=citizen_ref(revoked[0]),
            details={"reason": reason},
            now=now,
        )


def revoke_citizen_grants(
    session: Session,
    citizen_id: int,
    now: datetime,
    *,
    reason: str,
    actor: str,
    sparing_session_id: int | None = None,
    events: EventContext | None = None,
) -> None:
    """Revoke every live grant of the citizen, each recorded, except those bound to the
    browser session ``sparing_session_id`` (the one the citizen is using)."""
    grants = select(AuthorizationGrant.id).where(
        AuthorizationGrant.citizen_id == citizen_id, AuthorizationGrant.revoked_at.is_(None)
    )
    if sparing_session_id is not None:
        grants = grants.where(
            AuthorizationGrant.session_id.is_(None)
            | (AuthorizationGrant.session_id != sparing_session_id)
        )
    for grant_id in session.scalars(grants).all():
        revoke_grant(session, grant_id, now, reason=reason, events=events, actor=actor)


def revoke_agency_grants(
    session: Session, *, citizen_id: int, client_pk: int, now: datetime
) -> list[int | None]:
    """Revoke every live grant of the citizen to one agency in one statement (the caller
    records why); returns the browser session of each grant revoked."""
    return list(
        session.execute(
            update(AuthorizationGrant)
            .where(
                AuthorizationGrant.citizen_id == citizen_id,
                AuthorizationGrant.client_id == client_pk,
                AuthorizationGrant.revoked_at.is_(None),
            )
            .values(revoked_at=now)
            .returning(AuthorizationGrant.session_id)
        )
        .scalars()
        .all()
    )


def revoke_access_token(session: Session, jti: str, *, expires_at: datetime) -> None:
    """Mark a client-credentials access token revoked until it expires (no grant stands
    behind it to revoke instead)."""
    try:
        with session.begin_nested():
            session.add(RevokedAccessToken(jti=jti, expires_at=expires_at))
    except IntegrityError:
        pass  # revoked already


def purge_expired_revocations(session: Session, now: datetime) -> int:
    """Delete up to a batch of revoked-token marks whose tokens have expired anyway (the
    housekeeping job runs it, not a revocation); how many went."""
    return purge_expired(session, RevokedAccessToken, RevokedAccessToken.expires_at < now)


def access_token_revoked(session: Session, jti: str) -> bool:
    return bool(session.scalar(select(exists().where(RevokedAccessToken.jti == jti))))
