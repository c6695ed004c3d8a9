"""The authorization flow's pages: ``/authorize`` and its login, one-time-code and consent
forms; each reads the request, lets ``oidc.authorization`` decide, and renders the decision."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from digital_id.accounts import second_factor as second_factors
from digital_id.accounts import session_standing
from digital_id.accounts.session_standing import SessionStanding
from digital_id.consent.service import StoredConsent
from digital_id.db.types import utc_now
from digital_id.oidc.acting import ShowActingChoice
from digital_id.oidc.agency_client import AgencyClient
from digital_id.oidc.authorization import (
    Respond,
    ShowConsent,
    ShowError,
    ShowLogin,
    ShowSecondFactor,
    authorize,
    login_proof,
    proves_fresh_login,
)
from digital_id.oidc.requests import ProviderRequest
from digital_id.oidc.server import Provider
from digital_id.registry import service as registry
from digital_id.registry.models import Citizen
from digital_id.sessions import service as sessions
from digital_id.sessions.models import BrowserSession
from digital_id.web import apidoc, forms
from digital_id.web.apidoc import PAGE_UNAVAILABLE, page, redirect, throttled_page
from digital_id.web.consent_page import acting_page, consent_page
from digital_id.web.forms import (
    Form,
    FormPairs,
    PostedConsent,
    PostedLogin,
    PostedSecondFactor,
)
from digital_id.web.login import log_in, step_up
from digital_id.web.rendering import Page
from digital_id.web.services import (
    SESSION_COOKIE,
    Services,
    ServicesDep,
    client_ip,
    events,
)
from digital_id.web.unit_of_work import UnitOfWork, commit_charges_early

router = APIRouter(tags=["pages"])


# What an authorization step answers: the next page, or the way back to the agency.
NEXT_PAGE = (
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
AUTHORIZATION_FORM: apidoc.Responses = {
    **_AUTHORIZATION,
    400: page("The error page: a missing or foreign CSRF token, or an unanswerable request."),
}


@router.get(
    "/authorize",
    summary="Authorization endpoint (OpenID Connect Core 3.1.2): start or continue a login.",
    response_class=HTMLResponse,
    response_description=NEXT_PAGE,
    responses=_AUTHORIZATION,
    openapi_extra=apidoc.query(apidoc.AuthorizationRequest),
)
def authorize_get(request: Request, db: UnitOfWork, services: ServicesDep) -> Response:
    return _authorization_step(request, db, services, list(request.query_params.multi_items()))


@router.post(
    "/authorize",
    summary="Authorization endpoint by form POST (OpenID Connect Core 3.1.2.1).",
    response_class=HTMLResponse,
    response_description=NEXT_PAGE,
    responses=_AUTHORIZATION,
    openapi_extra=apidoc.form(apidoc.AuthorizationRequest),
)
def authorize_post(request: Request, db: UnitOfWork, services: ServicesDep, form: Form) -> Response:
    return _authorization_step(request, db, services, form)


@router.post(
    "/authorize/login",
    summary="The login form: NIK and PIN.",
    response_class=HTMLResponse,
    response_description="The login page again after a failure, or the next page of the flow.",
    responses=AUTHORIZATION_FORM | throttled_page(),
    openapi_extra=apidoc.form(forms.LoginForm),
)
def login(request: Request, db: UnitOfWork, services: ServicesDep, form: PostedLogin) -> Response:
    page, parameters = _carried(request, services, form.authorization_request)
    provider = services.provider(db, events(request))

    def agency() -> int | None:
        # The flow asks the client right after (kept for this request by query_client).
        client = provider.query_client(dict(parameters).get("client_id") or "")
        return client.pk if client is not None else None

    logged_in = log_in(
        page,
        db,
        form,
        now=provider.context.now,
        also_charge=services.limits.request_object(client_ip(request), parameters),
        agency=agency,
    )
    if isinstance(logged_in, HTMLResponse):
        return logged_in
    if logged_in is None:
        oauth_request = _oauth_request(services, parameters)
        client = provider.query_client(oauth_request.payload.client_id or "")
        return page.render(
            "login.html",
            back_to=_authorize_url(parameters),
            agency=client.name(page.language) if client else "",
            form_targets=_agency_return(client, parameters),
            failed=True,
            nik="",
            action="/authorize/login",
            activate_url=page.keeping_language("/activate"),
            authorization_request=urlencode(parameters),
        )
    return continue_flow(
        page,
        provider,
        db,
        parameters,
        logged_in.session,
        fresh_login=True,
        continues_flow=True,
        logged_in=logged_in.citizen,
        consent=logged_in.consent,
    )


@router.post(
    "/authorize/consent",
    summary="The consent form: approve or deny the agency's request.",
    response_class=HTMLResponse,
    response_description=NEXT_PAGE,
    responses=AUTHORIZATION_FORM,
    openapi_extra=apidoc.form(forms.ConsentForm),
)
def consent(
    request: Request, db: UnitOfWork, services: ServicesDep, form: PostedConsent
) -> Response:
    step = admitted(request, db, services, form)
    if isinstance(step, HTMLResponse):
        return step
    page, provider, parameters = step
    # The session is read with its standing and the consent to the agency asking, which this
    # step then asks about (oidc.authorization), in one statement.
    oauth_request = _oauth_request(services, parameters)
    agency = None
    if oauth_request.parameter_problem() is None:
        agency = provider.query_client(oauth_request.payload.client_id or "")
    known = session_standing.resume(
        db,
        request.cookies.get(SESSION_COOKIE),
        client_pk=agency.pk if agency is not None else None,
        policy=services.session_policy,
        now=provider.context.now,
    )
    browser_session = known.browser_session if known is not None else None
    fresh = proves_fresh_login(services.csrf_secret, browser_session, parameters, form.login_proof)
    return continue_flow(
        page,
        provider,
        db,
        parameters,
        browser_session,
        fresh_login=fresh,
        decision="approve" if form.decision == "approve" else "deny",
        continues_flow=True,
        known=known,
        acting_for=form.acting_for or None,
    )


def _carried(request: Request, services: Services, carried: str) -> tuple[Page, FormPairs]:
    """The page and the authorization request a form of the flow carried."""
    parameters = parse_qsl(carried, keep_blank_values=True)
    return Page(request, services, dict(parameters).get("ui_locales")), parameters


def admitted(
    request: Request,
    db: Session,
    services: Services,
    form: forms.ConsentForm | forms.SecondFactorForm | forms.ActingForm,
) -> HTMLResponse | tuple[Page, Provider, FormPairs]:
    """A form inside the flow: refused for a foreign CSRF token or a spent limit, or the
    page, the provider and the request it carried."""
    page, parameters = _carried(request, services, form.authorization_request)
    charges = services.limits.request_object(client_ip(request), parameters)
    if (refusal := page.refusal(db, form.csrf_token, *charges)) is not None:
        return refusal
    return page, services.provider(db, events(request)), parameters


def resumed(
    request: Request,
    db: Session,
    services: Services,
    form: forms.SecondFactorForm | forms.ActingForm,
) -> HTMLResponse | tuple[Page, Provider, FormPairs, BrowserSession | None]:
    """A form inside the flow: refused for a foreign CSRF token or a spent limit, or the
    request it carried and the browser's session, if any."""
    step = admitted(request, db, services, form)
    if isinstance(step, HTMLResponse):
        return step
    page, provider, parameters = step
    browser_session = sessions.resume(
        db,
        request.cookies.get(SESSION_COOKIE),
        policy=services.session_policy,
        now=provider.context.now,
    )
    return page, provider, parameters, browser_session


