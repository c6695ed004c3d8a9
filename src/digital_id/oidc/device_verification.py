"""The citizen's side of a device authorization (RFC 8628 section 3.3), on their own phone:
after the user code is claimed, each step decides what comes next, as ``oidc.authorization``
does for a browser flow: log in, pass the second factor the kiosk's agency needs, then the
consent page, always (section 5.4: the citizen must see which agency, at which place, is
asking, so a code sent to them by someone else is not approved unread). The answer goes to
the kiosk's next poll, never to a browser."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from digital_id import levels
from digital_id.accounts import standing
from digital_id.audit import trail
from digital_id.audit.trail import citizen_ref
from digital_id.clients.agreements import agreement_problem
from digital_id.clients.models import Client
from digital_id.consent import service as consent_service
from digital_id.grants import device
from digital_id.grants.codes import Authentication, create_grant
from digital_id.grants.models import DeviceAuthorization
from digital_id.oidc import assurance
from digital_id.oidc.agency_client import AgencyClient
from digital_id.oidc.approvals import record_approval
from digital_id.oidc.authorization import (
    ShowConsent,
    ShowError,
    ShowLogin,
    ShowSecondFactor,
)
from digital_id.oidc.device_flow import requested_claims
from digital_id.oidc.server import Provider
from digital_id.registry.models import Citizen
from digital_id.sessions.models import BrowserSession


@dataclass(frozen=True)
class DeviceDecided:
    """The citizen approved or denied; the kiosk learns it at its next poll."""

    client: AgencyClient
    approved: bool


DeviceOutcome = ShowLogin | ShowSecondFactor | ShowConsent | ShowError | DeviceDecided


def kiosk_of(provider: Provider, authorization: DeviceAuthorization) -> AgencyClient | None:
    """The agency whose kiosk started ``authorization``, while its registration is enabled."""
    row = provider.context.session.get(Client, authorization.client_id)
    return AgencyClient(row) if row is not None and row.enabled else None


def verify(
    provider: Provider,
    authorization: DeviceAuthorization,
    browser_session: BrowserSession | None,
    *,
    decision: str | None = None,
    logged_in: Citizen | None = None,
) -> DeviceOutcome:
    """One step of the citizen's approval of ``authorization`` (claimed by this browser),
    given the browser's live session, if any. ``logged_in``: the citizen whose login in
    this request started ``browser_session`` (the one rule was asked by that login);
    ``decision``: the consent page's answer."""
    context = provider.context
    client = kiosk_of(provider, authorization)
    if client is None or agreement_problem(client.row, context.now) is not None:
        return ShowError(
            "unauthorized_client",
            "the kiosk's registration is disabled, or its data-sharing agreement not in force",
        )
    citizen = logged_in
    if citizen is None and browser_session is not None:
        refused = standing.refusal(
            context.session,
            browser_session.citizen_id,
            now=context.now,
            browser_session_id=browser_session.id,
        )
        if refused is None:
            citizen = context.session.get_one(Citizen, browser_session.citizen_id)
    if citizen is None or browser_session is None:
        return ShowLogin(client, None)
    parameters = dict(authorization.parameters)
    if not levels.satisfies(
        browser_session.acr, assurance.required_level(parameters, client.client_metadata)
    ):
        return ShowSecondFactor(client, citizen)
    claims = requested_claims(client, authorization.scope, parameters.get("claims"))
    if decision is None:
        return ShowConsent(client, citizen, claims)
    grant_id = None
    if decision == "approve":
        record_approval(
            provider,
            client,
            citizen,
            claims,
            consent_service.stored(context.session, citizen_id=citizen.id, client_pk=client.pk),
        )
        grant_id = create_grant(
            context.session,
            citizen_id=citizen.id,
            client_pk=client.pk,
            authentication=Authentication(
                session_id=browser_session.id,
                acr=browser_session.acr,
                amr=browser_session.amr,
                auth_time=browser_session.auth_time,
            ),
            scope=authorization.scope,
            userinfo_claims=claims.userinfo_release,
            id_token_claims=claims.id_token_release,
            offline_until=context.now + timedelta(days=context.settings.refresh_token_absolute_days)
            if claims.offline_access
            else None,
            now=context.now,
        ).id
    if not device.decide(context.session, authorization, grant_id=grant_id, now=context.now):
        return ShowError("expired_token", "the code has expired or was decided already")
    trail.record(
        context.session,
        "device:approved" if grant_id is not None else "device:denied",
        context=context.events,
        actor="citizen",
        client_id=client.client_id,
        subject=citizen_ref(citizen.id),
        details={"scope": authorization.scope, "acr": browser_session.acr},
        now=context.now,
    )
    return DeviceDecided(client, approved=grant_id is not None)
