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

from digital_id.accounts import passkey_login, pin_login
from digital_id.accounts.models import RecognisedBrowser
from digital_id.consent.service import StoredConsent
from digital_id.levels import LOA_LOW, LOA_SUBSTANTIAL, METHODS
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
    if form.credential:
        return _log_in_with_passkey(page, db, form, nik, now=now, also_charge=also_charge)
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
    assert outcome.browser is not None
    browser_session = _begin_session(
        page, db, outcome.citizen.id, LOA_LOW, METHODS[LOA_LOW], now=now,
        recognised=(outcome.browser, nik),
    )  # fmt: skip
    return LoggedIn(browser_session, outcome.citizen, outcome.consent)


def _log_in_with_passkey(
    page: Page,
    db: Session,
    form: LoginForm | PortalLoginForm,
    nik: str,
    *,
    now: datetime,
    also_charge: Iterable[Charge],
) -> HTMLResponse | LoggedIn | None:
    """A passkey in place of the NIK and PIN: the same refusals, limits (the NIK's only when
    one was typed) and lockout; the new session starts at the substantial level."""
    services = page.services
    ip = client_ip(page.request)
    charges = (*services.limits.login(ip, nik, recognised=not nik), *also_charge)
    if (refusal := page.refusal(db, form.csrf_token, *charges)) is not None:
        return refusal
    found = passkey_login.log_in(
        db,
        page.services.relying_party,
        form.credential,
        nik=nik,
        policy=services.lockout_policy,
        now=now,
        events=events(page.request),
    )
    if found is None:
        return None
    citizen, login = found
    browser_session = _begin_session(page, db, citizen.id, LOA_SUBSTANTIAL, login.amr, now=now)
    return LoggedIn(browser_session, citizen)


def step_up(
    page: Page,
    db: Session,
    browser_session: BrowserSession,
    code: str,
    *,
    now: datetime,
    credential: str = "",
) -> bool:
    """The one-time code, or a passkey in its place (``credential``), for the session's
    citizen: whether it passed (the session now stands at the second factor's level); a
    failure counts towards the second factor's lockout."""
    services = page.services
    return assurance.pass_second_factor(
        db,
        services.totp_cipher,
        browser_session,
        code.strip(),
        policy=services.lockout_policy,
        now=now,
        passkey=assurance.PasskeyAnswer(
            credential, page.services.relying_party, events(page.request)
        )
        if credential
        else None,
    )


def recognised_browser(page: Page, nik: str, now: datetime) -> str | None:
    """The recognised browser this browser's cookie names for this NIK, or None (a stranger
    to it): decides the rate limits before any database work, and the lock that applies."""
    services = page.services
    cookie = page.request.cookies.get(services.recognised_cookie)
    return services.browser_cookies.read(cookie, nik, now=now)


def _begin_session(
    page: Page,
    db: Session,
    citizen_id: int,
    acr: str,
    amr: list[str],
    *,
    now: datetime,
    recognised: tuple[RecognisedBrowser, str] | None = None,
) -> BrowserSession:
    """After a successful login: the browser's previous session, if any, ends through the
    logout path (a new login is a new session, so no fixation; and the agencies the old one
    logged in to, maybe as another citizen, hear of it; the courier is woken once that is
    committed), a new session starts (on the recognised browser, after a PIN), and the
    page's answer will carry the new cookies (``Page.logged_in``). ``recognised``: after a
    PIN, the browser now recognised for the NIK typed, whose cookie the answer renews."""
    services = page.services
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
        citizen_id=citizen_id,
        acr=acr,
        amr=amr,
        now=now,
        device_hint=page.request.headers.get("user-agent"),
        recognised_browser_id=recognised[0].id if recognised is not None else None,
    )
    cookie = None
    if recognised is not None:
        browser, nik = recognised
        issued = services.browser_cookies.issue(browser, nik)
        cookie = (issued, int((browser.expires_at - now).total_seconds()))
    page.logged_in(token, cookie)
    return browser_session
