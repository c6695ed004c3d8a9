"""Logging out everywhere: ending a browser session, and telling the agencies.

RP-initiated logout is authlib's ``EndSessionEndpoint`` (the id_token_hint and the exact
post_logout_redirect_uri checks are its); ending a session queues an OpenID Connect
Back-Channel Logout 1.0 delivery for every agency the session logged in to that registered a
``backchannel_logout_uri``. Deliveries are rows in the logout's own transaction (an outbox),
so a crash cannot lose one, and any worker may send them; a failing endpoint is retried with
exponential backoff and never holds up the citizen's page.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oidc.rpinitiated import EndSessionEndpoint
from joserfc.jwk import KeySet
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from digital_id.audit import trail
from digital_id.audit.trail import EventContext, citizen_ref
from digital_id.clients.models import Client
from digital_id.consent import receipts
from digital_id.consent import service as consent_service
from digital_id.grants.models import AuthorizationGrant
from digital_id.keys.store import ALGORITHMS as ID_TOKEN_ALGORITHMS
from digital_id.keys.store import KeySnapshot
from digital_id.oidc.jwt_policy import UnacceptableJwtError, check_jwt
from digital_id.oidc.provider import AgencyClient, ProviderContext, revoke_grant
from digital_id.outbound import Outbound, OutboundError
from digital_id.sessions import service as sessions
from digital_id.sessions.models import BrowserSession, LogoutDelivery

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
MAX_ATTEMPTS = 8
LOGOUT_TOKEN_LIFETIME = 120
# A claimed delivery is someone's for this long; if that worker dies, another retries.
DELIVERY_LEASE = timedelta(seconds=60)


def end_browser_session(
    session: Session,
    browser_session: BrowserSession,
    *,
    pairwise_secret: bytes,
    now: datetime,
    events: EventContext | None = None,
    actor: str = "citizen",
) -> int:
    """End the session and queue a back-channel logout for each agency it logged in to."""
    sessions.end(session, browser_session, now=now)
    trail.record(
        session,
        "session:ended",
        context=events,
        actor=actor,
        subject=citizen_ref(browser_session.citizen_id),
        details={"sid": browser_session.sid},
        now=now,
    )
    clients = session.scalars(
        select(Client)
        .join(AuthorizationGrant, AuthorizationGrant.client_id == Client.id)
        .where(AuthorizationGrant.session_id == browser_session.id, Client.enabled.is_(True))
        .distinct()
    ).all()
    queued = 0
    for client in clients:
        if not client.registration.get("backchannel_logout_uri"):
            continue
        session.add(
            LogoutDelivery(
                client_id=client.id,
                sub=AgencyClient(client).subject_for(browser_session.citizen_id, pairwise_secret),
                sid=browser_session.sid,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
        queued += 1
    session.flush()
    return queued


def end_citizen_sessions(
    session: Session,
    citizen_id: int,
    *,
    pairwise_secret: bytes,
    now: datetime,
    reason: str,
    actor: str,
    keep: BrowserSession | None = None,
    events: EventContext | None = None,
) -> int:
    """End every session of the citizen but ``keep`` through the logout path (so each agency
    they logged in to gets its back-channel logout) and revoke every grant not bound to
    ``keep``, refresh token families included.

    Called when the citizen may no longer be who they were: an operator's block, the
    register marking them deceased or blocked, a new PIN, a reset second factor. Revoking
    rather than merely refusing means lifting a block later does not bring old tokens back.
    Returns the number of back-channel logouts queued."""
    queued = 0
    for browser_session in session.scalars(
        select(BrowserSession).where(
            BrowserSession.citizen_id == citizen_id,
            BrowserSession.ended_at.is_(None),
        )
    ).all():
        if keep is not None and browser_session.id == keep.id:
            continue
        queued += end_browser_session(
            session,
            browser_session,
            pairwise_secret=pairwise_secret,
            now=now,
            events=events,
            actor=actor,
        )
    grants = select(AuthorizationGrant.id).where(
        AuthorizationGrant.citizen_id == citizen_id, AuthorizationGrant.revoked_at.is_(None)
    )
    if keep is not None:
        grants = grants.where(
            AuthorizationGrant.session_id.is_(None) | (AuthorizationGrant.session_id != keep.id)
        )
    for grant_id in session.scalars(grants).all():
        revoke_grant(session, grant_id, now, reason=reason, events=events, actor=actor)
    return queued


def logout_token(keys: KeySnapshot, issuer: str, client: Client, delivery: LogoutDelivery) -> str:
    """Back-Channel Logout 1.0 section 2.4: sub and sid, the event, a jti, never a nonce."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": client.client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_LIFETIME,
        "jti": secrets.token_urlsafe(16),
        "sub": delivery.sub,
        "sid": delivery.sid,
        "events": {BACKCHANNEL_EVENT: {}},
    }
    alg = str(client.registration.get("id_token_signed_response_alg", "RS256"))
    return keys.sign(claims, alg, header={"typ": "logout+jwt"})


