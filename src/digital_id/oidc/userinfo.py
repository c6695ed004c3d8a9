"""Releasing the consented claims for an access token (OpenID Connect Core 5.3).

Access tokens are self-contained (RFC 9068), but UserInfo does not trust that alone: the
grant behind the token must still be live (``tokens.grant_problem``), so a revoked grant, an
ended session, a withdrawn consent, a disabled agency or a blocked citizen stops UserInfo at
once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from digital_id.audit import trail
from digital_id.audit.trail import EventContext, citizen_ref
from digital_id.clients.models import Client
from digital_id.consent import service as consent_service
from digital_id.keys.store import KeySnapshot
from digital_id.oidc.claims import claim_values
from digital_id.oidc.tokens import (
    InvalidAccessTokenError,
    decode_access_token,
    grant_of,
    grant_problem,
)
from digital_id.registry.models import Citizen
from digital_id.registry.regions import RegionTable

__all__ = ["InvalidAccessTokenError", "UserInfo", "userinfo"]


@dataclass(frozen=True)
class UserInfo:
    claims: dict[str, Any]
    client: Client

    @property
    def signing_algorithm(self) -> str | None:
        alg = self.client.registration.get("userinfo_signed_response_alg")
        return str(alg) if alg else None


def userinfo(
    session: Session,
    token: str,
    *,
    keys: KeySnapshot,
    issuer: str,
    regions: RegionTable,
    now: datetime,
    events: EventContext | None = None,
) -> UserInfo:
    claims = decode_access_token(token, keys=keys, issuer=issuer, now=now)
    grant = grant_of(session, claims)
    if grant is None:
        raise InvalidAccessTokenError("no citizen's grant behind the token")
    problem = grant_problem(session, grant)
    if problem is not None:
        raise InvalidAccessTokenError(problem)
    client = session.get_one(Client, grant.client_id)
    if client.client_id != claims["client_id"]:
        raise InvalidAccessTokenError("the token's client is not the grant's")
    citizen = session.get_one(Citizen, grant.citizen_id)
    consent = consent_service.current(session, citizen_id=citizen.id, client_pk=client.id)
    assert consent is not None  # grant_problem checked it
    released = [claim for claim in grant.userinfo_claims if claim in consent.claims]
    values = claim_values(citizen, released, regions=regions, today=now.date())
    trail.record(
        session,
        "claims:released",
        context=events,
        actor="client",
        client_id=client.client_id,
        subject=citizen_ref(citizen.id),
        details={"claims": sorted(values), "acr": grant.acr, "endpoint": "userinfo"},
        now=now,
    )
    return UserInfo({"sub": claims["sub"], **values}, client)
