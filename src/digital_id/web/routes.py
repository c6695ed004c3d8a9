"""The citizen's pages: the authorization flow (login, consent), activation, logout, language.

Thin: each route reads the form, calls the domain (``oidc.authorization``, ``accounts``,
``sessions``) and renders what it decided.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import parse_qsl, urlencode, urlsplit

from authlib.oauth2.rfc6749 import OAuth2Error
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from digital_id.accounts import service as accounts
from digital_id.accounts.pins import InvalidPinError
from digital_id.db.types import utc_now
from digital_id.oidc.authorization import (
    Respond,
    ShowConsent,
    ShowError,
    ShowLogin,
    ShowSecondFactor,
    authorize,
    login_proof,
)
from digital_id.oidc.logout import end_browser_session
from digital_id.oidc.provider import AgencyClient, Provider
from digital_id.oidc.requests import ProviderRequest
from digital_id.registry import service as registry
from digital_id.sessions import service as sessions
from digital_id.sessions.models import BrowserSession
from digital_id.web import apidoc
from digital_id.web.apidoc import CSRF_REFUSED, PAGE_UNAVAILABLE, page, redirect, throttled_page
from digital_id.web.forms import Form, FormPairs, field_value
from digital_id.web.i18n import LANGUAGES
from digital_id.web.login import log_in, step_up
from digital_id.web.rendering import Page
from digital_id.web.services import (
    LANGUAGE_COOKIE,
    SESSION_COOKIE,
    Services,
    client_ip,
    events,
    services,
)
from digital_id.web.unit_of_work import UnitOfWork, admit, after_commit

router = APIRouter(tags=["pages"])

App = Annotated[Services, Depends(services)]


# What an authorization step answers: the next page, or the way back to the agency.
_NEXT_PAGE = (
    "The login, second-factor or consent page, or (`response_mode=form_post`) the form that "
    "carries the answer to the agency."
)
_AUTHORIZATION: apidoc.Responses = {
    303: redirect(
        "Back to the agency's registered redirect URI with a code or an OAuth error "
        "(RFC 6749 section 4.1.2)."
    ),
    400: page(
        "The error page: the request cannot be answered at a verified redirect URI "
        "(unknown client or redirect URI, malformed request)."
    ),
    # Steps carrying a request object are limited per address.
    **throttled_page(),
    **PAGE_UNAVAILABLE,
}
# The forms inside the flow also refuse a foreign CSRF token (400, the same error page).
_AUTHORIZATION_FORM: apidoc.Responses = {
    **_AUTHORIZATION,
    400: page("The error page: a missing or foreign CSRF token, or an unanswerable request."),
}


@router.get(
    "/authorize",
    summary="Authorization endpoint (OpenID Connect Core 3.1.2): start or continue a login.",
    response_class=HTMLResponse,
    response_description=_NEXT_PAGE,
    responses=_AUTHORIZATION,
    openapi_extra=apidoc.query(apidoc.AuthorizationRequest),
)
def authorize_get(request: Request, db: UnitOfWork, app: App) -> Response:
    return _authorization_step(request, db, app, list(request.query_params.multi_items()))


@router.post(
    "/authorize",
    summary="Authorization endpoint by form POST (OpenID Connect Core 3.1.2.1).",
    response_class=HTMLResponse,
    response_description=_NEXT_PAGE,
    responses=_AUTHORIZATION,
    openapi_extra=apidoc.form(apidoc.AuthorizationRequest),
)
def authorize_post(request: Request, db: UnitOfWork, app: App, form: Form) -> Response:
    return _authorization_step(request, db, app, form)


@router.post(
    "/authorize/login",
    summary="The login form: NIK and PIN.",
    response_class=HTMLResponse,
    response_description="The login page again after a failure, or the next page of the flow.",
    responses=_AUTHORIZATION_FORM | throttled_page(),
    openapi_extra=apidoc.form(apidoc.LoginForm),
)
def login(request: Request, db: UnitOfWork, app: App, form: Form) -> Response:
    page, parameters = _carried(request, app, form)
    provider = app.provider(db, events(request))
    browser_session = log_in(
        page,
        db,
        form,
        now=provider.context.now,
        also_charge=app.limits.request_object(client_ip(request), parameters),
    )
    if isinstance(browser_session, HTMLResponse):
        return browser_session
    if browser_session is None:
        oauth_request = _oauth_request(app, parameters)
        client = provider.query_client(oauth_request.payload.client_id or "")
        return page.render(
            "login.html",
            back_to=_authorize_url(parameters),
            agency=client.name(page.language) if client else "",
            form_targets=_agency_return(client, parameters),
            failed=True,
            nik="",
            action="/authorize/login",
            activate_url=_keeping_language(page, "/activate"),
            authorization_request=urlencode(parameters),
        )
    return _continue(
        page, provider, db, parameters, browser_session, fresh_login=True, continues_flow=True
    )


@router.post(
    "/authorize/consent",
    summary="The consent form: approve or deny the agency's request.",
    response_class=HTMLResponse,
    response_description=_NEXT_PAGE,
    responses=_AUTHORIZATION_FORM,
    openapi_extra=apidoc.form(apidoc.ConsentForm),
)
def consent(request: Request, db: UnitOfWork, app: App, form: Form) -> Response:
    page, parameters = _carried(request, app, form)
    charges = app.limits.request_object(client_ip(request), parameters)
    if (refusal := page.refusal(db, field_value(form, "csrf_token"), *charges)) is not None:
        return refusal
    provider = app.provider(db, events(request))
    browser_session = sessions.resume(
        db,
        request.cookies.get(SESSION_COOKIE),
        policy=app.session_policy,
        now=provider.context.now,
    )
    decision = field_value(form, "decision")
    fresh = browser_session is not None and field_value(form, "login_proof") == login_proof(
        app.csrf_secret, browser_session, _oauth_request(app, parameters)
    )
    return _continue(
        page,
        provider,
        db,
        parameters,
        browser_session,
        fresh_login=fresh,
        decision="approve" if decision == "approve" else "deny",
        continues_flow=True,
    )


def _carried(request: Request, app: Services, form: FormPairs) -> tuple[Page, FormPairs]:
    """The page and the authorization request the login or consent form carried."""
    parameters = parse_qsl(field_value(form, "authorization_request"), keep_blank_values=True)
    return Page(request, app, dict(parameters).get("ui_locales")), parameters


def _authorization_step(
    request: Request, db: Session, app: Services, parameters: FormPairs
) -> Response:
    page = Page(request, app, dict(parameters).get("ui_locales"))
    refused = admit(db, app, *app.limits.request_object(client_ip(request), parameters))
    if refused is not None:
        return page.rate_limited(refused)
    provider = app.provider(db, events(request))
    browser_session = sessions.resume(
        db,
        request.cookies.get(SESSION_COOKIE),
        policy=app.session_policy,
        now=provider.context.now,
    )
    return _continue(page, provider, db, parameters, browser_session)


def _continue(
    page: Page,
    provider: Provider,
    db: Session,
    parameters: FormPairs,
    browser_session: BrowserSession | None,
    *,
    fresh_login: bool = False,
    decision: str | None = None,
    continues_flow: bool = False,
) -> Response:
    oauth_request = _oauth_request(page.services, parameters, continues_flow=continues_flow)
    outcome = authorize(
        provider, oauth_request, browser_session, fresh_login=fresh_login, decision=decision
    )
    back_to = _authorize_url(parameters)
    carried = urlencode(parameters)
    if isinstance(outcome, ShowError):
        key = f"error.{outcome.message or outcome.error}"
        return page.render(
            "error.html",
            status=400,
            message_key=key if page.t.has(key) else "error.generic",
            detail=outcome.description,
        )
    if isinstance(outcome, ShowLogin):
        hint = outcome.login_hint or ""
        return page.render(
            "login.html",
            back_to=back_to,
            agency=outcome.client.name(page.language),
            form_targets=_agency_return(outcome.client, parameters),
            failed=False,
            nik=hint if hint.isdigit() and len(hint) == 16 else "",
            action="/authorize/login",
            activate_url=_keeping_language(page, "/activate"),
            authorization_request=carried,
        )
    if isinstance(outcome, ShowSecondFactor):
        return _second_factor_page(page, db, outcome, carried, back_to)
    if isinstance(outcome, ShowConsent):
        assert browser_session is not None
        metadata = outcome.client.client_metadata
        return page.render(
            "consent.html",
            back_to=back_to,
            form_targets=_agency_return(outcome.client, parameters),
            agency=outcome.client.name(page.language),
            citizen_name=outcome.citizen.full_name,
            claims=[
                {"name": name, "essential": name in outcome.claims.essential}
                for name in outcome.claims.consent_items
            ],
            logo_uri=metadata.get("logo_uri")
            if str(metadata.get("logo_uri", "")).startswith("https://")
            else None,
            policy_uri=metadata.get("policy_uri"),
            action="/authorize/consent",
            authorization_request=carried,
            login_proof=login_proof(page.services.csrf_secret, browser_session, oauth_request)
            if fresh_login
            else "",
        )
    return _respond(page, outcome)


def _agency_return(client: AgencyClient | None, parameters: FormPairs) -> list[str]:
    """Where a post from an authorization page may be redirected: the request's registered
    redirect URI (or the client's only one)."""
    if client is None:
        return []
    requested = dict(parameters).get("redirect_uri")
    if requested is not None and client.check_redirect_uri(requested):
        return [requested]
    default = client.get_default_redirect_uri()
    return [default] if default else []


def _second_factor_page(
    page: Page,
    db: Session,
    outcome: ShowSecondFactor,
    carried: str,
    back_to: str,
    *,
    failed: bool = False,
) -> HTMLResponse:
    enrolment = None
    if not accounts.second_factor_enrolled(db, outcome.citizen.id):
        enrolment = accounts.begin_totp_enrolment(
            db,
            page.services.totp_cipher,
            outcome.citizen,
            issuer_name=page.t("app.name"),
            now=utc_now(),
        )
    return page.render(
        "otp.html",
        back_to=back_to,
        agency=outcome.client.name(page.language),
        form_targets=_agency_return(outcome.client, parse_qsl(carried)),
        enrolment=enrolment,
        failed=failed,
        action="/authorize/otp",
        authorization_request=carried,
    )


@router.post(
    "/authorize/otp",
    summary="The second-factor form: the authenticator's code (enrolling it the first time).",
    response_class=HTMLResponse,
    response_description="The second-factor page again after a wrong code, or the next page.",
    responses=_AUTHORIZATION_FORM,
    openapi_extra=apidoc.form(apidoc.SecondFactorForm),
)
def second_factor(request: Request, db: UnitOfWork, app: App, form: Form) -> Response:
    page, parameters = _carried(request, app, form)
    charges = app.limits.request_object(client_ip(request), parameters)
    if (refusal := page.refusal(db, field_value(form, "csrf_token"), *charges)) is not None:
        return refusal
    provider = app.provider(db, events(request))
    now = provider.context.now
    browser_session = sessions.resume(
        db, request.cookies.get(SESSION_COOKIE), policy=app.session_policy, now=now
    )
    if browser_session is None:
        return _continue(page, provider, db, parameters, None, continues_flow=True)
    if not step_up(page, db, browser_session, form, now=now):
        client = provider.query_client(dict(parameters).get("client_id", ""))
        if client is None:
            return _continue(page, provider, db, parameters, browser_session, continues_flow=True)
        return _second_factor_page(
            page,
            db,
            ShowSecondFactor(client, registry.get(db, browser_session.citizen_id)),
            urlencode(parameters),
            _authorize_url(parameters),
            failed=True,
        )
    return _continue(
        page, provider, db, parameters, browser_session, fresh_login=True, continues_flow=True
    )


def _respond(page: Page, outcome: Respond) -> Response:
    if outcome.response_mode == "form_post":
        return page.render(
            "form_post.html",
            form_targets=[outcome.redirect_uri],
            redirect_uri=outcome.redirect_uri,
            params=outcome.params,
        )
    # 303 so a browser that POSTed the form follows with a GET.
    response = RedirectResponse(outcome.url, status_code=303)
    page.finish(response)
    return response


def _oauth_request(
    app: Services, parameters: FormPairs, *, continues_flow: bool = False
) -> ProviderRequest:
    return ProviderRequest(
        "GET", app.endpoint("/authorize"), {}, query=parameters, continues_flow=continues_flow
    )


def _authorize_url(parameters: FormPairs) -> str:
    return "/authorize?" + urlencode(parameters)


def _keeping_language(page: Page, path: str) -> str:
    """A link or form action that answers in the language of the page it is on (the agency's
    ``ui_locales`` is not carried anywhere else)."""
    return f"{path}?{urlencode({'ui_locales': page.language})}"


# --- activation ------------------------------------------------------------------------


@router.get(
    "/activate",
    summary="The activation page: set a PIN with the code from the letter.",
    response_class=HTMLResponse,
    openapi_extra=apidoc.query(apidoc.UiLocales),
)
def activation_form(request: Request, app: App) -> HTMLResponse:
    page = Page(request, app, request.query_params.get("ui_locales"))
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
    openapi_extra=apidoc.query(apidoc.UiLocales) | apidoc.form(apidoc.ActivationForm),
)
def activate(request: Request, db: UnitOfWork, app: App, form: Form) -> HTMLResponse:
    page = Page(request, app, request.query_params.get("ui_locales"))
    nik = field_value(form, "nik").strip()
    code = field_value(form, "code").strip()
    charges = app.limits.activation(client_ip(request), nik)
    if (refusal := page.refusal(db, field_value(form, "csrf_token"), *charges)) is not None:
        return refusal
    try:
        accounts.activate(
            db,
            app.pin_hasher,
            nik=nik,
            code=code,
            pin=field_value(form, "pin"),
            pin_confirm=field_value(form, "pin_confirm"),
            now=utc_now(),
        )
    except accounts.ActivationError:
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
        action=_keeping_language(page, "/activate"),
        error_key=error_key,
        nik=nik,
        code=code,
    )


