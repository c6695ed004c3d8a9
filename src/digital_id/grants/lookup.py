"""The agencies a browser session logged in to, through its grants (a grant with its standing
is accounts.grant_standing's)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.clients.models import Client
from digital_id.grants.models import AuthorizationGrant


def agencies_of_session(session: Session, session_id: int) -> Sequence[Client]:
    """The enabled agencies a browser session logged in to (a grant bound to it)."""
    return session.scalars(
        select(Client)
        .join(AuthorizationGrant, AuthorizationGrant.client_id == Client.id)
        .where(AuthorizationGrant.session_id == session_id, Client.enabled.is_(True))
        .distinct()
    ).all()
