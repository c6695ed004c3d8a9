"""The portal's family part: a guardian sees, for each child they may act for
(``accounts.delegation``), the agencies with access to the child's data, and can withdraw
them. (A child's own portal names the guardian who gave each thing on their behalf.)

A child is named in URLs by a keyed digest of their record (``child_ref``), never by NIK or
row id, and found only among the guardian's own children in care today, so a reference to
anyone else, or to a child come of age, finds no one.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from digital_id.accounts.delegation import children_in_care, today_in_indonesia
from digital_id.clients import service as clients
from digital_id.consent import access
from digital_id.consent.withdrawal import withdraw_consent
from digital_id.db.types import utc_now
from digital_id.registry import service as registry
from digital_id.registry.models import Citizen
from digital_id.registry.service import age_on
from digital_id.web import apidoc, forms
from digital_id.web.apidoc import PAGE_UNAVAILABLE, redirect
from digital_id.web.citizen_session import (
    LOGIN_PAGE,
    NO_SESSION,
    PORTAL_FORM,
    CitizenForm,
    CitizenPage,
)
from digital_id.web.readable import Readable
from digital_id.web.services import ServicesDep, events
from digital_id.web.unit_of_work import UnitOfWork, after_commit

router = APIRouter(tags=["portal"])

_CHILDREN = "/account#children"
_TO_CHILDREN: apidoc.Responses = {
    303: redirect("No session, no such child in care or agency: to the portal."),
    **PAGE_UNAVAILABLE,
}


def child_ref(secret: bytes, child_id: int) -> str:
    return hmac.new(secret, f"child:{child_id}".encode(), hashlib.sha256).hexdigest()[:32]


def children_shown(
    db: Session, guardian: Citizen, readable: Readable, secret: bytes
) -> list[dict[str, Any]]:
    """Each child the guardian may act for today, with the agencies that hold their consent."""
    today = today_in_indonesia(utc_now())
    children = [
        (child, access.agencies(db, child.id)) for child in children_in_care(db, guardian, today)
    ]
    # Who gave each consent, when not this guardian: the child ("child"), or the other parent.
    others = registry.full_names(
        db,
        (
            agency.consent.given_by_citizen_id
            for _, agencies in children
            for agency in agencies
            if agency.consent.given_by_citizen_id != guardian.id
        ),
    )
    return [
        {
            "ref": child_ref(secret, child.id),
            "name": child.full_name,
            "age": age_on(child.birth_date, today),
            "agencies": [
                {
                    "client_id": agency.client_id,
                    "name": agency.name,
                    "claims": list(agency.consent.claims),
                    "granted_at": readable.moment(agency.consent.granted_at),
                    "given_by": None
                    if agency.consent.given_by_citizen_id == guardian.id
                    else others.get(agency.consent.given_by_citizen_id or 0, "child"),
                }
                for agency in agencies
            ],
        }
        for child, agencies in children
    ]


def _child(db: Session, guardian_id: int, ref: str, secret: bytes) -> Citizen | None:
    guardian = registry.get(db, guardian_id)
    today = today_in_indonesia(utc_now())
    return next(
        (
            child
            for child in children_in_care(db, guardian, today)
            # As bytes: compare_digest refuses a str with anything but ASCII, as a URL may hold.
            if hmac.compare_digest(child_ref(secret, child.id).encode(), ref.encode("utf-8"))
        ),
        None,
    )


@router.get(
    "/account/children/{ref}/agencies/{client_id}/revoke",
    summary="Ask a guardian to confirm withdrawing an agency's access to their child's data.",
    response_class=HTMLResponse,
    response_description=LOGIN_PAGE,
    responses=_TO_CHILDREN,
)
def revoke_confirmation(
    ref: str, client_id: str, visit: CitizenPage, db: UnitOfWork, services: ServicesDep
) -> Response:
    if isinstance(visit, Response):
        return visit
    child = _child(db, visit.session.citizen_id, ref, services.csrf_secret)
    client = clients.find(db, client_id)
    if child is None or client is None:
        return RedirectResponse(_CHILDREN, status_code=303)
    return visit.view.render(
        "revoke.html",
        agency=client.client_name,
        child_name=child.full_name,
        action=f"/account/children/{ref}/agencies/{client.client_id}/revoke",
        back=_CHILDREN,
    )


@router.post(
    "/account/children/{ref}/agencies/{client_id}/revoke",
    summary="A guardian withdraws an agency's access to their child's data.",
    response_class=HTMLResponse,
    response_description=NO_SESSION,
    responses=PORTAL_FORM,
    openapi_extra=apidoc.form(forms.CsrfForm),
)
def revoke(
    ref: str,
    client_id: str,
    request: Request,
    visit: CitizenForm,
    db: UnitOfWork,
    services: ServicesDep,
) -> Response:
    if isinstance(visit, Response):
        return visit
    guardian_id = visit.session.citizen_id
    child = _child(db, guardian_id, ref, services.csrf_secret)
    client = clients.find(db, client_id)
    if (
        child is not None
        and client is not None
        and withdraw_consent(
            db,
            services.key_ring.current(),
            issuer=services.settings.issuer,
            pairwise_secret=services.pairwise_secret,
            citizen_id=child.id,
            client=client,
            now=utc_now(),
            events=events(request),
            guardian_id=guardian_id,
        )
    ):
        after_commit(db, services.logged_out)
    return visit.view.redirect(_CHILDREN)
