"""The consent page, as a browser flow (``/authorize/consent``) and a kiosk's (``/device/consent``)
show it: the agency (and a kiosk's place), the claims, and what the agency's data-sharing
agreement says: the purpose, the legal basis in words, the agreement's number and end. A
guardian acting for a child sees whose data it is; before it, they were asked for whom they
log in (``acting_page``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from babel.dates import format_date
from fastapi.responses import HTMLResponse

from digital_id.accounts.delegation import today_in_indonesia
from digital_id.clients.agreements import agreement_of
from digital_id.db.types import utc_now
from digital_id.oidc.acting import ShowActingChoice
from digital_id.oidc.authorization import ShowConsent
from digital_id.registry.service import age_on
from digital_id.web.rendering import Page


def consent_page(
    page: Page,
    outcome: ShowConsent,
    *,
    action: str,
    back_to: str,
    authorization_request: str = "",
    login_proof: str = "",
    form_targets: Iterable[str] = (),
    device_location: str | None = None,
) -> HTMLResponse:
    """``device_location``: a kiosk's place, for the consent to its device login."""
    metadata = outcome.client.client_metadata
    logo = str(metadata.get("logo_uri", ""))
    return page.render(
        "consent.html",
        back_to=back_to,
        form_targets=form_targets,
        agency=outcome.client.name(page.language),
        device_location=device_location,
        citizen_name=outcome.citizen.full_name,
        guardian_name=outcome.guardian.full_name if outcome.guardian is not None else None,
        acting_for=outcome.acting_for,
        claims=[
            {"name": name, "essential": name in outcome.claims.essential}
            for name in outcome.claims.consent_items
        ],
        logo_uri=logo if logo.startswith("https://") else None,
        policy_uri=metadata.get("policy_uri"),
        agreement=_agreement_shown(page, metadata),
        action=action,
        authorization_request=authorization_request,
        login_proof=login_proof,
    )


def acting_page(
    page: Page,
    outcome: ShowActingChoice,
    back_to: str,
    form_targets: Iterable[str],
    authorization_request: str,
    *,
    login_proof: str,
) -> HTMLResponse:
    """ "For whom are you using this service?": the guardian, and each child they may act for."""
    today = today_in_indonesia(utc_now())
    return page.render(
        "acting.html",
        back_to=back_to,
        form_targets=form_targets,
        agency=outcome.client.name(page.language),
        guardian_name=outcome.guardian.full_name,
        dependants=[
            {
                "choice": dependant.choice,
                "name": dependant.citizen.full_name,
                "age": age_on(dependant.citizen.birth_date, today),
            }
            for dependant in outcome.dependants
        ],
        authorization_request=authorization_request,
        login_proof=login_proof,
    )


def _agreement_shown(page: Page, registration: dict[str, Any]) -> dict[str, str] | None:
    agreement = agreement_of(registration)
    if agreement is None:
        return None
    return {
        "purpose": agreement.purpose[page.language],
        "legal_basis": page.t(f"legal_basis.{agreement.legal_basis}"),
        "number": agreement.number,
        "expires": format_date(agreement.expires, format="long", locale=page.language),
    }
