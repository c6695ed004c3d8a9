"""The citizen's pages of a kiosk login (RFC 8628 section 3.3), on their own phone: ``/device``
to enter (or scan) the user code, then the login, second-factor and consent pages of
``oidc.device_verification``'s decisions, and the page that sends them back to the kiosk.

Entering a code claims it for this browser: the claim is a random secret in a cookie of its
own (HttpOnly, SameSite=Strict, for ``/device`` only, until the code expires), and every
later step answers only the browser holding it."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from digital_id.audit import trail
from digital_id.db.types import utc_now
from digital_id.grants import device
from digital_id.grants.models import DeviceAuthorization
from digital_id.oidc.authorization import ShowConsent, ShowError, ShowLogin, ShowSecondFactor
from digital_id.oidc.device_verification import DeviceOutcome, kiosk_of, verify
from digital_id.oidc.server import Provider
from digital_id.registry import service as registry
from digital_id.registry.models import Citizen
from digital_id.sessions import service as sessions
from digital_id.sessions.models import BrowserSession
from digital_id.web import apidoc, forms
from digital_id.web.apidoc import PAGE_UNAVAILABLE, page, redirect, throttled_page
from digital_id.web.authorize import second_factor_page
from digital_id.web.consent_page import consent_page
from digital_id.web.forms import PostedConsent, PostedLogin, PostedSecondFactor, PostedUserCode
from digital_id.web.login import log_in, step_up
from digital_id.web.rendering import Page
from digital_id.web.services import SESSION_COOKIE, Services, ServicesDep, client_ip, events
from digital_id.web.unit_of_work import UnitOfWork

router = APIRouter(tags=["pages"])

DEVICE_COOKIE = "digital_id_device"
# Where the language switch and a reload take the citizen: the step they are at.
_CONTINUE = "/device/continue"
_STEP_RESPONSES: apidoc.Responses = {
    400: page("The error page: a foreign CSRF token, or the code expired or was decided."),
    **throttled_page(),
    **PAGE_UNAVAILABLE,
}


class UserCodeQuery(BaseModel):
    user_code: str = Field(
        default="", description="The code the kiosk shows (from its QR code), XXXX-XXXX."
    )
    ui_locales: str = Field(default="", description="The page's language: `id` or `en`.")


@router.get(
    "/device",
    summary="The kiosk login's first page (RFC 8628 section 3.3): enter or scan the kiosk's code.",
    response_class=HTMLResponse,
    openapi_extra=apidoc.query(UserCodeQuery),
)
def device_entry(request: Request, services: ServicesDep) -> HTMLResponse:
    page = Page(request, services, request.query_params.get("ui_locales"))
    typed = request.query_params.get("user_code", "")[:32]
    return _entry_page(page, device.normalized_user_code(typed) or "")


@router.post(
    "/device",
    summary="Claim the kiosk's code for this browser, then log in and decide.",
    response_class=HTMLResponse,
    response_description="The login, second-factor or consent page for the kiosk's agency.",
    responses={
        400: page(
            "The code page again (the code is unknown, expired or claimed already), or a "
            "foreign CSRF token."
        ),
        **throttled_page(),
        **PAGE_UNAVAILABLE,
    },
    openapi_extra=apidoc.form(forms.UserCodeForm),
)
def claim(
    request: Request, db: UnitOfWork, services: ServicesDep, form: PostedUserCode
) -> Response:
    page = Page(request, services)
    charges = services.limits.user_code(client_ip(request))
    if (refusal := page.refusal(db, form.csrf_token, *charges)) is not None:
        return refusal
    now = utc_now()
    code = device.normalized_user_code(form.user_code)
    secret = secrets.token_urlsafe(32)
    claimed = device.claim(db, code, secret, now=now) if code is not None else None
    context = events(request)
    if claimed is None:
        # Every refused code is on the trail: guessing shows there before a limit is hit.
        trail.record(db, "device:code_refused", context=context, now=now)
        return _entry_page(page, "", failed=True)
    provider = services.provider(db, context)
    client = kiosk_of(provider, claimed)
    trail.record(
        db,
        "device:claimed",
        context=context,
        client_id=client.client_id if client is not None else None,
        now=now,
    )
    page.asked_for(dict(claimed.parameters).get("ui_locales"))
    response = _step(page, provider, db, claimed, _session(request, services, db))
    response.set_cookie(
        DEVICE_COOKIE,
        secret,
        max_age=max(int((claimed.expires_at - now).total_seconds()), 1),
        httponly=True,
        samesite="strict",
        secure=services.settings.secure_cookies,
        path="/device",
    )
    return response


@router.get(
    _CONTINUE,
    summary="The step of the kiosk login this browser is at (after a language switch).",
    response_class=HTMLResponse,
    responses={303: redirect("No code claimed here: back to the code page."), **_STEP_RESPONSES},
)
def continue_step(request: Request, db: UnitOfWork, services: ServicesDep) -> Response:
    claimed = _claimed(request, db, services)
    if isinstance(claimed, HTMLResponse):
        return Page(request, services).redirect("/device")
    page, provider, authorization = claimed
    return _step(page, provider, db, authorization, _session(request, services, db))


@router.post(
    "/device/login",
    summary="The kiosk login's login form: NIK and PIN, on the citizen's own phone.",
    response_class=HTMLResponse,
    responses=_STEP_RESPONSES,
    openapi_extra=apidoc.form(forms.LoginForm),
)
def device_login(
    request: Request, db: UnitOfWork, services: ServicesDep, form: PostedLogin
) -> Response:
    claimed = _claimed(request, db, services)
    if isinstance(claimed, HTMLResponse):
        return claimed
    page, provider, authorization = claimed
    logged_in = log_in(
        page, db, form, now=provider.context.now, agency=lambda: authorization.client_id
    )
    if isinstance(logged_in, HTMLResponse):
        return logged_in
    if logged_in is None:
        client = kiosk_of(provider, authorization)
        return _login_page(page, client.name(page.language) if client else "", failed=True)
    return _step(page, provider, db, authorization, logged_in.session, logged_in=logged_in.citizen)


@router.post(
    "/device/otp",
    summary="The kiosk login's second-factor form: the authenticator's code.",
    response_class=HTMLResponse,
    responses=_STEP_RESPONSES,
    openapi_extra=apidoc.form(forms.SecondFactorForm),
)
def device_second_factor(
    request: Request, db: UnitOfWork, services: ServicesDep, form: PostedSecondFactor
) -> Response:
    admitted = _admitted(request, db, services, form.csrf_token)
    if isinstance(admitted, HTMLResponse):
        return admitted
    page, provider, authorization, browser_session = admitted
    if browser_session is not None and not step_up(
        page, db, browser_session, form.otp, now=provider.context.now, credential=form.credential
    ):
        client = kiosk_of(provider, authorization)
        citizen = registry.get(db, browser_session.citizen_id)
        if client is not None and citizen is not None:
            return _second_factor(page, db, ShowSecondFactor(client, citizen), failed=True)
    return _step(page, provider, db, authorization, browser_session)


@router.post(
    "/device/consent",
    summary="The kiosk login's consent form: approve or deny the kiosk's agency.",
    response_class=HTMLResponse,
    response_description="The page that sends the citizen back to the kiosk.",
    responses=_STEP_RESPONSES,
    openapi_extra=apidoc.form(forms.ConsentForm),
)
def device_consent(
    request: Request, db: UnitOfWork, services: ServicesDep, form: PostedConsent
) -> Response:
    admitted = _admitted(request, db, services, form.csrf_token)
    if isinstance(admitted, HTMLResponse):
        return admitted
    page, provider, authorization, browser_session = admitted
    decision = "approve" if form.decision == "approve" else "deny"
    return _step(page, provider, db, authorization, browser_session, decision=decision)


def _claimed(
    request: Request, db: Session, services: Services
) -> HTMLResponse | tuple[Page, Provider, DeviceAuthorization]:
    """The authorization this browser claimed, still waiting for the citizen's decision; or
    the error page."""
    provider = services.provider(db, events(request))
    secret = request.cookies.get(DEVICE_COOKIE)
    found = device.claimed(db, secret, now=provider.context.now) if secret else None
    if found is None:
        page = Page(request, services)
        return page.render(
            "error.html", status=400, back_to="/device", message_key="error.device", detail=None
        )
    return Page(request, services, dict(found.parameters).get("ui_locales")), provider, found


def _admitted(
    request: Request, db: Session, services: Services, csrf_token: str
) -> HTMLResponse | tuple[Page, Provider, DeviceAuthorization, BrowserSession | None]:
    """A step's form: refused for a foreign CSRF token, else its claimed authorization and
    the browser's session."""
    claimed = _claimed(request, db, services)
    if isinstance(claimed, HTMLResponse):
        return claimed
    page, provider, authorization = claimed
    if (refusal := page.refusal(db, csrf_token)) is not None:
        return refusal
    return page, provider, authorization, _session(request, services, db)


