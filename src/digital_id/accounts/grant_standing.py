"""A grant, and everything the one rule asks about it, read in one statement (UserInfo,
code redemption, refresh, introspection and revocation).

``standing.refusal`` reads the citizen, the consent and the browser session one statement
at a time for whichever path asks. The token endpoints ask on every call, so here the grant, its
agency, the citizen, the account, the recognised browser, the consent and the session come
back in one joined SELECT, and ``standing.grant_refusal`` judges them: the same rule, over
the same facts (``standing.CITIZEN_FACTS``), in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session

from digital_id.accounts import standing
from digital_id.accounts.delegation import may_act_for, today_in_indonesia
from digital_id.accounts.models import RecognisedBrowser
from digital_id.accounts.standing import Refusal
from digital_id.clients.models import Client
from digital_id.consent.models import Consent
from digital_id.grants.digests import token_digest
from digital_id.grants.models import AuthorizationGrant, RefreshToken
from digital_id.grants.refresh import lock_family
from digital_id.registry.models import Citizen
from digital_id.sessions.models import BrowserSession


@dataclass(frozen=True)
class GrantStanding:
    grant: AuthorizationGrant
    client: Client
    citizen: Citizen  # whose claims the grant releases
    consented_claims: list[str]
    # Why the grant no longer stands ("revoked", or the rule's refusal), or None.
    problem: str | None
    # The guardian who acted for ``citizen``, a child; None when the citizen acted.
    guardian: Citizen | None = None


def grant_standing(session: Session, public_id: str, *, now: datetime) -> GrantStanding | None:
    """The grant an access token names, with its standing now; None when there is none."""
    row = session.execute(_by_public_id(), {"public_id": public_id}).one_or_none()
    return None if row is None else _judged(session, row, now)


def redeemed_grant_standing(
    session: Session, grant_id: int, *, now: datetime
) -> tuple[GrantStanding, str | None] | None:
    """The grant a code was just redeemed for, with its standing now and the ``sid`` of the
    browser session it came from (its ID token names it; None without one); None when there
    is no such grant."""
    row = session.execute(_by_id_with_sid(), {"grant_id": grant_id}).one_or_none()
    return None if row is None else (_judged(session, row[:-1], now), row[-1])


def presented_refresh_standing(
    session: Session, token: str, *, now: datetime
) -> tuple[RefreshToken, GrantStanding] | None:
    """The stored refresh token ``token`` is, and its grant with its standing now, for a
    question about it (introspection, revocation): nothing is locked, as nothing of the
    family is rotated. None when the token is not ours."""
    row = session.execute(_by_refresh_token(), {"token_hash": token_digest(token)}).one_or_none()
    return None if row is None else (row[-1], _judged(session, row[:-1], now))


def refresh_standing(
    session: Session, token: str, *, now: datetime
) -> tuple[RefreshToken, GrantStanding] | None:
    """The stored refresh token ``token`` is, and its grant with its standing now, its family
    locked until the transaction ends; None when the token is not ours.

    PostgreSQL locks the grant's and the token's rows in the same statement (``FOR UPDATE
    OF``); SQLite has no row locks, so its write lock is taken first
    (``grants.refresh.lock_family``)."""
    on_postgresql = session.get_bind().dialect.name == "postgresql"
    if not on_postgresql:
        lock_family(session, token)
    row = session.execute(
        _for_rotation(row_locks=on_postgresql), {"token_hash": token_digest(token)}
    ).one_or_none()
    return None if row is None else (row[-1], _judged(session, row[:-1], now))


# Each statement is built once per process, its values bound at execution: building this
# join costs 0.2 ms and its cache key 0.06 ms more (timed on this machine), on every token
# request, where a statement kept memoizes its key.
@cache
def _by_public_id() -> Select[*tuple[Any, ...]]:
    return _standing().where(AuthorizationGrant.public_id == bindparam("public_id"))


@cache
def _by_id_with_sid() -> Select[*tuple[Any, ...]]:
    return _standing(BrowserSession.sid).where(AuthorizationGrant.id == bindparam("grant_id"))


@cache
def _by_refresh_token() -> Select[*tuple[Any, ...]]:
    return (
        _standing(RefreshToken)
        .join(RefreshToken, RefreshToken.grant_id == AuthorizationGrant.id)
        .where(RefreshToken.token_hash == bindparam("token_hash"))
    )


@cache
def _for_rotation(*, row_locks: bool) -> Select[*tuple[Any, ...]]:
    statement = _by_refresh_token().execution_options(populate_existing=True)
    # Both rows: after waiting for the lock, PostgreSQL reads the newest version of the
    # locked rows only, and the token's rotation is what the previous holder changed.
    return (
        statement.with_for_update(of=(AuthorizationGrant, RefreshToken)) if row_locks else statement
    )


def _standing(*extra: Any) -> Select[*tuple[Any, ...]]:
    return standing.with_citizen_facts(
        select(
            AuthorizationGrant,
            Client,
            Citizen,
            Consent.claims,
            Consent.id.is_not(None) & Consent.revoked_at.is_(None),
            BrowserSession.id.is_not(None) & BrowserSession.ended_at.is_(None),
            *standing.CITIZEN_FACTS,
            *extra,
        )
        .select_from(AuthorizationGrant)
        .join(Client, Client.id == AuthorizationGrant.client_id)
        # Who authenticated: the guardian who acted for the grant's citizen, a child, if one
        # did (``_judged`` reads the child); the rule's citizen facts are theirs.
        .join(
            Citizen,
            Citizen.id
            == func.coalesce(AuthorizationGrant.actor_citizen_id, AuthorizationGrant.citizen_id),
        )
        .outerjoin(BrowserSession, BrowserSession.id == AuthorizationGrant.session_id)
        .outerjoin(
            Consent,
            (Consent.citizen_id == AuthorizationGrant.citizen_id)
            & (Consent.client_id == AuthorizationGrant.client_id),
        ),
        # The lock of the browser the grant's session logged in on (strangers' without one).
        RecognisedBrowser.id == BrowserSession.recognised_browser_id,
    )


def _judged(session: Session, row: Sequence[Any], now: datetime) -> GrantStanding:
    grant, client, citizen, claims, consent_live, session_live, *facts = row
    guardian = None
    if grant.actor_citizen_id is not None:
        # A second read for a guardian's grants alone: one more join in the statement every
        # token request runs takes PostgreSQL past its join_collapse_limit (8 tables), and
        # its plan then scans the grants instead of starting from the token (EXPLAIN in
        # docs/performance.md).
        guardian, citizen = citizen, session.get_one(Citizen, grant.citizen_id)
    refused: Refusal | None = standing.grant_refusal(
        facts,
        now=now,
        agency=client,
        consent_live=bool(consent_live),
        # Online access lives with its browser session; offline access outlives it.
        session_live=bool(session_live)
        if grant.offline_until is None and grant.session_id is not None
        else None,
        delegation_live=None
        if guardian is None
        else may_act_for(guardian, citizen, today_in_indonesia(now)),
    )
    problem = (
        "the grant is revoked"
        if grant.revoked_at is not None
        else (None if refused is None else f"refused: {refused}")
    )
    return GrantStanding(grant, client, citizen, list(claims or []), problem, guardian)
