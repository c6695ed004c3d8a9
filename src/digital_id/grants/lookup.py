"""Finding grants: by an access token's public id, by a refresh token, by browser session."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.clients.models import Client
from digital_id.grants.digests import token_digest
from digital_id.grants.models import AuthorizationGrant, RefreshToken


def grant_by_public_id(session: Session, public_id: str) -> AuthorizationGrant | None:
    return session.scalars(
        select(AuthorizationGrant).where(AuthorizationGrant.public_id == public_id)
    ).one_or_none()


def refresh_token_row(session: Session, token: str) -> RefreshToken | None:
    """The stored refresh token ``token`` is, by its digest, or None."""
    return session.scalars(
        select(RefreshToken).where(RefreshToken.token_hash == token_digest(token))
    ).one_or_none()


def agencies_of_session(session: Session, session_id: int) -> Sequence[Client]:
    """The enabled agencies a browser session logged in to (a grant bound to it)."""
    return session.scalars(
        select(Client)
        .join(AuthorizationGrant, AuthorizationGrant.client_id == Client.id)
        .where(AuthorizationGrant.session_id == session_id, Client.enabled.is_(True))
        .distinct()
    ).all()
