"""Ending browser sessions through the logout path: one session, or all of a citizen's.

Ending a session queues a back-channel logout for every agency it logged in to that
registered a ``backchannel_logout_uri``, in the same transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.audit import trail
from digital_id.audit.trail import EventContext, citizen_ref
from digital_id.clients.subjects import subject_for
from digital_id.grants.lookup import agencies_of_session
from digital_id.grants.revocation import revoke_citizen_grants
from digital_id.sessions import service as sessions
from digital_id.sessions.backchannel import queue_logout
from digital_id.sessions.models import BrowserSession


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
    queued = 0
    for client in agencies_of_session(session, browser_session.id):
        if not client.registration.get("backchannel_logout_uri"):
            continue
        queue_logout(
            session,
            client,
            sub=subject_for(client, browser_session.citizen_id, pairwise_secret),
            sid=browser_session.sid,
            now=now,
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
    revoke_citizen_grants(
        session,
        citizen_id,
        now,
        reason=reason,
        actor=actor,
        sparing_session_id=keep.id if keep is not None else None,
        events=events,
    )
    return queued
