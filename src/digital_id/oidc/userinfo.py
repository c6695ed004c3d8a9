"""Releasing the consented claims for an access token (OpenID Connect Core 5.3).

Access tokens are self-contained (RFC 9068), but UserInfo does not trust that alone: the
grant behind the token must still be live, so a revoked grant, an ended session, a withdrawn
consent, a disabled agency or a blocked citizen stops UserInfo at once. The grant and all
the rule asks about it come in one statement (``accounts.grant_standing``).
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from digital_id.accounts.grant_standing import GrantStanding, grant_standing
from digital_id.audit import trail
from digital_id.audit.trail import EventContext, citizen_ref
from digital_id.clients.jwks import ClientKeyResolver
from digital_id.clients.models import Client
from digital_id.consent.service import guardian_detail
from digital_id.keys.store import KeySnapshot
from digital_id.oidc import dpop, verified_claims
from digital_id.oidc.agency_client import AgencyClient
from digital_id.oidc.claims import claim_values
from digital_id.oidc.encryption import encrypted_for
from digital_id.oidc.errors import InvalidAccessTokenError
from digital_id.oidc.tokens import decode_access_token, grant_public_id
from digital_id.registry.regions import RegionTable

# The claims one access token released: its jti and the claim names (not their values).
Release = tuple[str, tuple[str, ...]]


class RecordedReleases:
    """The releases this process has recorded, so an agency calling UserInfo again with the
    same token (releasing the same claims under the same grant) writes nothing: the first
    call's event already tells the citizen who received what, when and at which level.

    A pure optimisation, never the reason a release goes unrecorded: an entry is added only
    after the event is committed, lasts until its token expires, and the oldest are
    forgotten past ``max_entries`` (then a repeat call is recorded again). Each worker keeps
    its own, so a token served by two workers is recorded by each: at least once, at most
    once per worker."""

    def __init__(self, *, max_entries: int = 20_000) -> None:
        self._max_entries = max_entries
        self._expiry: OrderedDict[Release, float] = OrderedDict()  # wall-clock seconds
        self._lock = threading.Lock()

    def __contains__(self, release: Release) -> bool:
        with self._lock:
            expires = self._expiry.get(release)
            return expires is not None and expires > time.time()

    def add(self, release: Release, expires: float) -> None:
        with self._lock:
            self._expiry[release] = expires
            self._expiry.move_to_end(release)
            while len(self._expiry) > self._max_entries:
                self._expiry.popitem(last=False)


@dataclass(frozen=True)
class UserInfo:
    claims: dict[str, Any]
    client: Client
    # What this call released, until when; None when an earlier call recorded the same.
    release: Release | None = None
    expires: float = 0.0

    @property
    def signing_algorithm(self) -> str | None:
        alg = self.client.registration.get("userinfo_signed_response_alg")
        return str(alg) if alg else None

    def as_jwt(
        self, keys: KeySnapshot, *, issuer: str, client_keys: ClientKeyResolver
    ) -> str | None:
        """The answer as the agency registered it (Core 5.3.2): signed (with ``iss`` and
        ``aud``), encrypted (``oidc.encryption``), or signed then encrypted; None for plain
        JSON."""
        agency = AgencyClient(self.client)
        alg = self.signing_algorithm
        if alg is None:
            return encrypted_for(
                agency,
                json.dumps(self.claims),
                purpose="userinfo",
                client_keys=client_keys,
                nested=False,
            )
        signed = keys.sign({**self.claims, "iss": issuer, "aud": self.client.client_id}, alg)
        encrypted = encrypted_for(
            agency, signed, purpose="userinfo", client_keys=client_keys, nested=True
        )
        return encrypted or signed


@dataclass(frozen=True)
class Presentation:
    """How the request presented its access token: ``scheme`` ``bearer`` or ``dpop`` (RFC
    9449 section 7.1, with the ``DPoP`` header values as ``proofs``), to which method and URL."""

    scheme: str
    proofs: list[str]
    method: str
    url: str


def check_holder(
    session: Session,
    token: str,
    claims: dict[str, Any],
    presented: Presentation,
    *,
    now: datetime,
) -> None:
    """A DPoP-bound token (``cnf.jkt``) only with the DPoP scheme and a proof by its key,
    made for this request and this token (``ath``); a bearer token only as a bearer token
    (RFC 9449 section 7). Refusals with the DPoP scheme answer with a DPoP challenge."""
    bound = claims.get("cnf", {}).get("jkt") if isinstance(claims.get("cnf"), dict) else None
    if presented.scheme != "dpop":
        if bound is not None:
            raise InvalidAccessTokenError("a DPoP-bound token presented as a bearer token")
        return
    try:
        proof = dpop.verify_proof(
            session,
            presented.proofs,
            method=presented.method,
            url=presented.url,
            now=now,
            access_token=token,
        )
    except dpop.InvalidDPoPProofError as refused:
        raise dpop.DPoPChallengeError("invalid_dpop_proof", refused.description) from None
    if bound is None or proof.jkt != bound:
        raise dpop.DPoPChallengeError("invalid_token", "the access token is not bound to this key")


def userinfo(
    session: Session,
    token: str,
    *,
    presented: Presentation,
    keys: KeySnapshot,
    issuer: str,
    regions: RegionTable,
    now: datetime,
    events: EventContext | None = None,
    recorded: RecordedReleases | None = None,
) -> UserInfo:
    """The consented claims for ``token``. The release is recorded in the audit trail unless
    ``recorded`` holds it already; the caller adds ``UserInfo.release`` to ``recorded`` once
    the transaction has committed."""
    claims, found = _live_grant(session, token, presented, keys=keys, issuer=issuer, now=now)
    grant, client, citizen = found.grant, found.client, found.citizen
    # A verified claim stands on the consent to the claim itself.
    released = [
        claim
        for claim in grant.userinfo_claims
        if claim.removeprefix(verified_claims.PREFIX) in found.consented_claims
    ]
    values = claim_values(citizen, released, regions=regions, today=now.date())
    release = (str(claims["jti"]), tuple(sorted(values)))
    # A guardian's token for a child names the guardian (``act``) as the token itself does.
    answer = {"sub": claims["sub"], **({"act": claims["act"]} if "act" in claims else {}), **values}
    if recorded is not None and release in recorded:
        return UserInfo(answer, client)
    trail.record(
        session,
        "claims:released",
        context=events,
        actor="client",
        client_id=client.client_id,
        subject=citizen_ref(citizen.id),
        details={
            "claims": sorted(values),
            "acr": grant.acr,
            "endpoint": "userinfo",
            **guardian_detail(grant.actor_citizen_id),
        },
        now=now,
    )
    return UserInfo(answer, client, release, float(claims["exp"]))


def _live_grant(
    session: Session,
    token: str,
    presented: Presentation,
    *,
    keys: KeySnapshot,
    issuer: str,
    now: datetime,
) -> tuple[dict[str, Any], GrantStanding]:
    """The token's claims and its grant, standing; refused in the scheme the token came with
    (RFC 9449 section 7.1: a DPoP challenge for the DPoP scheme)."""
    try:
        claims = decode_access_token(
            token, keys=keys, issuer=issuer, now=now, resource=presented.url
        )
        check_holder(session, token, claims, presented, now=now)
        public_id = grant_public_id(claims)
        found = grant_standing(session, public_id, now=now) if public_id is not None else None
        if found is None:
            raise InvalidAccessTokenError("no citizen's grant behind the token")
        if found.problem is not None:
            raise InvalidAccessTokenError(found.problem)
        if found.client.client_id != claims["client_id"]:
            raise InvalidAccessTokenError("the token's client is not the grant's")
    except InvalidAccessTokenError as refused:
        if presented.scheme == "dpop":
            raise dpop.DPoPChallengeError("invalid_token", refused.reason) from None
        raise
    return claims, found
