"""The portal's citizen session: the CSRF check, the browser's session at its citizen's level,
or the page a browser without one sees instead (the login page, or the one-time-code page)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from digital_id import levels
from digital_id.accounts import standing
from digital_id.db.types import utc_now
from digital_id.oidc import assurance
from digital_id.sessions import service as sessions
from digital_id.sessions.models import BrowserSession
from digital_id.web import apidoc
from digital_id.web.apidoc import CSRF_REFUSED, PAGE_UNAVAILABLE, redirect
from digital_id.web.forms import PostedCsrf
from digital_id.web.rendering import Page
from digital_id.web.services import SESSION_COOKIE, ServicesDep
from digital_id.web.unit_of_work import UnitOfWork

# Every portal page answers a browser without a session with the login page (200); every
# form refuses a foreign CSRF token with the error page (400); every change ends in a 303.
LOGIN_PAGE = (
    "The page; or the portal's login page when the browser has no session, or its one-time-code "
    "page when the session has not passed the citizen's second factor."
)
NO_SESSION = "The login page (no session), or the one-time-code page (a pending session)."
PORTAL_FORM: apidoc.Responses = {
    303: redirect("Done: back to the portal."),
    **CSRF_REFUSED,
    **PAGE_UNAVAILABLE,
}


@dataclass(frozen=True)
class Visit:
    """A portal request from a citizen whose session has reached their level."""

    view: Page
    session: BrowserSession


@dataclass(frozen=True)
class Pending:
    """A portal request from a browser with a live session, maybe below its citizen's level
    (a PIN login waiting for the one-time code)."""

    view: Page
    session: BrowserSession
    at_level: bool


def _view(request: Request, services: ServicesDep) -> Page:
    return Page(request, services, request.query_params.get("ui_locales"))


View = Annotated[Page, Depends(_view)]


def _live_session(view: Page, db: UnitOfWork) -> BrowserSession | None:
    """The browser's live session, at whatever level, if the one rule still lets its citizen
    in."""
    now = utc_now()
    browser_session = sessions.resume(
        db,
        view.request.cookies.get(SESSION_COOKIE),
        policy=view.services.session_policy,
        now=now,
    )
    if browser_session is None or standing.refusal(
        db, browser_session.citizen_id, now=now, browser_session_id=browser_session.id
    ):
        return None
    return browser_session


def _at_level(db: UnitOfWork, browser_session: BrowserSession) -> bool:
    """A citizen with an authenticator has passed it in this session."""
    return levels.satisfies(
        browser_session.acr, assurance.citizen_level(db, browser_session.citizen_id)
    )


def _signed_in(view: Page, db: UnitOfWork) -> Visit | Response:
    """The visit, or what a browser without a portal session sees: the one-time-code page
    when its session is below the citizen's level (the step-up asks for the code, never the
    PIN again), else the login page."""
    live = _live_session(view, db)
    if live is None:
        return login_page(view)
    if not _at_level(db, live):
        return code_page(view)
    return Visit(view, live)


def _page_visit(view: View, db: UnitOfWork) -> Visit | Response:
    return _signed_in(view, db)


def _form_visit(view: View, db: UnitOfWork, form: PostedCsrf) -> Visit | Response:
    """A form post: a foreign CSRF token is refused before anything else."""
    if not view.csrf_valid(form.csrf_token):
        return view.csrf_refusal()
    return _signed_in(view, db)


def _download_visit(view: View, db: UnitOfWork) -> Visit | Response:
    """A download: a browser without a portal session goes to the portal."""
    live = _live_session(view, db)
    if live is None or not _at_level(db, live):
        return RedirectResponse("/account", status_code=303)
    return Visit(view, live)


def _pending_visit(view: View, db: UnitOfWork, form: PostedCsrf) -> Pending | Response:
    """The one-time-code form: the session may be below its citizen's level."""
    if not view.csrf_valid(form.csrf_token):
        return view.csrf_refusal()
    live = _live_session(view, db)
    if live is None:
        return login_page(view)
    return Pending(view, live, at_level=_at_level(db, live))


# A route takes one of these and answers the Response at once when it gets one.
CitizenPage = Annotated[Visit | Response, Depends(_page_visit)]
CitizenForm = Annotated[Visit | Response, Depends(_form_visit)]
CitizenDownload = Annotated[Visit | Response, Depends(_download_visit)]
PendingForm = Annotated[Pending | Response, Depends(_pending_visit)]


def code_page(view: Page, *, failed: bool = False) -> HTMLResponse:
    return view.render(
        "otp.html",
        agency="",
        enrolment=None,
        failed=failed,
        action="/account/otp",
        authorization_request="",
    )


def login_page(view: Page, *, failed: bool = False) -> HTMLResponse:
    return view.render(
        "login.html",
        back_to="/account",
        agency="",
        failed=failed,
        nik="",
        action="/account/login",
        activate_url="/activate",
        authorization_request="",
    )
