"""Refresh token families: issuing the next generation, recognising a presented token, and
rotation with a grace window (OAuth 2.0 Security BCP 4.14).

Only the newest generation of a family is live; a token rotated less than REFRESH_GRACE ago
still works (its response may have been lost), and any other stale token presented revokes
the family: that grant only, not the citizen's other sessions or agencies.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import Insert, bindparam, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from digital_id.audit.trail import EventContext
from digital_id.grants.digests import token_digest
from digital_id.grants.models import AuthorizationGrant, RefreshToken
from digital_id.grants.revocation import revoke_grant

# A rotated refresh token still works this long, so a lost response does not strand the app.
REFRESH_GRACE = timedelta(seconds=30)


def lock_family(session: Session, token: str) -> None:
    """Serialise work on the refresh token family ``token`` belongs to: a no-op UPDATE of its
    grant takes the grant's row lock (PostgreSQL) or the write lock (SQLite) before anything
    of the family is read. Nothing happens for a token that is not ours."""
    session.execute(
        update(AuthorizationGrant)
        .where(
            AuthorizationGrant.id
            == select(RefreshToken.grant_id)
            .where(RefreshToken.token_hash == token_digest(token))
            .scalar_subquery()
        )
        .values(refresh_generation=AuthorizationGrant.refresh_generation)
        .execution_options(synchronize_session=False)
    )


def family_member_problem(
    row: RefreshToken, grant: AuthorizationGrant, *, client_pk: int, now: datetime
) -> str | None:
    """Why the presented token ``row`` (read after ``lock_family``) cannot be exchanged at all,
    or None: it must be the client's, its grant unrevoked, within its offline and idle limits.
    Whether its generation may still be used is ``accept_generation``'s question."""
    if grant.client_id != client_pk:
        return "another client's token"  # refused, and it changes nothing
    if grant.revoked_at is not None:
        return "the grant is revoked"
    if grant.offline_until is None or now >= grant.offline_until or now >= row.idle_until:
        return "expired"
    return None


def accept_generation(
    session: Session,
    row: RefreshToken,
    grant: AuthorizationGrant,
    *,
    now: datetime,
    events: EventContext | None = None,
) -> bool:
    """Whether ``row`` may be used: the newest generation, or rotated within the grace
    window. Any other use is a replay, and revokes the family."""
    if row.generation != grant.refresh_generation and (
        row.rotated_at is None or now - row.rotated_at > REFRESH_GRACE
    ):
        revoke_grant(session, grant.id, now, reason="refresh_token_reused", events=events)
        return False
    return True


def issue_refresh_token(
    session: Session,
    grant: AuthorizationGrant,
    token: str,
    *,
    parent: RefreshToken | None,
    idle: timedelta,
    now: datetime,
    dpop_jkt: str | None = None,
) -> None:
    """The next generation after ``parent`` (the first without one). Tokens issued from the
    same parent within the grace window are siblings of one generation; using any of them
    starts the next, and every older one goes stale.

    On PostgreSQL this is one statement: the family's newest generation and the parent's
    grace window (``mark_rotated``, which then has nothing left to do) are written by
    data-modifying CTEs of the new token's INSERT. SQLite has none: there they are the
    session's flush, and ``mark_rotated`` marks the parent."""
    assert grant.offline_until is not None
    generation = parent.generation + 1 if parent is not None else 1
    newest = max(grant.refresh_generation, generation)
    fresh = {
        "token_hash": token_digest(token),
        "grant_id": grant.id,
        "generation": generation,
        "issued_at": now,
        "idle_until": min(now + idle, grant.offline_until),
        "dpop_jkt": dpop_jkt,
    }
    if session.get_bind().dialect.name != "postgresql":
        grant.refresh_generation = newest
        session.add(RefreshToken(**fresh))
        session.flush()
        return
    new_generation = newest != grant.refresh_generation
    rotate_parent = parent is not None and parent.rotated_at is None
    # Named apart from the columns: an execution's keys that name a column of refresh_tokens
    # would become SET values of the parent's UPDATE.
    parameters = {f"new_{name}": value for name, value in fresh.items()}
    parameters |= {"newest": newest, "parent_id": parent.id if parent else None}
    session.execute(_issue_statement(new_generation, rotate_parent), parameters)
    if new_generation:
        set_committed_value(grant, "refresh_generation", newest)
    if parent is not None and rotate_parent:
        set_committed_value(parent, "rotated_at", now)


@cache
def _issue_statement(new_generation: bool, rotate_parent: bool) -> Insert:
    """The next generation's INSERT with, as data-modifying CTEs, the grant's newest
    generation and the parent's rotation when they change; built once per process, its
    values bound at execution (building it cost more than executing it)."""
    statement = insert(RefreshToken).values(
        token_hash=bindparam("new_token_hash"),
        grant_id=bindparam("new_grant_id"),
        generation=bindparam("new_generation"),
        issued_at=bindparam("new_issued_at"),
        idle_until=bindparam("new_idle_until"),
        dpop_jkt=bindparam("new_dpop_jkt"),
    )
    if new_generation:
        statement = statement.add_cte(
            update(AuthorizationGrant)
            .where(AuthorizationGrant.id == bindparam("new_grant_id"))
            .values(refresh_generation=bindparam("newest"))
            .cte("newest_generation")
        )
    if rotate_parent:
        statement = statement.add_cte(
            update(RefreshToken)
            .where(RefreshToken.id == bindparam("parent_id"), RefreshToken.rotated_at.is_(None))
            .values(rotated_at=bindparam("new_issued_at"))
            .cte("parent_rotated")
        )
    return statement


def mark_rotated(session: Session, row: RefreshToken, *, now: datetime) -> None:
    """``row`` was just exchanged for the next generation: its grace window starts now (on
    PostgreSQL ``issue_refresh_token`` started it already)."""
    if row.rotated_at is None:
        row.rotated_at = now
        session.flush()
