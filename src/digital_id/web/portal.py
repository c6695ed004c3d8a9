"""The citizen's portal (``/account``): their data, the agencies with access (and taking it
away), what was released when, and their sessions. Same login, session, languages and CSRF
rules as the login pages.

A page needs the level the citizen has (``assurance.citizen_level``): for a citizen with an
authenticator, a session that has only the PIN (a portal login waiting for its code, or a
login at an agency that asked for the PIN alone) is pending, and every page asks for the code
until it passes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from digital_id import levels
from digital_id.accounts import passkeys, second_factor
from digital_id.audit import history as audit_history
from digital_id.clients import service as clients
from digital_id.consent import access
from digital_id.consent.service import guardian_in
from digital_id.consent.withdrawal import withdraw_consent
from digital_id.db.types import utc_now
from digital_id.levels import LOA_SUBSTANTIAL
from digital_id.registry import service as registry
from digital_id.registry.models import Citizen
from digital_id.sessions import service as sessions
from digital_id.sessions.ending import end_browser_session
from digital_id.web import apidoc, forms
from digital_id.web.apidoc import PAGE_UNAVAILABLE, redirect
from digital_id.web.citizen_session import (
    LOGIN_PAGE,
    NO_SESSION,
    PORTAL_FORM,
    CitizenDownload,
    CitizenForm,
    CitizenPage,
)
from digital_id.web.forms import (
    PostedEndSessions,
)
from digital_id.web.portal_family import children_shown
from digital_id.web.readable import Readable
from digital_id.web.services import ServicesDep, events
from digital_id.web.unit_of_work import UnitOfWork, after_commit

router = APIRouter(tags=["portal"])

RECORD_FIELDS = ("nik", "kk_number", "full_name", "birth_place", "birth_date", "sex", "blood_type", "religion", "marital_status", "occupation", "nationality", "street", "rt", "rw", "village", "district_code")  # fmt: skip


_TO_PORTAL: apidoc.Responses = {
    303: redirect("No session (or nothing to show): to the portal."),
    **PAGE_UNAVAILABLE,
}


@router.get(
    "/account",
    summary="The portal: the citizen's record, agencies with access, releases, sessions.",
    response_class=HTMLResponse,
    response_description=LOGIN_PAGE,
    responses=PAGE_UNAVAILABLE,
)
def account(
    visit: CitizenPage,
    db: UnitOfWork,
    services: ServicesDep,
    page: Annotated[str, Query(description="The page of the release history, from 1.")] = "1",
) -> Response:
    if isinstance(visit, Response):
        return visit
    view, browser_session = visit.view, visit.session
    citizen = registry.get(db, browser_session.citizen_id)
    number = _page_number(page)
    history, more = audit_history.releases(db, citizen.id, page=number)
    names = clients.names(db)
    readable = Readable(view, citizen.district_code, services.regions)
    away = audit_history.while_away(db, citizen.id, logged_in_at=browser_session.created_at)
    receipts = access.receipts(db, citizen.id)
    # Who acted for this citizen, a child, where a guardian did.
    guardians = registry.full_names(
        db,
        [
            *(receipt.actor_citizen_id for receipt, _ in receipts),
            *(guardian_in(event.details) for event in history),
        ],
    )
    return view.render(
        "account.html",
        citizen=citizen,
        record=_record(citizen, readable),
        agencies=_agencies(db, citizen.id, readable.moment),
        children=children_shown(db, citizen, readable, services.csrf_secret),
        history=[
            {
                "when": readable.moment(event.occurred_at),
                "agency": names.get(event.client_id or "", event.client_id),
                "claims": event.details.get("claims", []),
                "level": readable.level(event.details.get("acr", "")),
                "by": guardians.get(guardian_in(event.details) or 0),
            }
            for event in history
        ],
        page=number,
        more=more,
        receipts=[
            {
                "id": receipt.receipt_id,
                "decision": receipt.decision,
                "agency": names.get(client_id, client_id),
                "when": readable.moment(receipt.issued_at),
                "by": guardians.get(receipt.actor_citizen_id or 0),
            }
            for receipt, client_id in receipts
        ],
        second_factor=second_factor.second_factor_enrolled(db, citizen.id),
        passkeys=[
            {
                "id": item.id,
                "name": item.name,
                "created": readable.moment(item.created_at),
                "last_used": readable.moment(item.last_used_at) or None,
            }
            for item in passkeys.passkeys_of(db, citizen.id)
        ],
        # Enrolling a passkey, which reaches substantial on its own, needs that level here.
        passkey_enrol=levels.satisfies(browser_session.acr, LOA_SUBSTANTIAL),
        away=away,
        away_since=readable.moment(away.previous_login),
        sessions=[
            {
                "sid": item.sid,
                "device": readable.device(item.device_hint),
                "since": readable.moment(item.created_at),
                "current": item.id == browser_session.id,
            }
            for item in sessions.live_sessions(
                db, citizen.id, policy=services.session_policy, now=utc_now()
            )
        ],
    )


@router.get(
    "/account/data.json",
    summary="Download the citizen's data as JSON.",
    response_model=apidoc.PersonalData,
    responses=_TO_PORTAL,
)
def download(visit: CitizenDownload, db: UnitOfWork) -> Response:
    """The citizen's register record and access history (UU PDP's right to a copy)."""
    if isinstance(visit, Response):
        return visit
    citizen = registry.get(db, visit.session.citizen_id)
    history = audit_history.all_releases(db, citizen.id)
    body: dict[str, Any] = {
        "record": {name: str(getattr(citizen, name)) for name in RECORD_FIELDS},
        "agencies": [
            {k: v for k, v in agency.items() if k != "receipts"}
            for agency in _agencies(db, citizen.id, _iso)
        ],
        "access_history": [
            {"when": e.occurred_at.isoformat(), "client_id": e.client_id, **e.details}
            for e in history
        ],
    }
    return Response(
        json.dumps(body, ensure_ascii=False, indent=2),
        media_type="application/json",
        headers={
            "Content-Disposition": 'attachment; filename="digital-id-data.json"',
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/account/receipts/{receipt_id}.jwt",
    summary="Download one of the citizen's consent receipts (a signed JWT).",
    response_class=apidoc.JwtResponse,
    responses={404: {"description": "No such receipt of this citizen's."}, **_TO_PORTAL},
)
def receipt(receipt_id: str, visit: CitizenDownload, db: UnitOfWork) -> Response:
    if isinstance(visit, Response):
        return visit
    token = access.receipt_token(db, visit.session.citizen_id, receipt_id)
    if token is None:
        return Response(status_code=404, headers={"Cache-Control": "no-store"})
    return Response(
        token,
        media_type="application/jwt",
        headers={
            "Content-Disposition": f'attachment; filename="consent-receipt-{receipt_id}.jwt"',
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/account/agencies/{client_id}/revoke",
    summary="Ask the citizen to confirm withdrawing an agency's access.",
    response_class=HTMLResponse,
    response_description=LOGIN_PAGE,
    responses=_TO_PORTAL,
)
def revoke_confirmation(client_id: str, visit: CitizenPage, db: UnitOfWork) -> Response:
    if isinstance(visit, Response):
        return visit
    client = clients.find(db, client_id)
    if client is None:
        return RedirectResponse("/account#agencies", status_code=303)
    return visit.view.render("revoke.html", agency=client.client_name, client_id=client.client_id)


@router.post(
    "/account/agencies/{client_id}/revoke",
    summary="Withdraw an agency's access: its consent, tokens and sessions.",
    response_class=HTMLResponse,
    response_description=NO_SESSION,
    responses=PORTAL_FORM,
    openapi_extra=apidoc.form(forms.CsrfForm),
)
def revoke(
    client_id: str, request: Request, visit: CitizenForm, db: UnitOfWork, services: ServicesDep
) -> Response:
    if isinstance(visit, Response):
        return visit
    client = clients.find(db, client_id)
    if client is not None and withdraw_consent(
        db,
        services.key_ring.current(),
        issuer=services.settings.issuer,
        pairwise_secret=services.pairwise_secret,
        citizen_id=visit.session.citizen_id,
        client=client,
        now=utc_now(),
        events=events(request),
    ):
        after_commit(db, services.logged_out)
    return visit.view.redirect("/account#agencies")


@router.post(
    "/account/sessions/end",
    summary="End one of the citizen's sessions, or all of them.",
    response_class=HTMLResponse,
    response_description=NO_SESSION,
    responses=PORTAL_FORM,
    openapi_extra=apidoc.form(forms.EndSessionsForm),
)
def end_sessions(
    request: Request,
    visit: CitizenForm,
    db: UnitOfWork,
    services: ServicesDep,
    form: PostedEndSessions,
) -> Response:
    if isinstance(visit, Response):
        return visit
    view, current = visit.view, visit.session
    wanted = form.sid
    now = utc_now()
    ended_current = False
    for item in sessions.live_sessions(
        db, current.citizen_id, policy=services.session_policy, now=now
    ):
        if wanted in ("*", item.sid):
            end_browser_session(
                db, item, pairwise_secret=services.pairwise_secret, now=now, events=events(request)
            )
            ended_current = ended_current or item.id == current.id
    after_commit(db, services.logged_out)
    if ended_current:
        view.logged_out()
    return view.redirect("/account")


def _page_number(given: str) -> int:
    """The history page asked for; a link someone edited into nonsense (or a number past what
    any database offset holds) shows the first page rather than an error."""
    if given.isascii() and given.isdigit() and 0 < len(given) <= 6:
        return max(int(given), 1)
    return 1


def _record(citizen: Citizen, readable: Readable) -> list[tuple[str, str]]:
    """The register's record as the citizen reads it: dates, sex and the region in words."""
    shown = {
        "birth_date": readable.day(citizen.birth_date),
        "sex": readable.sex(citizen.sex),
        "district_code": readable.region(citizen.district_code),
    }
    return [(name, shown.get(name, getattr(citizen, name))) for name in RECORD_FIELDS]


def _iso(moment: datetime | None) -> str:
    """A moment as the JSON download writes it (for programs, not people): ISO 8601, UTC."""
    return moment.isoformat(timespec="minutes") if moment else ""


def _agencies(
    db: Session, citizen_id: int, when: Callable[[datetime | None], str]
) -> list[dict[str, Any]]:
    """The agencies with access; ``when`` writes their moments (in words, or ISO 8601)."""
    last_release = audit_history.last_release_by_agency(db, citizen_id)
    standing = access.agencies(db, citizen_id)
    guardians = registry.full_names(db, (agency.consent.given_by_citizen_id for agency in standing))
    agencies = []
    for agency in standing:
        released = last_release.get(agency.client_id)
        agencies.append(
            {
                "client_id": agency.client_id,
                "name": agency.name,
                "claims": list(agency.consent.claims),
                "offline_access": "offline_access" in agency.consent.claims,
                "granted_at": when(agency.consent.granted_at),
                "last_release": when(released) or None,
                "receipts": [] if agency.latest_receipt is None else [agency.latest_receipt],
                # The guardian who gave it for this citizen, a child; None if they did.
                "given_by": guardians.get(agency.consent.given_by_citizen_id or 0),
            }
        )
    return agencies