def _authorization_step(
    request: Request, db: Session, services: Services, parameters: FormPairs
) -> Response:
    page = Page(request, services, dict(parameters).get("ui_locales"))
    refused = commit_charges_early(
        db, services, *services.limits.request_object(client_ip(request), parameters)
    )
    if refused is not None:
        return page.rate_limited(refused)
    provider = services.provider(db, events(request))
    browser_session = sessions.resume(
        db,
        request.cookies.get(SESSION_COOKIE),
        policy=services.session_policy,
        now=provider.context.now,
    )
    return continue_flow(page, provider, db, parameters, browser_session)


def continue_flow(
    page: Page,
    provider: Provider,
    db: Session,
    parameters: FormPairs,
    browser_session: BrowserSession | None,
    *,
    fresh_login: bool = False,
    decision: str | None = None,
    continues_flow: bool = False,
    logged_in: Citizen | None = None,
    consent: StoredConsent | None = None,
    known: SessionStanding | None = None,
    acting_for: str | None = None,
) -> Response:
    oauth_request = _oauth_request(page.services, parameters, continues_flow=continues_flow)
    outcome = authorize(
        provider,
        oauth_request,
        browser_session,
        fresh_login=fresh_login,
        decision=decision,
        logged_in=logged_in,
        consent=consent,
        known=known,
        acting_for=acting_for,
    )
    back_to = _authorize_url(parameters)
    carried = urlencode(parameters)
    resolved_locales = oauth_request.payload.data.get("ui_locales")
    if resolved_locales != dict(parameters).get("ui_locales"):
        page.asked_for(resolved_locales)
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
            activate_url=page.keeping_language("/activate"),
            authorization_request=carried,
        )
    if isinstance(outcome, ShowSecondFactor):
        return second_factor_page(page, db, outcome, carried, back_to)
    if isinstance(outcome, ShowConsent | ShowActingChoice):
        assert browser_session is not None
        secret = page.services.csrf_secret
        proof = login_proof(secret, browser_session, parameters) if fresh_login else ""
        targets = _agency_return(outcome.client, parameters)
        if isinstance(outcome, ShowActingChoice):
            return acting_page(page, outcome, back_to, targets, carried, login_proof=proof)
        return consent_page(
            page,
            outcome,
            action="/authorize/consent",
            back_to=back_to,
            form_targets=targets,
            authorization_request=carried,
            login_proof=proof,
        )
    return _respond(page, outcome)


