"""The portal's security pages: its login and one-time code, changing the PIN, and enrolling
or removing the authenticator."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from digital_id import levels
from digital_id.accounts import pin_change, second_factor
from digital_id.accounts.pins import InvalidPinError
from digital_id.db.types import utc_now
from digital_id.oidc import assurance
from digital_id.registry import service as registry
from digital_id.sessions.ending import end_citizen_sessions
from digital_id.web import apidoc, forms
from digital_id.web.apidoc import PAGE_UNAVAILABLE, page, redirect, throttled_page
from digital_id.web.citizen_session import (
    LOGIN_PAGE,
    NO_SESSION,
    PORTAL_FORM,
    CitizenForm,
    CitizenPage,
    PendingForm,
    View,
    code_page,
    login_page,
)
from digital_id.web.forms import (
    PostedPinChange,
    PostedPortalLogin,
    PostedPortalOtp,
)
from digital_id.web.login import log_in, step_up
from digital_id.web.services import ServicesDep, events
from digital_id.web.unit_of_work import UnitOfWork, after_commit

router = APIRouter(tags=["portal"])


@router.post(
    "/account/login",
    summary="Log in to the portal: NIK and PIN.",
    response_class=HTMLResponse,
    response_description="The login page again after a failure, or the second-factor page.",
    responses=PORTAL_FORM | throttled_page(),
    openapi_extra=apidoc.form(forms.PortalLoginForm),
)
def portal_login(db: UnitOfWork, form: PostedPortalLogin, view: View) -> Response:
    logged_in = log_in(view, db, form, now=utc_now())
    if isinstance(logged_in, HTMLResponse):
        return logged_in
    if logged_in is None:
        return login_page(view, failed=True)
    if not levels.satisfies(
        logged_in.session.acr, assurance.citizen_level(db, logged_in.citizen.id)
    ):
        # The session stays at the PIN's level, so pending, until the code passes.
        return code_page(view)
    return view.redirect("/account")


@router.post(
    "/account/otp",
    summary="The portal login's second factor.",
    response_class=HTMLResponse,
    response_description="The second-factor page again after a wrong code, or the login page.",
    responses=PORTAL_FORM,
    openapi_extra=apidoc.form(forms.PortalOtpForm),
)
def portal_otp(visit: PendingForm, db: UnitOfWork, form: PostedPortalOtp) -> Response:
    if isinstance(visit, Response):
        return visit
    view = visit.view
    if not visit.at_level and not step_up(
        view, db, visit.session, form.otp, now=utc_now(), credential=form.credential
    ):
        return code_page(view, failed=True)
    return view.redirect("/account")


@router.get(
    "/account/pin",
    summary="The change-PIN page.",
    response_class=HTMLResponse,
    response_description=LOGIN_PAGE,
    responses=PAGE_UNAVAILABLE,
)
def pin_form(visit: CitizenPage) -> Response:
    if isinstance(visit, Response):
        return visit
    return visit.view.render("pin.html", back_to="/account/pin", error_key=None)


@router.post(
    "/account/pin",
    summary="Change the PIN, with the old one.",
    response_class=HTMLResponse,
    response_description=NO_SESSION,
    responses=PORTAL_FORM
    | {400: page("The change-PIN page with the reason (wrong old PIN, PIN rules), or CSRF.")},
    openapi_extra=apidoc.form(forms.PinChangeForm),
)
def change_pin(
    request: Request,
    visit: CitizenForm,
    db: UnitOfWork,
    services: ServicesDep,
    form: PostedPinChange,
) -> Response:
    if isinstance(visit, Response):
        return visit
    view, browser_session = visit.view, visit.session
    citizen = registry.get(db, browser_session.citizen_id)
    now = utc_now()
    try:
        pin_change.change_pin(
            db,
            services.pin_hasher,
            citizen,
            old_pin=form.old_pin,
            new_pin=form.pin,
            new_pin_confirm=form.pin_confirm,
            policy=services.lockout_policy,
            browser_session=browser_session,
            now=now,
        )
    except pin_change.WrongCurrentPinError:
        return view.render(
            "pin.html", status=400, back_to="/account/pin", error_key="portal.wrong_old_pin"
        )
    except InvalidPinError as exc:
        return view.render(
            "pin.html", status=400, back_to="/account/pin", error_key=f"activate.pin.{exc.rule}"
        )
    # Whoever knew the old PIN may be logged in elsewhere: every other session ends as a
    # logout does (the agencies hear of it) and every grant not of this session is revoked,
    # refresh token families included.
    end_citizen_sessions(
        db,
        citizen.id,
        pairwise_secret=services.pairwise_secret,
        now=now,
        reason="pin_changed",
        actor="citizen",
        keep=browser_session,
        events=events(request),
    )
    after_commit(db, services.logged_out)
    return view.redirect("/account#security")


@router.get(
    "/account/otp/enrol",
    summary="Start enrolling an authenticator: its QR code.",
    response_class=HTMLResponse,
    response_description=LOGIN_PAGE,
    responses={303: redirect("Already enrolled: to the portal."), **PAGE_UNAVAILABLE},
)
def enrol_form(visit: CitizenPage, db: UnitOfWork, services: ServicesDep) -> Response:
    if isinstance(visit, Response):
        return visit
    view, browser_session = visit.view, visit.session
    citizen = registry.get(db, browser_session.citizen_id)
    if second_factor.second_factor_enrolled(db, citizen.id):
        return RedirectResponse("/account#security", status_code=303)
    enrolment = second_factor.begin_totp_enrolment(
        db, services.totp_cipher, citizen, issuer_name=view.t("app.name"), now=utc_now()
    )
    return view.render(
        "otp.html",
        agency="",
        enrolment=enrolment,
        failed=False,
        action="/account/otp/enrol",
        authorization_request="",
    )


@router.post(
    "/account/otp/enrol",
    summary="Finish enrolling an authenticator with its first code.",
    response_class=HTMLResponse,
    response_description=NO_SESSION,
    responses=PORTAL_FORM | {400: page("The enrolment page again after a wrong code, or CSRF.")},
    openapi_extra=apidoc.form(forms.PortalOtpForm),
)
def enrol(
    visit: CitizenForm, db: UnitOfWork, services: ServicesDep, form: PostedPortalOtp
) -> Response:
    if isinstance(visit, Response):
        return visit
    view, browser_session = visit.view, visit.session
    citizen = registry.get(db, browser_session.citizen_id)
    now = utc_now()
    if not step_up(view, db, browser_session, form.otp, now=now):
        enrolment = second_factor.begin_totp_enrolment(
            db, services.totp_cipher, citizen, issuer_name=view.t("app.name"), now=now
        )
        return view.render(
            "otp.html",
            status=400,
            agency="",
            enrolment=enrolment,
            failed=True,
            action="/account/otp/enrol",
            authorization_request="",
        )
    return view.redirect("/account#security")


@router.post(
    "/account/otp/remove",
    summary="Remove the authenticator (only from a session that passed it).",
    response_class=HTMLResponse,
    response_description=NO_SESSION,
    responses=PORTAL_FORM,
    openapi_extra=apidoc.form(forms.CsrfForm),
)
def remove_second_factor(visit: CitizenForm, db: UnitOfWork) -> Response:
    """Only from a session that passed the second factor itself: a citizen with an
    authenticator has no other portal session."""
    if isinstance(visit, Response):
        return visit
    second_factor.remove_totp(db, registry.get(db, visit.session.citizen_id))
    return visit.view.redirect("/account#security")