# --- logout and language ---------------------------------------------------------------


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
def end_session_get(request: Request, db: UnitOfWork, app: App) -> Response:
    return _end_session(request, db, app, list(request.query_params.multi_items()))


@router.post(
    "/logout",
    summary="RP-Initiated Logout 1.0 by form POST, and the citizen's confirmation.",
    response_class=HTMLResponse,
    response_description="The confirmation page, or the logged-out page.",
    responses=_LOGOUT | CSRF_REFUSED,
    openapi_extra=apidoc.form(apidoc.LogoutForm),
)
def end_session_post(request: Request, db: UnitOfWork, app: App, form: Form) -> Response:
    if any(name == "csrf_token" for name, _ in form):
        return _confirmed_logout(request, db, app, form)
    return _end_session(request, db, app, form)


def _end_session(request: Request, db: Session, app: Services, parameters: FormPairs) -> Response:
    """RP-initiated logout 1.0. With a valid id_token_hint from us the session ends at once,
    and the browser returns to the agency only at an exactly registered
    post_logout_redirect_uri. Without one, the citizen is asked to confirm (so a link on
    someone else's site cannot log them out) and stays here."""
    page = Page(request, app, dict(parameters).get("ui_locales"))
    provider = app.provider(db, events(request))
    oauth_request = ProviderRequest("GET", app.endpoint("/logout"), {}, query=parameters)
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
        return page.render("logout.html", action=_keeping_language(page, "/logout"))
    current = sessions.resume(
        db,
        request.cookies.get(SESSION_COOKIE),
        policy=app.session_policy,
        now=provider.context.now,
    )
    if current is not None and validated.id_token_claims.get("sid") != current.sid:
        # The hint is from another session than this browser's: suspect (RP-Initiated
        # Logout 1.0 section 2), so ask rather than end the current one.
        return page.render("logout.html", action=_keeping_language(page, "/logout"))
    _log_out(request, db, app, provider.context.now)
    page.logged_out()
    if validated.redirect_uri:
        response: Response = RedirectResponse(validated.redirect_uri, status_code=303)
        page.finish(response)
    else:
        response = page.render("logged_out.html", back_to="/logout")
    return response


def _confirmed_logout(
    request: Request, db: Session, app: Services, form: FormPairs
) -> HTMLResponse:
    page = Page(request, app, request.query_params.get("ui_locales"))
    if not page.csrf_valid(field_value(form, "csrf_token")):
        return page.csrf_refusal()
    _log_out(request, db, app, utc_now())
    page.logged_out()
    return page.render("logged_out.html", back_to="/logout")


def _log_out(request: Request, db: Session, app: Services, now: datetime) -> None:
    browser_session = sessions.resume(
        db, request.cookies.get(SESSION_COOKIE), policy=app.session_policy, now=now
    )
    if browser_session is None:
        return
    queued = end_browser_session(db, browser_session, pairwise_secret=app.pairwise_secret, now=now)
    if queued:
        after_commit(db, app.logged_out)


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
