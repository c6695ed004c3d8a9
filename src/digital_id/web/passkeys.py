"""Passkey routes: the options a page's script asks for before ``navigator.credentials``
(login, step-up, enrolment), and the portal's enrolment and removal. The answers to a login
or a step-up go to the login and one-time-code forms themselves (``credential``), which
``web.login`` checks in place of the PIN or the code."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from digital_id import levels
from digital_id.accounts import passkeys
from digital_id.accounts.lookup import existing_account
from digital_id.db.types import utc_now
from digital_id.levels import LOA_SUBSTANTIAL
from digital_id.registry import service as registry
from digital_id.sessions import service as sessions
from digital_id.web import apidoc, forms
from digital_id.web.apidoc import page
from digital_id.web.citizen_session import PORTAL_FORM, CitizenForm
from digital_id.web.forms import PostedPasskeyEnrol, PostedPasskeyOptions, PostedPasskeyRemove
from digital_id.web.rendering import Page
from digital_id.web.services import SESSION_COOKIE, Services, ServicesDep, client_ip, events
from digital_id.web.unit_of_work import UnitOfWork, commit_charges_early

router = APIRouter(tags=["passkeys"])

_NO_STORE = {"Cache-Control": "no-store"}


class PasskeyOptions(BaseModel):
    """WebAuthn options as JSON (PublicKeyCredentialCreationOptionsJSON or
    PublicKeyCredentialRequestOptionsJSON): for ``PublicKeyCredential.parse…FromJSON``."""

    model_config = ConfigDict(extra="allow")
    challenge: str


@router.post(
    "/passkeys/options",
    summary="WebAuthn options for a passkey login, step-up or enrolment (a single-use challenge, five minutes).",
    response_model=PasskeyOptions,
    responses={
        400: apidoc.oauth_error("A foreign CSRF token, or an unknown purpose."),
        403: apidoc.oauth_error(
            "No session for a step-up, or not at the substantial level for an enrolment."
        ),
        **apidoc.throttled_oauth(),
        **apidoc.OAUTH_UNAVAILABLE,
    },
    openapi_extra=apidoc.form(forms.PasskeyOptionsForm),
)
def options(
    request: Request, db: UnitOfWork, services: ServicesDep, form: PostedPasskeyOptions
) -> Response:
    view = Page(request, services)
    if not view.csrf_valid(form.csrf_token):
        return _refused(400, "invalid_request", "the CSRF token is not this browser's")
    # Each asks for a stored challenge: limited per address as a login attempt is.
    charge = services.limits.login(client_ip(request), "", recognised=True)
    if (refused := commit_charges_early(db, services, *charge)) is not None:
        response = _refused(429, "slow_down", "too many attempts from this address")
        response.headers["Retry-After"] = str(refused.retry_after)
        return response
    # Served whatever the issuer's host: a browser takes passkeys only for a domain name, so
    # the pages offer them only then (``RelyingParty.enabled``), but a ceremony is checked
    # the same way for any RP ID.
    answer = _options_for(request, db, services, form.purpose, view.services.relying_party)
    if isinstance(answer, JSONResponse):
        return answer
    return Response(answer, media_type="application/json", headers=_NO_STORE)


def _options_for(
    request: Request, db: Session, services: Services, purpose: str, rp: passkeys.RelyingParty
) -> str | JSONResponse:
    """The options for ``purpose``, or the refusal: a step-up needs a session, an enrolment
    one at the substantial level (the level a passkey gives)."""
    now = utc_now()
    if purpose == "login":
        return passkeys.login_options(db, rp, now)
    if purpose not in ("step_up", "enrol"):
        return _refused(400, "invalid_request", "purpose must be login, step_up or enrol")
    browser_session = sessions.resume(
        db, request.cookies.get(SESSION_COOKIE), policy=services.session_policy, now=now
    )
    if browser_session is None:
        return _refused(403, "access_denied", "there is no session to step up or enrol for")
    if purpose == "step_up":
        return passkeys.login_options(db, rp, now, citizen_id=browser_session.citizen_id)
    citizen = registry.get(db, browser_session.citizen_id)
    account = existing_account(db, citizen)
    if not levels.satisfies(browser_session.acr, LOA_SUBSTANTIAL) or account is None:
        return _refused(403, "access_denied", "enrolling a passkey needs the substantial level")
    return passkeys.enrolment_options(db, rp, citizen, account, now)


@router.post(
    "/account/passkeys",
    summary="Enrol a passkey, named by the citizen (from a session at the substantial level).",
    response_class=HTMLResponse,
    response_description="The login or one-time-code page (no session at the citizen's level).",
    responses=PORTAL_FORM
    | {400: page("The passkey was not accepted, or the session is below substantial; or CSRF.")},
    openapi_extra=apidoc.form(forms.PasskeyEnrolForm),
)
def enrol(
    request: Request, visit: CitizenForm, db: UnitOfWork, form: PostedPasskeyEnrol
) -> Response:
    if isinstance(visit, Response):
        return visit
    view, browser_session = visit.view, visit.session
    if not levels.satisfies(browser_session.acr, LOA_SUBSTANTIAL):
        return _error_page(view)
    try:
        passkeys.enrol(
            db,
            view.services.relying_party,
            browser_session.citizen_id,
            form.credential,
            name=form.name,
            now=utc_now(),
            events=events(request),
        )
    except passkeys.PasskeyError:
        return _error_page(view)
    return view.redirect("/account#security")


@router.post(
    "/account/passkeys/remove",
    summary="Remove one of the citizen's passkeys.",
    response_class=HTMLResponse,
    response_description="The login or one-time-code page (no session at the citizen's level).",
    responses=PORTAL_FORM,
    openapi_extra=apidoc.form(forms.PasskeyRemoveForm),
)
def remove(
    request: Request, visit: CitizenForm, db: UnitOfWork, form: PostedPasskeyRemove
) -> Response:
    if isinstance(visit, Response):
        return visit
    if form.passkey.isdigit() and len(form.passkey) <= 18:
        passkeys.remove(
            db, visit.session.citizen_id, int(form.passkey), now=utc_now(), events=events(request)
        )
    return visit.view.redirect("/account#security")


def _refused(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=_NO_STORE
    )


def _error_page(view: Page) -> HTMLResponse:
    return view.render(
        "error.html",
        status=400,
        back_to="/account",
        message_key="error.passkey_enrol",
        detail=None,
    )
