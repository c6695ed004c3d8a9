"""Authorization grants and their codes: creating a grant, issuing a code for it, redeeming
the code exactly once (RFC 6749 section 4.1), and telling a nonce already used."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, insert, select, update
from sqlalchemy.orm import Session

from digital_id.audit.trail import EventContext
from digital_id.db.purge import purge_expired
from digital_id.grants.digests import token_digest
from digital_id.grants.models import AuthorizationCode, AuthorizationGrant
from digital_id.grants.revocation import revoke_grant

# Codes matter only until they expire (reuse detection), and a little after; then they go.
CODE_RETENTION = timedelta(minutes=10)


@dataclass(frozen=True)
class Authentication:
    """How the citizen authenticated in the browser session a grant comes from."""

    session_id: int
    acr: str
    amr: Sequence[str]
    auth_time: datetime
    # The citizen who authenticated, when they are a guardian acting for the grant's citizen
    # (``accounts.delegation``); None when the citizen authenticated for themselves.
    guardian_id: int | None = None


@dataclass(frozen=True)
class CodeRequest:
    """What a code binds from the authorization request, for the token request to match."""

    redirect_uri: str | None
    code_challenge: str
    code_challenge_method: str
    nonce: str | None
    dpop_jkt: str | None = None


def create_grant(
    session: Session,
    *,
    citizen_id: int,
    client_pk: int,
    authentication: Authentication,
    scope: str,
    userinfo_claims: Sequence[str],
    id_token_claims: Sequence[str],
    offline_until: datetime | None,
    now: datetime,
    resource: str | None = None,
) -> AuthorizationGrant:
    """A new grant: the citizen approved the agency, releasing these claims; offline access
    (a refresh token family) until ``offline_until`` if they consented to it."""
    grant = AuthorizationGrant(
        **_grant_columns(
            citizen_id, client_pk, authentication, scope, userinfo_claims, id_token_claims,
            offline_until, now, resource,
        )
    )  # fmt: skip
    session.add(grant)
    session.flush()
    return grant


def _grant_columns(
    citizen_id: int,
    client_pk: int,
    authentication: Authentication,
    scope: str,
    userinfo_claims: Sequence[str],
    id_token_claims: Sequence[str],
    offline_until: datetime | None,
    now: datetime,
    resource: str | None,
) -> dict[str, Any]:
    """A new grant's row, for the ORM or for an INSERT."""
    return {
        "public_id": secrets.token_hex(16),
        "citizen_id": citizen_id,
        "client_id": client_pk,
        "session_id": authentication.session_id,
        "scope": scope,
        "userinfo_claims": list(userinfo_claims),
        "id_token_claims": list(id_token_claims),
        "acr": authentication.acr,
        "amr": list(authentication.amr),
        "auth_time": authentication.auth_time,
        "created_at": now,
        "offline_until": offline_until,
        "resource": resource,
        "actor_citizen_id": authentication.guardian_id,
    }


def issue_code(
    session: Session,
    grant: AuthorizationGrant,
    code: str,
    *,
    request: CodeRequest,
    now: datetime,
    lifetime: timedelta,
) -> None:
    """Store ``code`` (its digest) for ``grant``, valid for ``lifetime``."""
    session.add(
        AuthorizationCode(
            grant_id=grant.id, **_code_columns(grant.client_id, code, request, now, lifetime)
        )
    )
    session.flush()


def _code_columns(
    client_pk: int, code: str, request: CodeRequest, now: datetime, lifetime: timedelta
) -> dict[str, Any]:
    """A new code's row but its grant, for the ORM or for an INSERT."""
    return {
        "code_hash": token_digest(code),
        "client_id": client_pk,
        "redirect_uri": request.redirect_uri,
        "code_challenge": request.code_challenge,
        "code_challenge_method": request.code_challenge_method,
        "nonce": request.nonce,
        "dpop_jkt": request.dpop_jkt,
        "created_at": now,
        "expires_at": now + lifetime,
    }


