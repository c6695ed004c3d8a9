"""Checking an access token and releasing the consented claims (OpenID Connect Core 5.3).

Access tokens are self-contained (RFC 9068), but UserInfo does not trust that alone: the
grant behind the token must still be live, so a revoked grant, an ended session, a withdrawn
consent, a disabled agency or a blocked citizen stops UserInfo at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.clients.models import Client
from digital_id.consent import service as consent_service
from digital_id.keys.store import KeySnapshot
from digital_id.oidc.claims import claim_values
from digital_id.oidc.models import AuthorizationGrant
from digital_id.oidc.provider import ACCESS_TOKEN_ALGORITHM
from digital_id.registry.models import Citizen
from digital_id.registry.regions import RegionTable
from digital_id.sessions.models import BrowserSession


class InvalidAccessTokenError(Exception):
    """RFC 6750 ``invalid_token``: the message is for logs, the client sees only the code."""


@dataclass(frozen=True)
class UserInfo:
    claims: dict[str, Any]
    client: Client

    @property
    def signing_algorithm(self) -> str | None:
        alg = self.client.registration.get("userinfo_signed_response_alg")
        return str(alg) if alg else None


def verify_access_token(
    token: str, *, keys: KeySnapshot, issuer: str, now: datetime
) -> dict[str, Any]:
    try:
        decoded = jwt.decode(token, keys.verification_keys(), algorithms=[ACCESS_TOKEN_ALGORITHM])
        if decoded.header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
            raise InvalidAccessTokenError("not an access token (typ)")
        jwt.JWTClaimsRegistry(
            now=int(now.timestamp()),
            iss={"essential": True, "value": issuer},
            exp={"essential": True},
            sub={"essential": True},
            client_id={"essential": True},
            jti={"essential": True},
        ).validate(decoded.claims)
    except (JoseError, ValueError) as exc:
        raise InvalidAccessTokenError(f"token rejected: {exc.__class__.__name__}") from None
    return decoded.claims


def userinfo(
    session: Session,
    token: str,
    *,
    keys: KeySnapshot,
    issuer: str,
    regions: RegionTable,
    now: datetime,
) -> UserInfo:
    claims = verify_access_token(token, keys=keys, issuer=issuer, now=now)
    grant_public_id = str(claims["jti"]).split(".", 1)[0]
    grant = session.scalars(
        select(AuthorizationGrant).where(AuthorizationGrant.public_id == grant_public_id)
    ).one_or_none()
    if grant is None or grant.revoked_at is not None:
        raise InvalidAccessTokenError("the grant is unknown or revoked")
    client = session.get(Client, grant.client_id)
    if client is None or not client.enabled or client.client_id != claims["client_id"]:
        raise InvalidAccessTokenError("the client is unknown or disabled")
    citizen = session.get(Citizen, grant.citizen_id)
    if citizen is None or citizen.status != "active":
        raise InvalidAccessTokenError("the citizen can no longer log in")
    if grant.session_id is not None:
        browser_session = session.get(BrowserSession, grant.session_id)
        if browser_session is None or browser_session.ended_at is not None:
            raise InvalidAccessTokenError("the session has ended")
    consent = consent_service.current(session, citizen_id=citizen.id, client_pk=client.id)
    if consent is None:
        raise InvalidAccessTokenError("the consent was withdrawn")
    released = [claim for claim in grant.userinfo_claims if claim in consent.claims]
    values = claim_values(citizen, released, regions=regions, today=now.date())
    return UserInfo({"sub": claims["sub"], **values}, client)
