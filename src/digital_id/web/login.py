"""The one way a PIN login becomes a browser session, shared by the authorization flow's
login page (``/authorize/login``) and the portal's (``/account/login``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from digital_id.accounts.pin_login import LoginOutcome
from digital_id.audit.trail import EventContext
from digital_id.levels import LOA_LOW, METHODS
from digital_id.sessions import service as sessions
from digital_id.sessions.ending import end_browser_session
from digital_id.sessions.models import BrowserSession
from digital_id.web.rendering import Page
from digital_id.web.services import SESSION_COOKIE


def recognised_browser(page: Page, nik: str, now: datetime) -> str | None:
    """The recognised browser this browser's cookie names for this NIK, or None (a stranger
    to it): decides the rate limits before any database work, and the lock that applies."""
    services = page.services
    cookie = page.request.cookies.get(services.recognised_cookie)
    return services.browser_cookies.read(cookie, nik, now=now)


def begin_session(
    page: Page,
    db: Session,
    outcome: LoginOutcome,
    *,
    nik: str,
    now: datetime,
    events: EventContext,
) -> tuple[BrowserSession, int]:
    """After a successful PIN login: the browser's previous session, if any, ends through
    the logout path (a new login is a new session, so no fixation; and the agencies the old
    one logged in to, maybe as another citizen, hear of it), a new session starts on the
    recognised browser, and the page's answer will carry the new cookies (``Page.logged_in``).
    Returns the session and the number of back-channel logouts queued; the caller commits,
    then wakes the courier if any were."""
    services = page.services
    assert outcome.citizen is not None
    assert outcome.browser is not None
    queued = 0
    previous = sessions.resume(
        db, page.request.cookies.get(SESSION_COOKIE), policy=services.session_policy, now=now
    )
    if previous is not None:
        queued = end_browser_session(
            db, previous, pairwise_secret=services.pairwise_secret, now=now, events=events
        )
    browser_session, token = sessions.start(
        db,
        citizen_id=outcome.citizen.id,
        acr=LOA_LOW,
        amr=METHODS[LOA_LOW],
        now=now,
        device_hint=page.request.headers.get("user-agent"),
        recognised_browser_id=outcome.browser.id,
    )
    cookie = services.browser_cookies.issue(outcome.browser, nik)
    page.logged_in(token, (cookie, int((outcome.browser.expires_at - now).total_seconds())))
    return browser_session, queued