def create_grant_with_code(
    session: Session,
    *,
    citizen_id: int,
    client_pk: int,
    authentication: Authentication,
    scope: str,
    userinfo_claims: Sequence[str],
    id_token_claims: Sequence[str],
    offline_until: datetime | None,
    code: str,
    request: CodeRequest,
    now: datetime,
    lifetime: timedelta,
    resource: str | None = None,
) -> None:
    """``create_grant`` and ``issue_code`` for its first code, as the authorization endpoint
    answers an approval.

    On PostgreSQL both rows go in one statement: the grant's INSERT is a data-modifying CTE
    whose new id the code's INSERT takes. SQLite has no INSERT inside a WITH, so there they
    are the two statements of ``create_grant`` and ``issue_code``."""
    columns = _grant_columns(
        citizen_id, client_pk, authentication, scope, userinfo_claims, id_token_claims,
        offline_until, now, resource,
    )  # fmt: skip
    if session.get_bind().dialect.name != "postgresql":
        grant = AuthorizationGrant(**columns)
        session.add(grant)
        session.flush()
        issue_code(session, grant, code, request=request, now=now, lifetime=lifetime)
        return
    new_grant = (
        insert(AuthorizationGrant).values(columns).returning(AuthorizationGrant.id).cte("new_grant")
    )
    session.execute(
        insert(AuthorizationCode)
        .values(
            grant_id=select(new_grant.c.id).scalar_subquery(),
            **_code_columns(client_pk, code, request, now, lifetime),
        )
        .add_cte(new_grant)
    )


def redeem_code(
    session: Session,
    code: str,
    *,
    client_pk: int,
    now: datetime,
    events: EventContext | None = None,
) -> tuple[AuthorizationCode, AuthorizationGrant] | None:
    """Redeem the code: one atomic UPDATE, so of any number of parallel redemptions in any
    workers exactly one wins. A code presented again revokes what the first one issued
    (RFC 6749 section 4.1.2).

    On PostgreSQL the UPDATE also returns the code's grant (``UPDATE … FROM … RETURNING``):
    redeeming costs one statement. SQLite's RETURNING may not name the FROM table, so there
    the grant is a second read."""
    hashed = token_digest(code)
    claim = (
        update(AuthorizationCode)
        .where(
            AuthorizationCode.code_hash == hashed,
            AuthorizationCode.client_id == client_pk,
            AuthorizationCode.redeemed_at.is_(None),
            AuthorizationCode.expires_at > now,
        )
        .values(redeemed_at=now)
    )
    if session.get_bind().dialect.name == "postgresql":
        joined = claim.where(AuthorizationGrant.id == AuthorizationCode.grant_id)
        both = session.execute(joined.returning(AuthorizationCode, AuthorizationGrant)).first()
        if both is not None:
            return both[0], both[1]
    else:
        claimed = session.scalars(claim.returning(AuthorizationCode)).one_or_none()
        if claimed is not None:
            return claimed, session.get_one(AuthorizationGrant, claimed.grant_id)
    # Not redeemed: unknown, expired, another client's, or presented before.
    row = session.scalars(
        select(AuthorizationCode).where(AuthorizationCode.code_hash == hashed)
    ).one_or_none()
    if row is not None and row.client_id == client_pk and row.redeemed_at is not None:
        revoke_grant(session, row.grant_id, now, reason="code_reused", events=events)
    return None


def purge_expired_codes(session: Session, now: datetime) -> int:
    """Delete up to a batch of codes past their retention (the housekeeping job runs it, not
    the request issuing a code); how many went."""
    return purge_expired(
        session, AuthorizationCode, AuthorizationCode.expires_at < now - CODE_RETENTION
    )


def nonce_used(session: Session, *, client_pk: int, nonce: str) -> bool:
    """Whether a code the agency was issued already carried ``nonce``."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    AuthorizationCode.client_id == client_pk, AuthorizationCode.nonce == nonce
                )
            )
        )
    )
