"""The citizen's other pages: activating an account, logging out (RP-Initiated Logout 1.0),
and switching the page language."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import OAuth2Error
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from digital_id.accounts import activation
from digital_id.accounts.pins import InvalidPinError
from digital_id.db.types import utc_now
from digital_id.oidc.requests import ProviderRequest
from digital_id.sessions import service as sessions
from digital_id.sessions.ending import end_browser_session
from digital_id.web import apidoc, forms
from digital_id.web.apidoc import CSRF_REFUSED, PAGE_UNAVAILABLE, page, redirect, throttled_page
from digital_id.web.forms import Form, FormPairs, LogoutForm, PostedActivation, read
from digital_id.web.i18n import LANGUAGES
from digital_id.web.rendering import Page
from digital_id.web.services import (
    LANGUAGE_COOKIE,
    SESSION_COOKIE,
    Services,
    ServicesDep,
    client_ip,
    events,
)
from digital_id.web.unit_of_work import UnitOfWork, after_commit

router = APIRouter(tags=["pages"])


@router.get(
    "/activate",
    summary="The activation page: set a PIN with the code from the letter.",
    response_class=HTMLResponse,
    openapi_extra=apidoc.query(apidoc.UiLocales),
)
def activation_form(request: Request, services: ServicesDep) -> HTMLResponse:
    page = Page(request, services, request.query_params.get("ui_locales"))
    return _activation_page(page)


@router.post(
    "/activate",
    summary="Activate an account: NIK, activation code and a new PIN.",
    response_class=HTMLResponse,
    response_description="The account is active.",
    responses={
        400: page("The activation page with the reason: wrong code, PIN rules, CSRF token."),
        **throttled_page(),
        **PAGE_UNAVAILABLE,
    },
    openapi_extra=apidoc.query(apidoc.UiLocales) | apidoc.form(forms.ActivationForm),
)
def activate(
    request: Request, db: UnitOfWork, services: ServicesDep, form: PostedActivation
) -> HTMLResponse:
    page = Page(request, services, request.query_params.get("ui_locales"))
    nik = form.nik.strip()
    code = form.code.strip()
    charges = services.limits.activation(client_ip(request), nik)
    if (refusal := page.refusal(db, form.csrf_token, *charges)) is not None:
        return refusal
    try:
        activation.activate(
            db,
            services.pin_hasher,
            nik=nik,
            code=code,
            pin=form.pin,
            pin_confirm=form.pin_confirm,
            now=utc_now(),
        )
    except activation.ActivationError:
        return _activation_page(page, status=400, error_key="activate.invalid_code", nik=nik)
    except InvalidPinError as exc:
        return _activation_page(
            page, status=400, error_key=f"activate.pin.{exc.rule}", nik=nik, code=code
        )
    return page.render("activated.html", back_to="/activate")


def _activation_page(
    page: Page, *, status: int = 200, error_key: str | None = None, nik: str = "", code: str = ""
) -> HTMLResponse:
    return page.render(
        "activate.html",
        status=status,
        back_to="/activate",
        action=page.keeping_language("/activate"),
        error_key=error_key,
        nik=nik,
        code=code,
    )


_LOGOUT: apidoc.Responses = {
    303: redirect("Back to the agency's registered post_logout_redirect_uri."),
    **PAGE_UNAVAILABLE,
}


@router.get(
    "/logout",
    summary="RP-Initiated Logout 1.0: end the session, or ask the citizen to confirm.",
    response_class=HTMLResponse,
    response_description="The confirmation page, or the logged-out page.",
    responses=_LOGOUT,
    openapi_extra=apidoc.query(apidoc.LogoutRequest),
)
def end_session_get(request: Request, db: UnitOfWork, services: ServicesDep) -> Response:
    return _end_session(request, db, services, list(request.query_params.multi_items()))


@router.post(
    "/logout",
    summary="RP-Initiated Logout 1.0 by form POST, and the citizen's confirmation.",
    response_class=HTMLResponse,
    response_description="The confirmation page, or the logged-out page.",
    responses=_LOGOUT | CSRF_REFUSED,
    openapi_extra=apidoc.form(forms.LogoutForm),
)
def end_session_post(
    request: Request, db: UnitOfWork, services: ServicesDep, form: Form
) -> Response:
    if any(name == "csrf_token" for name, _ in form):
        return _confirmed_logout(request, db, services, form)
    return _end_session(request, db, services, form)


def _end_session(
    request: Request, db: Session, services: Services, parameters: FormPairs
) -> Response:
    """RP-initiated logout 1.0. With a valid id_token_hint from us the session ends at once,
    and the browser returns to the agency only at an exactly registered
    post_logout_redirect_uri. Without one, the citizen is asked to confirm (so a link on
    someone else's site cannot log them out) and stays here."""
    page = Page(request, services, dict(parameters).get("ui_locales"))
    provider = services.provider(db, events(request))
    oauth_request = ProviderRequest("GET", services.endpoint("/logout"), {}, query=parameters)
    problem = oauth_request.parameter_problem()
    if problem is not None:  # never redirected, never trusted: the error page, nothing ended
        return page.render(
            "error.html",
            status=400,
            back_to="/logout",
            message_key="error.bad_parameter",
            detail=problem,
        )
    try:
        validated = provider.validate_endpoint_request("end_session", oauth_request)
    except OAuth2Error:
        validated = None
    if validated is None or validated.id_token_claims is None:
        return page.render("logout.html", action=page.keeping_language("/logout"))
    current = sessions.resume(
        db,
        request.cookies.get(SESSION_COOKIE),
        policy=services.session_policy,
        now=provider.context.now,
    )
    if current is not None and validated.id_token_claims.get("sid") != current.sid:
        # The hint is from another session than this browser's: suspect (RP-Initiated
        # Logout 1.0 section 2), so ask rather than end the current one.
        return page.render("logout.html", action=page.keeping_language("/logout"))
    _log_out(request, db, services, provider.context.now)
    page.logged_out()
    if validated.redirect_uri:
        return page.redirect(validated.redirect_uri)
    return page.render("logged_out.html", back_to="/logout")


def _confirmed_logout(
    request: Request, db: Session, services: Services, form: FormPairs
) -> HTMLResponse:
    page = Page(request, services, request.query_params.get("ui_locales"))
    if not page.csrf_valid(read(LogoutForm, form).csrf_token):
        return page.csrf_refusal()
    _log_out(request, db, services, utc_now())
    page.logged_out()
    return page.render("logged_out.html", back_to="/logout")


def _log_out(request: Request, db: Session, services: Services, now: datetime) -> None:
    browser_session = sessions.resume(
        db, request.cookies.get(SESSION_COOKIE), policy=services.session_policy, now=now
    )
    if browser_session is None:
        return
    queued = end_browser_session(
        db, browser_session, pairwise_secret=services.pairwise_secret, now=now
    )
    if queued:
        after_commit(db, services.logged_out)


@router.get(
    "/language",
    summary="Switch the page language (cookie) and go back to a path on this server.",
    response_class=RedirectResponse,
    status_code=303,
    responses={303: redirect("Back to `next` (a path here), or to `/`.")},
)
def switch_language(to: str, next: str = "/") -> RedirectResponse:
    # Only a path on this server: the switch must not become an open redirect.
    target = urlsplit(next)
    if target.scheme or target.netloc or not next.startswith("/") or next.startswith("//"):
        next = "/"
    response = RedirectResponse(next, status_code=303)
    if to in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE, to, max_age=365 * 24 * 3600, samesite="lax", path="/", httponly=True
        )
    return response