@dataclass(frozen=True)
class Courier:
    """Sends due back-channel logouts; ``deliver_due`` is safe to call from many workers."""

    engine: Engine
    issuer: str
    retry_base: timedelta
    # The agency names the URL: the deadline, size cap and address rules of every call out.
    outbound: Outbound

    def deliver_due(self, keys: KeySnapshot, *, now: datetime, limit: int = 20) -> int:
        with Session(self.engine) as session:
            due = (
                select(LogoutDelivery.id)
                .where(
                    LogoutDelivery.delivered_at.is_(None),
                    LogoutDelivery.abandoned_at.is_(None),
                    LogoutDelivery.next_attempt_at <= now,
                )
                .order_by(LogoutDelivery.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            claimed = session.scalars(
                update(LogoutDelivery)
                .where(LogoutDelivery.id.in_(due))
                .values(
                    next_attempt_at=now + DELIVERY_LEASE,
                    attempts=LogoutDelivery.attempts + 1,
                )
                .returning(LogoutDelivery.id)
            ).all()
            session.commit()
            for delivery_id in claimed:
                self._attempt(session, keys, delivery_id, now)
                session.commit()
        return len(claimed)

    def _attempt(
        self, session: Session, keys: KeySnapshot, delivery_id: int, now: datetime
    ) -> None:
        delivery = session.get_one(LogoutDelivery, delivery_id)
        client = session.get_one(Client, delivery.client_id)
        uri = client.registration.get("backchannel_logout_uri")
        error = None
        if not uri:
            error = "the client no longer has a backchannel_logout_uri"
        else:
            try:
                response = self.outbound.post_form(
                    uri, {"logout_token": logout_token(keys, self.issuer, client, delivery)}
                )
                if response.status not in (200, 204):
                    error = f"HTTP {response.status}"
            except OutboundError as exc:
                error = str(exc)[:200]
        if error is None:
            delivery.delivered_at = now
        elif delivery.attempts >= MAX_ATTEMPTS:
            delivery.abandoned_at = now
            delivery.last_error = error
        else:
            delivery.next_attempt_at = now + self.retry_base * (2 ** (delivery.attempts - 1))
            delivery.last_error = error


# Claims that only our other JWTs carry: an access token (RFC 9068), a logout token, a
# consent receipt. A JWT holding one is not an ID token, whatever else it says.
_NOT_ID_TOKEN_CLAIMS = frozenset({"client_id", "scope", "events", "decision", "agency"})


class EndSession(EndSessionEndpoint):  # type: ignore[misc]
    """RP-initiated logout: authlib checks the hint's signature and the redirect URI; we add
    that the hint is an ID token we issued to a registered agency for a browser session.

    Every JWT we sign verifies against the same keys: a ``client_credentials`` access token,
    or a consent receipt any citizen can download, would otherwise pass as a hint and log a
    browser out unasked. So the hint must be an ID token (header ``typ`` JWT, none of the
    other kinds' claims), its ``aud`` a registered agency, and it must name a ``sid``; the
    web layer then ends the browser's session only if that ``sid`` is the session's own."""

    def __init__(self, context: ProviderContext) -> None:
        super().__init__()
        self.context = context

    def get_server_jwks(self) -> KeySet:
        return self.context.keys.verification_keys()

    def get_algorithms(self) -> list[str]:
        return list(ID_TOKEN_ALGORITHMS)

    def validate_request(self, request: Any) -> Any:
        hint = request.payload.data.get("id_token_hint")
        header: dict[str, Any] = {}
        if hint:
            try:
                header = check_jwt(hint, algorithms=ID_TOKEN_ALGORITHMS)
            except UnacceptableJwtError as exc:
                raise InvalidRequestError(f"id_token_hint: {exc}") from None
        validated = super().validate_request(request)
        claims = validated.id_token_claims
        if claims is not None:
            if claims.get("iss") != self.context.settings.issuer:
                raise InvalidRequestError("the id_token_hint was not issued here")
            if not self._is_id_token(header, claims):
                raise InvalidRequestError("the id_token_hint is not an ID token for a session")
        return validated

    def _is_id_token(self, header: dict[str, Any], claims: dict[str, Any]) -> bool:
        aud = claims.get("aud")
        return (
            str(header.get("typ", "JWT")).upper() == "JWT"
            and not _NOT_ID_TOKEN_CLAIMS & claims.keys()
            and isinstance(claims.get("sub"), str)
            and isinstance(claims.get("sid"), str)
            and isinstance(aud, str)
            and self.server.query_client(aud) is not None
        )

    def end_session(self, end_session_request: Any) -> None:
        """Ending the browser's session is the web layer's (it holds the cookie)."""


def withdraw_consent(
    session: Session,
    keys: KeySnapshot,
    *,
    issuer: str,
    pairwise_secret: bytes,
    citizen_id: int,
    client: Client,
    now: datetime,
    events: EventContext | None = None,
) -> bool:
    """The citizen takes an agency's access away: consent withdrawn, its tokens revoked, a
    withdrawal receipt issued, and a back-channel logout queued for each session that agency
    had with the citizen. The next login to the agency asks for consent again. False when
    there was nothing to withdraw."""
    withdrawal = consent_service.withdraw(
        session,
        citizen_id=citizen_id,
        client_pk=client.id,
        client_id=client.client_id,
        now=now,
        events=events,
    )
    if withdrawal is None:
        return False
    agency = AgencyClient(client)
    sub = agency.subject_for(citizen_id, pairwise_secret)
    receipts.issue(
        session,
        keys,
        issuer=issuer,
        citizen_id=citizen_id,
        client_pk=client.id,
        client_id=client.client_id,
        agency_name=agency.name("id"),
        subject=sub,
        decision="withdrawn",
        claims=withdrawal.consent.claims,
        purpose=client.registration.get("purpose"),
        now=now,
    )
    if client.registration.get("backchannel_logout_uri"):
        for browser_session in session.scalars(
            select(BrowserSession).where(BrowserSession.id.in_(withdrawal.session_ids))
        ):
            session.add(
                LogoutDelivery(
                    client_id=client.id,
                    sub=sub,
                    sid=browser_session.sid,
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
    session.flush()
    return True
