"""The device authorization grant (RFC 8628), for kiosks and shared screens a citizen must not
type a PIN into: ``POST /device_authorization`` (authlib's endpoint) gives the kiosk its
codes; the citizen approves on their own phone at ``/device`` (``oidc.device_verification``);
the kiosk polls ``/token`` (authlib's grant) until the tokens come out, once.

What is stored, and the one-winner rules of claiming, deciding and redeeming, are
``grants.device``'s; the ID token is OpenID Connect's, as for a code (``OpenIDExtension``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc8628 import (
    DEVICE_CODE_GRANT_TYPE,
    AuthorizationPendingError,
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
    ExpiredTokenError,
    SlowDownError,
)
from authlib.oidc.core.grants.code import OpenIDToken

from digital_id.accounts.grant_standing import redeemed_grant_standing
from digital_id.audit import trail
from digital_id.grants import device
from digital_id.grants.models import AuthorizationGrant
from digital_id.oidc.agency_client import AgencyClient
from digital_id.oidc.claims import (
    OFFLINE_ACCESS,
    ClaimsRequest,
    InvalidClaimsRequestError,
    resolve_claims_request,
)
from digital_id.oidc.code_grant import OpenIDExtension, RefreshOnlyWhenOffline, subject_for
from digital_id.oidc.constants import CLIENT_AUTH_METHODS
from digital_id.oidc.context import OnServer
from digital_id.oidc.errors import check_agreement
from digital_id.oidc.requests import ProviderRequest, describable

# The authorization request's parameters a device authorization keeps for the citizen's
# steps (the level it needs, the claims, the pages' language); the rest has no meaning here.
KEPT_PARAMETERS = frozenset({"claims", "acr_values", "ui_locales"})
# Tries at a user code no live authorization holds, before giving up (each clash is one in
# 2.56e10 per live code).
_USER_CODE_DRAWS = 5


class DeviceAuthorizationRequests(OnServer, DeviceAuthorizationEndpoint):  # type: ignore[misc]
    """``POST /device_authorization`` (RFC 8628 section 3.1): for clients registered for the
    device grant, authenticated as at ``/token``; the scope must be an OpenID one, within
    the registration, and ``claims`` well formed, as at ``/authorize``."""

    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def create_endpoint_response(self, request: ProviderRequest) -> tuple[int, Any, list[Any]]:
        client: AgencyClient = self.authenticate_client(request)
        if not client.check_grant_type(DEVICE_CODE_GRANT_TYPE):
            raise UnauthorizedClientError("this client is not registered for the device grant")
        check_agreement(client, self.context.now)
        requested = request.payload.scope
        if not requested or "openid" not in requested.split():
            raise InvalidScopeError("this is an OpenID provider: the scope must include openid")
        scope = client.get_allowed_scope(requested) or "openid"
        data = request.payload.data
        try:
            requested_claims(client, scope, data.get("claims"))
        except InvalidClaimsRequestError as exc:
            raise InvalidRequestError(describable(str(exc), limit=200)) from None
        context = self.context
        settings = context.settings
        device_code = self.generate_device_code()
        kept = [(name, value) for name, value in request.parameters if name in KEPT_PARAMETERS]
        for _ in range(_USER_CODE_DRAWS):
            user_code = self.generate_user_code()
            if device.start(
                context.session,
                client_pk=client.pk,
                device_code=device_code,
                user_code=user_code,
                scope=scope,
                parameters=kept,
                interval=settings.device_poll_interval_seconds,
                now=context.now,
                lifetime=timedelta(seconds=settings.device_code_seconds),
            ):
                break
        else:  # pragma: no cover (five clashes in a row: the table is flooded)
            raise OAuth2Error("no user code is free; try again", status_code=503)
        trail.record(
            context.session,
            "device:started",
            context=context.events,
            actor="client",
            client_id=client.client_id,
            details={"scope": scope},
            now=context.now,
        )
        verification_uri = self.get_verification_uri()
        body = {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": f"{verification_uri}?user_code={user_code}",
            "expires_in": settings.device_code_seconds,
            "interval": settings.device_poll_interval_seconds,
        }
        return 200, body, [("Cache-Control", "no-store"), ("Pragma", "no-cache")]

    def get_verification_uri(self) -> str:
        return self.context.settings.issuer.rstrip("/") + "/device"


def requested_claims(
    client: AgencyClient, scope: str, claims_parameter: str | None
) -> ClaimsRequest:
    """What a device authorization asks to release, as ``/authorize`` would resolve it
    (offline access only for a client registered for refresh tokens)."""
    claims = resolve_claims_request(
        scope.split(), claims_parameter, registered_scopes=client.registered_scopes
    )
    if OFFLINE_ACCESS in scope.split() and client.check_grant_type("refresh_token"):
        claims = replace(claims, offline_access=True)
    return claims


@dataclass
class DeviceApproval:
    """An approved device authorization, as authlib's grant and OpenID Connect's ID token
    read it (the authorization code's part: when and how the citizen logged in)."""

    grant: AuthorizationGrant
    sid: str | None

    def get_scope(self) -> str:
        return self.grant.scope

    def get_nonce(self) -> None:
        return None  # the device grant has no nonce: the kiosk's request went to us directly

    def get_auth_time(self) -> int:
        return int(self.grant.auth_time.timestamp())

    def get_acr(self) -> str:
        return self.grant.acr

    def get_amr(self) -> list[str]:
        return list(self.grant.amr)


class DeviceGrant(OnServer, RefreshOnlyWhenOffline, DeviceCodeGrant):  # type: ignore[misc]
    """The kiosk's polls at ``/token`` (RFC 8628 section 3.4): ``authorization_pending``,
    ``slow_down`` (sooner than the interval), ``access_denied``, ``expired_token``; the
    tokens on the first poll after the approval, and only then (``grants.device.poll``)."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def validate_token_request(self) -> None:
        device_code = self.request.payload.data.get("device_code")
        if not device_code:
            raise InvalidRequestError("device_code is required")
        client: AgencyClient = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError("this client is not registered for the device grant")
        context = self.context
        found = device.poll(context.session, device_code, client_pk=client.pk, now=context.now)
        if found.outcome == "pending":
            raise AuthorizationPendingError()
        if found.outcome == "slow_down":
            raise SlowDownError(description=f"poll at most every {found.interval} seconds")
        if found.outcome == "expired":
            raise ExpiredTokenError()
        if found.outcome == "denied":
            raise AccessDeniedError("the citizen denied the request")
        if found.grant_id is None:
            raise InvalidGrantError("the device code is unknown, used, or another client's")
        standing = redeemed_grant_standing(context.session, found.grant_id, now=context.now)
        if standing is None or standing[0].problem is not None:
            # Blocked, logged out or withdrawn between the approval and this poll.
            raise InvalidGrantError("the citizen's approval no longer stands")
        found_standing, sid = standing
        self.request.client = client
        self.request.user = subject_for(
            context, client, found_standing.grant, found_standing.citizen
        )
        approval = DeviceApproval(found_standing.grant, sid)
        self.request.credential = approval
        self.request.authorization_code = approval


class DeviceIdToken(OpenIDExtension):
    """The ID token of a device grant: signed (and encrypted) as for a code, with the
    citizen's ``auth_time``, ``acr``, ``amr`` and ``sid`` from the approval."""

    def __call__(self, grant: Any) -> None:
        OpenIDToken.__call__(self, grant)