def _session(request: Request, services: Services, db: Session) -> BrowserSession | None:
    return sessions.resume(
        db,
        request.cookies.get(SESSION_COOKIE),
        policy=services.session_policy,
        now=utc_now(),
    )


def _step(
    page: Page,
    provider: Provider,
    db: Session,
    authorization: DeviceAuthorization,
    browser_session: BrowserSession | None,
    *,
    decision: str | None = None,
    logged_in: Citizen | None = None,
) -> Response:
    outcome: DeviceOutcome = verify(
        provider, authorization, browser_session, decision=decision, logged_in=logged_in
    )
    if isinstance(outcome, ShowError):
        return page.render(
            "error.html", status=400, back_to="/device", message_key="error.device", detail=None
        )
    if isinstance(outcome, ShowLogin):
        return _login_page(page, outcome.client.name(page.language))
    if isinstance(outcome, ShowSecondFactor):
        return _second_factor(page, db, outcome)
    if isinstance(outcome, ShowConsent):
        return consent_page(
            page,
            outcome,
            action="/device/consent",
            back_to=_CONTINUE,
            device_location=outcome.client.client_metadata.get("device_location"),
        )
    response = page.render(
        "device_done.html",
        back_to="/device",
        agency=outcome.client.name(page.language),
        approved=outcome.approved,
    )
    response.delete_cookie(DEVICE_COOKIE, path="/device")
    return response


def _entry_page(page: Page, user_code: str, *, failed: bool = False) -> HTMLResponse:
    return page.render(
        "device.html",
        status=400 if failed else 200,
        back_to="/device",
        user_code=user_code,
        failed=failed,
    )


def _login_page(page: Page, agency: str, *, failed: bool = False) -> HTMLResponse:
    return page.render(
        "login.html",
        back_to=_CONTINUE,
        agency=agency,
        failed=failed,
        nik="",
        action="/device/login",
        activate_url=page.keeping_language("/activate"),
        authorization_request="",
    )


def _second_factor(
    page: Page, db: Session, outcome: ShowSecondFactor, *, failed: bool = False
) -> HTMLResponse:
    return second_factor_page(page, db, outcome, "", _CONTINUE, failed=failed, action="/device/otp")
