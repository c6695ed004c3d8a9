"""Login completion and step-up, one service for the authorization flow's pages
(``/authorize/login``, ``/authorize/otp``) and the portal's (``/account/login``,
``/account/otp``): the PIN login that becomes a browser session, and the one-time code that
raises it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from digital_id.accounts import pin_login
from digital_id.accounts.pin_login import LoginOutcome
from digital_id.consent.service import StoredConsent
from digital_id.levels import LOA_LOW, METHODS
from digital_id.oidc import assurance
from digital_id.registry.models import Citizen
from digital_id.sessions import service as sessions
from digital_id.sessions.ending import end_browser_session
from digital_id.sessions.models import BrowserSession
from digital_id.throttle.limiter import Charge
from digital_id.web.forms import LoginForm, PortalLoginForm
from digital_id.web.rendering import Page
from digital_id.web.services import SESSION_COOKIE, client_ip, events
from digital_id.web.unit_of_work import after_commit


@dataclass(frozen=True)
class LoggedIn:
    """A PIN login that passed: the new session (at the PIN's level) and its citizen, with
    their consent to the agency the login is for, when it was read with them."""

    session: BrowserSession
    citizen: Citizen
    consent: StoredConsent | None = None


def log_in(
    page: Page,
    db: Session,
    form: LoginForm | PortalLoginForm,
    *,
    now: datetime,
    also_charge: Iterable[Charge] = (),
    agency: Callable[[], int | None] = lambda: None,
) -> HTMLResponse | LoggedIn | None:
    """A login form's NIK and PIN (the flow's or the portal's): the refusal page (a foreign
    CSRF token, a spent rate limit, with ``also_charge`` charged alongside the login's own),
    None for a wrong NIK or PIN (the failure counts, as the unit of work commits it), or the
    new session (the page's answer will carry its cookies) with its citizen.

    ``agency``: the primary key of the agency the login is for (None: none, or unknown),
    asked only once the login is charged; the citizen's consent to it is read with them."""
    services = page.services
    nik = form.nik.strip()
    browser = recognised_browser(page, nik, now)
    ip = client_ip(page.request)
    charges = (*services.limits.login(ip, nik, recognised=browser is not None), *also_charge)
    if (refusal := page.refusal(db, form.csrf_token, *charges)) is not None:
        return refusal
    outcome = pin_login.authenticate(
        db,
        services.pin_hasher,
        nik=nik,
        pin=form.pin,
        policy=services.lockout_policy,
        now=now,
        events=events(page.request),
        browser=browser,
        agency_pk=agency(),
    )
    if outcome.citizen is None:
        return None
    browser_session = _begin_session(page, db, outcome, nik=nik, now=now)
    return LoggedIn(browser_session, outcome.citizen, outcome.consent)


def step_up(
    page: Page, db: Session, browser_session: BrowserSession, code: str, *, now: datetime
) -> bool:
    """The one-time code for the session's citizen: whether it passed (the session
    now stands at the second factor's level); a wrong code counts towards its lockout."""
    services = page.services
    return assurance.pass_second_factor(
        db,
        services.totp_cipher,
        browser_session,
        code.strip(),
        policy=services.lockout_policy,
        now=now,
    )


def recognised_browser(page: Page, nik: str, now: datetime) -> str | None:
    """The recognised browser this browser's cookie names for this NIK, or None (a stranger
    to it): decides the rate limits before any database work, and the lock that applies."""
    services = page.services
    cookie = page.request.cookies.get(services.recognised_cookie)
    return services.browser_cookies.read(cookie, nik, now=now)


def _begin_session(
    page: Page, db: Session, outcome: LoginOutcome, *, nik: str, now: datetime
) -> BrowserSession:
    """After a successful PIN login: the browser's previous session, if any, ends through
    the logout path (a new login is a new session, so no fixation; and the agencies the old
    one logged in to, maybe as another citizen, hear of it; the courier is woken once that
    is committed), a new session starts on the recognised browser, and the page's answer
    will carry the new cookies (``Page.logged_in``)."""
    services = page.services
    assert outcome.citizen is not None
    assert outcome.browser is not None
    previous = sessions.resume(
        db, page.request.cookies.get(SESSION_COOKIE), policy=services.session_policy, now=now
    )
    if previous is not None and end_browser_session(
        db,
        previous,
        pairwise_secret=services.pairwise_secret,
        now=now,
        events=events(page.request),
    ):
        after_commit(db, services.logged_out)
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
    return browser_session
