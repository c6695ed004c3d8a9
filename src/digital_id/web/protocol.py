"""The machine-to-machine endpoints: token, revocation, introspection, UserInfo (discovery and
the JWK Set are ``web.published``)."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Error
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from digital_id.db.types import utc_now
from digital_id.oidc.context import OAuthResponse
from digital_id.oidc.errors import MissingAccessTokenError
from digital_id.oidc.requests import ProviderRequest
from digital_id.oidc.userinfo import Presentation, userinfo
from digital_id.web import apidoc
from digital_id.web.apidoc import OAUTH_UNAVAILABLE, OAuthError, oauth_error, throttled_oauth
from digital_id.web.forms import form_pairs
from digital_id.web.routing import DirectRoute
from digital_id.web.services import Services, events
from digital_id.web.services import services as services_of
from digital_id.web.unit_of_work import after_commit, in_unit_of_work

router = APIRouter(tags=["openid-connect"], route_class=DirectRoute)

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# What every client-authenticated endpoint may answer besides success.
_CLIENT_ERRORS: apidoc.Responses = {
    400: oauth_error("The request is malformed or the grant is invalid."),
    401: {
        **oauth_error("`invalid_client`: the client could not be authenticated."),
        "headers": {
            "WWW-Authenticate": {
                "description": "Sent when the client tried HTTP Basic authentication.",
                "schema": {"type": "string"},
            }
        },
    },
    **OAUTH_UNAVAILABLE,
}


@router.post(
    "/token",
    summary="Token endpoint (RFC 6749 section 3.2): redeem an authorization code.",
    response_model=apidoc.TokenResponse,
    responses=_CLIENT_ERRORS | throttled_oauth(),
    openapi_extra=apidoc.form(apidoc.TokenRequest) | apidoc.DPOP_PROOF,
)
async def token(request: Request) -> Response:
    services, form = services_of(request), await form_pairs(request)
    oauth_request = ProviderRequest(
        "POST",
        services.endpoint("/token"),
        request.headers,
        query=(),
        form=form,
        dpop=request.headers.getlist("dpop"),
    )
    context = events(request, "client")
    return await in_unit_of_work(
        services,
        lambda db: _oauth_json(
            db, services.provider(db, context).create_token_response(oauth_request)
        ),
    )


@router.post(
    "/par",
    summary="Pushed authorization request (RFC 9126): validate and keep an authorization request, for /authorize to take by its request_uri.",
    status_code=201,
    response_model=apidoc.PushedRequest,
    responses=_CLIENT_ERRORS | throttled_oauth(),
    openapi_extra=apidoc.form(apidoc.PushedAuthorizationRequest),
)
async def pushed_authorization(request: Request) -> Response:
    return await _endpoint(request, "/par", "pushed_authorization")


@router.post(
    "/device_authorization",
    summary="Device authorization (RFC 8628 section 3.1): a kiosk's device code and the user code a citizen approves at /device.",
    response_model=apidoc.DeviceAuthorizationResponse,
    responses=_CLIENT_ERRORS | throttled_oauth(),
    openapi_extra=apidoc.form(apidoc.DeviceAuthorizationRequest),
)
async def device_authorization(request: Request) -> Response:
    return await _endpoint(request, "/device_authorization", "device_authorization")


@router.post(
    "/revoke",
    summary="Token revocation (RFC 7009): a refresh or access token, and with it its grant.",
    response_model=dict[str, Any],
    response_description="Revoked, or the token was unknown (RFC 7009 section 2.2).",
    responses=_CLIENT_ERRORS | throttled_oauth(),
    openapi_extra=apidoc.form(apidoc.TokenLookup),
)
async def revoke(request: Request) -> Response:
    return await _endpoint(request, "/revoke", "revocation")


@router.post(
    "/introspect",
    summary="Token introspection (RFC 7662): whether a token is live, for its client or a resource server.",
    response_model=apidoc.Introspection,
    responses=_CLIENT_ERRORS | throttled_oauth(),
    openapi_extra=apidoc.form(apidoc.TokenLookup),
)
async def introspect(request: Request) -> Response:
    return await _endpoint(request, "/introspect", "introspection")


async def _endpoint(request: Request, path: str, name: str) -> Response:
    """One of authlib's client-authenticated endpoints (``name``), at ``path``."""
    services, form = services_of(request), await form_pairs(request)
    oauth_request = ProviderRequest(
        "POST",
        services.endpoint(path),
        request.headers,
        query=(),
        form=form,
        dpop=request.headers.getlist("dpop"),
    )
    context = events(request, "client")
    return await in_unit_of_work(
        services,
        lambda db: _oauth_json(
            db, services.provider(db, context).create_endpoint_response(name, oauth_request)
        ),
    )


