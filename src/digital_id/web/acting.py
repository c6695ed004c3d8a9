"""``/authorize/acting``: the guardian's answer to "For whom are you using this service?"
(``oidc.acting``), after which the flow goes on for the one chosen."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from digital_id.oidc.authorization import proves_fresh_login
from digital_id.web import apidoc, forms
from digital_id.web.authorize import AUTHORIZATION_FORM, NEXT_PAGE, continue_flow, resumed
from digital_id.web.forms import PostedActing
from digital_id.web.services import ServicesDep
from digital_id.web.unit_of_work import UnitOfWork

router = APIRouter(tags=["pages"])


@router.post(
    "/authorize/acting",
    summary="For whom the guardian logs in: themselves or a child they may act for.",
    response_class=HTMLResponse,
    response_description=NEXT_PAGE,
    responses=AUTHORIZATION_FORM,
    openapi_extra=apidoc.form(forms.ActingForm),
)
def acting(request: Request, db: UnitOfWork, services: ServicesDep, form: PostedActing) -> Response:
    step = resumed(request, db, services, form)
    if isinstance(step, HTMLResponse):
        return step
    page, provider, parameters, browser_session = step
    # The login just before this page satisfied prompt=login and max_age; carried on, the
    # consent page does not ask for the PIN again.
    fresh = proves_fresh_login(services.csrf_secret, browser_session, parameters, form.login_proof)
    return continue_flow(
        page,
        provider,
        db,
        parameters,
        browser_session,
        fresh_login=fresh,
        continues_flow=True,
        acting_for=form.acting_for or None,
    )
