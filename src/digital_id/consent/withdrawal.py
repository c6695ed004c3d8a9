"""Withdrawing consent, orchestrated: the consent ends, the agency's grants are revoked, a
withdrawal receipt is issued and the agency is told of each session it had (back-channel)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.audit.trail import EventContext
from digital_id.clients.models import Client
from digital_id.clients.subjects import subject_for
from digital_id.consent import receipts
from digital_id.consent import service as consent_service
from digital_id.keys.store import KeySnapshot
from digital_id.sessions.backchannel import queue_logout
from digital_id.sessions.models import BrowserSession


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
    guardian_id: int | None = None,
) -> bool:
    """The citizen takes an agency's access away: consent withdrawn, its tokens revoked, a
    withdrawal receipt issued, and a back-channel logout queued for each session that agency
    had with the citizen. The next login to the agency asks for consent again. False when
    there was nothing to withdraw. ``guardian_id``: the guardian withdrawing it for the
    citizen, a child (who decides that they may is the caller's rule,
    ``accounts.delegation``)."""
    withdrawal = consent_service.withdraw(
        session,
        citizen_id=citizen_id,
        client_pk=client.id,
        client_id=client.client_id,
        now=now,
        events=events,
        withdrawn_by=guardian_id,
    )
    if withdrawal is None:
        return False
    sub = subject_for(client, citizen_id, pairwise_secret)
    receipts.issue(
        session,
        keys,
        issuer=issuer,
        citizen_id=citizen_id,
        client_pk=client.id,
        client_id=client.client_id,
        agency_name=client.display_name("id"),
        subject=sub,
        decision="withdrawn",
        claims=withdrawal.consent.claims,
        purpose=client.registration.get("purpose"),
        now=now,
        actor=receipts.Actor(guardian_id, subject_for(client, guardian_id, pairwise_secret))
        if guardian_id is not None
        else None,
    )
    if client.registration.get("backchannel_logout_uri"):
        for browser_session in session.scalars(
            select(BrowserSession).where(BrowserSession.id.in_(withdrawal.session_ids))
        ):
            queue_logout(session, client, sub=sub, sid=browser_session.sid, now=now)
    session.flush()
    return True