def _agency_return(client: AgencyClient | None, parameters: FormPairs) -> list[str]:
    """Where a post from an authorization page may be redirected: the request's registered
    redirect URI (or the client's only one). A pushed request or a request object holds its
    redirect URI inside, which the pages do not open: any the client registered."""
    if client is None:
        return []
    carried = dict(parameters)
    if "request_uri" in carried or "request" in carried:
        return list(client.client_metadata.get("redirect_uris", []))
    requested = carried.get("redirect_uri")
    if requested is not None and client.check_redirect_uri(requested):
        return [requested]
    default = client.get_default_redirect_uri()
    return [default] if default else []


def second_factor_page(
    page: Page,
    db: Session,
    outcome: ShowSecondFactor,
    carried: str,
    back_to: str,
    *,
    failed: bool = False,
    action: str = "/authorize/otp",
) -> HTMLResponse:
    enrolment = None
    if not second_factors.second_factor_enrolled(db, outcome.citizen.id):
        enrolment = second_factors.begin_totp_enrolment(
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
        action=action,
        authorization_request=carried,
    )


@router.post(
    "/authorize/otp",
    summary="The second-factor form: the authenticator's code (enrolling it the first time).",
    response_class=HTMLResponse,
    response_description="The second-factor page again after a wrong code, or the next page.",
    responses=AUTHORIZATION_FORM,
    openapi_extra=apidoc.form(forms.SecondFactorForm),
)
def second_factor(
    request: Request, db: UnitOfWork, services: ServicesDep, form: PostedSecondFactor
) -> Response:
    step = resumed(request, db, services, form)
    if isinstance(step, HTMLResponse):
        return step
    page, provider, parameters, browser_session = step
    if browser_session is None:
        return continue_flow(page, provider, db, parameters, None, continues_flow=True)
    if not step_up(
        page, db, browser_session, form.otp, now=provider.context.now, credential=form.credential
    ):
        client = provider.query_client(dict(parameters).get("client_id", ""))
        if client is None:
            return continue_flow(
                page, provider, db, parameters, browser_session, continues_flow=True
            )
        return second_factor_page(
            page,
            db,
            ShowSecondFactor(client, registry.get(db, browser_session.citizen_id)),
            urlencode(parameters),
            _authorize_url(parameters),
            failed=True,
        )
    return continue_flow(
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
    return page.redirect(outcome.url)


def _oauth_request(
    services: Services, parameters: FormPairs, *, continues_flow: bool = False
) -> ProviderRequest:
    return ProviderRequest(
        "GET", services.endpoint("/authorize"), {}, query=parameters, continues_flow=continues_flow
    )


def _authorize_url(parameters: FormPairs) -> str:
    return "/authorize?" + urlencode(parameters)
