"""Back-channel logout (OpenID Connect Back-Channel Logout 1.0): the outbox, the logout
token, and the Courier that delivers them.

A delivery is a row written in the logout's own transaction (an outbox), so a crash cannot
lose one, and any worker may send it; a failing endpoint is retried with exponential backoff
and never holds up the citizen's page.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from digital_id.clients.models import Client
from digital_id.keys.store import KeySnapshot
from digital_id.outbound import Outbound, OutboundError
from digital_id.sessions.models import LogoutDelivery

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
MAX_ATTEMPTS = 8
LOGOUT_TOKEN_LIFETIME = 120
# A claimed delivery is someone's for this long; if that worker dies, another retries.
DELIVERY_LEASE = timedelta(seconds=60)


def queue_logout(session: Session, client: Client, *, sub: str, sid: str, now: datetime) -> None:
    """Queue a back-channel logout of session ``sid`` for ``client``, due now."""
    session.add(
        LogoutDelivery(
            client_id=client.id,
            sub=sub,
            sid=sid,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


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

    def deliver_due(
        self,
        keys: KeySnapshot,
        *,
        now: datetime,
        limit: int = 20,
        stopping: Callable[[], bool] = lambda: False,
    ) -> int:
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
                if stopping():
                    # The process is shutting down: the rest keep their lease and any worker
                    # retries them when it runs out, and no connection outlives the pool.
                    break
                self._attempt(session, keys, delivery_id, now)
                session.commit()
        return len(claimed)

    def _attempt(
        self, session: Session, keys: KeySnapshot, delivery_id: int, now: datetime
    ) -> None:
        """One delivery: its token made from what is read, the read's transaction ended (its
        connection back in the pool) before the agency is called, the outcome written after.
        An agency's endpoint may take the whole outbound deadline to answer, or be made to:
        no database connection, snapshot or lock waits on it."""
        delivery = session.get_one(LogoutDelivery, delivery_id)
        client = session.get_one(Client, delivery.client_id)
        uri = client.registration.get("backchannel_logout_uri")
        token = logout_token(keys, self.issuer, client, delivery) if uri else None
        session.commit()  # nothing to write yet: the read ends and the connection goes back
        error = None
        if not uri or token is None:
            error = "the client no longer has a backchannel_logout_uri"
        else:
            try:
                response = self.outbound.post_form(uri, {"logout_token": token})
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
