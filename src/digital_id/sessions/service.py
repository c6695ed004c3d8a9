"""Starting, resuming and ending browser sessions.

The cookie carries a random token; the database keeps only its SHA-256, so a leaked table
cannot be replayed as cookies. A session ends after ``idle`` without use or ``absolute``
after login, whichever comes first, and is checked on every request (any worker).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session, joinedload

from digital_id.sessions.models import BrowserSession

# Touch the session at most this often, so a page load does not always write.
_TOUCH_INTERVAL = timedelta(seconds=60)


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta
    absolute: timedelta


def start(
    session: Session,
    *,
    citizen_id: int,
    acr: str,
    amr: list[str],
    now: datetime,
    device_hint: str | None = None,
    recognised_browser_id: int | None = None,
) -> tuple[BrowserSession, str]:
    """A new session for a citizen who has just logged in; returns it and the cookie token."""
    token = secrets.token_urlsafe(32)
    browser_session = BrowserSession(
        sid=secrets.token_urlsafe(24),
        token_hash=_token_hash(token),
        citizen_id=citizen_id,
        auth_time=now,
        acr=acr,
        amr=amr,
        device_hint=(device_hint or "")[:200] or None,
        recognised_browser_id=recognised_browser_id,
        created_at=now,
        last_seen_at=now,
    )
    session.add(browser_session)
    session.flush()
    return browser_session, token


def resume(
    session: Session, token: str | None, *, policy: SessionPolicy, now: datetime
) -> BrowserSession | None:
    """The live session the cookie token names, or None if there is none or it has lapsed."""
    if not token:
        return None
    browser_session = session.scalars(
        select(BrowserSession).where(named_by(token)).options(joinedload(BrowserSession.citizen))
    ).one_or_none()
    return still_live(session, browser_session, policy=policy, now=now)


def named_by(token: str) -> ColumnElement[bool]:
    """The condition on ``browser_sessions`` that picks the session the cookie token names,
    for a caller that reads the session together with more (``accounts.session_standing``)."""
    return BrowserSession.token_hash == _token_hash(token)


def still_live(
    session: Session,
    browser_session: BrowserSession | None,
    *,
    policy: SessionPolicy,
    now: datetime,
) -> BrowserSession | None:
    """The session as read for a cookie, if it is live: one that has lapsed is ended here and
    gives None, one in use is touched (at most every ``_TOUCH_INTERVAL``)."""
    if browser_session is None or browser_session.ended_at is not None:
        return None
    if (
        now - browser_session.last_seen_at > policy.idle
        or now - browser_session.auth_time > policy.absolute
    ):
        end(session, browser_session, now=now)
        return None
    if now - browser_session.last_seen_at > _TOUCH_INTERVAL:
        browser_session.last_seen_at = now
        session.flush()
    return browser_session


def step_up(
    session: Session, browser_session: BrowserSession, *, acr: str, amr: list[str], now: datetime
) -> None:
    """A further factor was just presented: the session now stands at ``acr``, authenticated
    now (``auth_time`` is the time of the latest authentication)."""
    browser_session.acr = acr
    browser_session.amr = amr
    browser_session.auth_time = now
    browser_session.last_seen_at = now
    session.flush()


def end(session: Session, browser_session: BrowserSession, *, now: datetime) -> None:
    session.execute(
        update(BrowserSession)
        .where(BrowserSession.id == browser_session.id, BrowserSession.ended_at.is_(None))
        .values(ended_at=now)
    )
    session.expire(browser_session)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def live_sessions(
    session: Session, citizen_id: int, *, policy: SessionPolicy, now: datetime
) -> list[BrowserSession]:
    """The citizen's sessions still within their timeouts, newest first."""
    return [
        browser_session
        for browser_session in session.scalars(
            select(BrowserSession)
            .where(BrowserSession.citizen_id == citizen_id, BrowserSession.ended_at.is_(None))
            .order_by(BrowserSession.created_at.desc())
        )
        if now - browser_session.last_seen_at <= policy.idle
        and now - browser_session.auth_time <= policy.absolute
    ]