def _oauth_json(db: Session, response: OAuthResponse) -> JSONResponse:
    if response.status == 429:
        # A rate-limit refusal changes nothing: the code stays unredeemed, the refresh
        # token unrotated (and the refused hit uncounted: the window is full either way).
        db.rollback()
    # Any other outcome is committed by the unit of work: a redeemed code, a revoked grant,
    # a seen assertion id, whether or not the answer is an error.
    return _json(response)


async def render_oauth_error(request: Request, exc: Exception) -> Response:
    """The one handler for an OAuth error raised out of a route: its status, body and
    headers are the error class's own (as authlib renders those its endpoints catch)."""
    assert isinstance(exc, OAuth2Error)
    status, body, headers = exc()
    return _json(OAuthResponse(status, body, list(headers)))


def _json(response: OAuthResponse) -> JSONResponse:
    """A protocol answer as JSON, never cached."""
    headers = {name: value for name, value in response.headers if name.lower() != "content-type"}
    return JSONResponse(
        response.body, status_code=response.status, headers={**headers, **_NO_STORE}
    )


_USERINFO: dict[str, Any] = {
    "summary": "UserInfo (OpenID Connect Core 5.3): the consented claims, for a Bearer access token.",
    "description": "The access token goes in the `Authorization: Bearer` header (RFC 6750 section 2.1), or for a DPoP-bound token in `Authorization: DPoP` with a proof in the `DPoP` header (RFC 9449 section 7.1).",
    "openapi_extra": apidoc.DPOP_PROOF,
    "response_model": apidoc.UserInfo,
    "responses": {
        200: {
            "description": "The claims, or a signed JWT of them when the client registered `userinfo_signed_response_alg`.",
            "content": {apidoc.JWT: {"schema": {"type": "string"}}},
        },
        401: {
            "description": "No access token (`invalid_request`), not a live one (`invalid_token`), or a DPoP proof that does not hold (`invalid_dpop_proof`).",
            "model": OAuthError,
            "headers": apidoc.CHALLENGE,
        },
        **OAUTH_UNAVAILABLE,
    },
}


@router.get("/userinfo", **_USERINFO)
async def userinfo_get(request: Request) -> Response:
    services = services_of(request)
    return await in_unit_of_work(services, lambda db: _userinfo(request, db, services))


@router.post("/userinfo", **_USERINFO)
async def userinfo_post(request: Request) -> Response:
    services = services_of(request)
    return await in_unit_of_work(services, lambda db: _userinfo(request, db, services))


def _userinfo(request: Request, db: Session, services: Services) -> Response:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() not in ("bearer", "dpop") or not token.strip():
        raise MissingAccessTokenError()
    keys = services.key_ring.current()
    info = userinfo(
        db,
        token.strip(),
        presented=Presentation(
            scheme.lower(),
            request.headers.getlist("dpop"),
            request.method,
            services.endpoint("/userinfo"),
        ),
        keys=keys,
        issuer=services.settings.issuer,
        regions=services.regions,
        now=utc_now(),
        events=events(request, "client"),
        recorded=services.recorded_releases,
    )
    if info.release is not None:
        # Remembered only once the audit trail's record of the release is committed.
        release, expires = info.release, info.expires
        after_commit(db, lambda: services.recorded_releases.add(release, expires))
    jwt = info.as_jwt(keys, issuer=services.settings.issuer, client_keys=services.client_keys)
    if jwt is None:
        return JSONResponse(info.claims, headers=_NO_STORE)
    return Response(jwt, media_type="application/jwt", headers=_NO_STORE)
