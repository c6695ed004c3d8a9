"""A grant, and everything the one rule asks about it, read in one statement (UserInfo).

``standing.refusal`` reads the citizen, the consent and the browser session one statement
at a time for whichever path asks. UserInfo asks on every call, so here the grant, its
agency, the citizen, the account, the recognised browser, the consent and the session come
back in one joined SELECT, and ``standing.grant_refusal`` judges them: the same rule, over
the same facts (``standing.CITIZEN_FACTS``), in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.accounts import standing
from digital_id.accounts.models import RecognisedBrowser
from digital_id.accounts.standing import Refusal
from digital_id.clients.models import Client
from digital_id.consent.models import Consent
from digital_id.grants.models import AuthorizationGrant
from digital_id.registry.models import Citizen
from digital_id.sessions.models import BrowserSession


@dataclass(frozen=True)
class GrantStanding:
    grant: AuthorizationGrant
    client: Client
    citizen: Citizen
    consented_claims: list[str]
    # Why the grant no longer stands ("revoked", or the rule's refusal), or None.
    problem: str | None


def grant_standing(session: Session, public_id: str, *, now: datetime) -> GrantStanding | None:
    """The grant an access token names, with its standing now; None when there is none."""
    statement = standing.with_citizen_facts(
        select(
            AuthorizationGrant,
            Client,
            Citizen,
            Consent.claims,
            Consent.id.is_not(None) & Consent.revoked_at.is_(None),
            BrowserSession.id.is_not(None) & BrowserSession.ended_at.is_(None),
            *standing.CITIZEN_FACTS,
        )
        .select_from(AuthorizationGrant)
        .join(Client, Client.id == AuthorizationGrant.client_id)
        .join(Citizen, Citizen.id == AuthorizationGrant.citizen_id)
        .outerjoin(BrowserSession, BrowserSession.id == AuthorizationGrant.session_id)
        .outerjoin(
            Consent,
            (Consent.citizen_id == AuthorizationGrant.citizen_id)
            & (Consent.client_id == AuthorizationGrant.client_id),
        ),
        # The lock of the browser the grant's session logged in on (strangers' without one).
        RecognisedBrowser.id == BrowserSession.recognised_browser_id,
    ).where(AuthorizationGrant.public_id == public_id)
    row = session.execute(statement).one_or_none()
    if row is None:
        return None
    grant, client, citizen, claims, consent_live, session_live, *facts = row
    refused: Refusal | None = standing.grant_refusal(
        facts,
        now=now,
        agency_enabled=client.enabled,
        consent_live=bool(consent_live),
        # Online access lives with its browser session; offline access outlives it.
        session_live=bool(session_live)
        if grant.offline_until is None and grant.session_id is not None
        else None,
    )
    problem = (
        "the grant is revoked"
        if grant.revoked_at is not None
        else (None if refused is None else f"refused: {refused}")
    )
    return GrantStanding(grant, client, citizen, list(claims or []), problem)
