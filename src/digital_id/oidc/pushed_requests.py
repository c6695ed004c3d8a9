"""Pushed authorization requests (RFC 9126).

authlib has no server side for them (it has the request-object extension, RFC 9101, whose
``request_uri`` it would fetch from the client), so this module is ours. A client posts its
authorization request to ``/par``, authenticated exactly as at ``/token``; the request is
validated as ``/authorize`` would validate it (authlib's grant, with PKCE S256, the
registered redirect URI, our parameter rules and request objects), kept, and named by a
request URI. ``/authorize`` then takes ``client_id`` and ``request_uri`` alone.

A request URI starts one flow, within ``LIFETIME`` seconds, for the client that pushed it:
taking it is one conditional ``UPDATE``, so two browsers presenting it at once cannot both
start. The flow's later steps (login, second factor, consent) carry the URI on and read the
request again, for as long as a flow may last (``FLOW_LIFETIME``), but never start another.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from authlib.oauth2.rfc6749.endpoint import Endpoint, EndpointRequest
from authlib.oauth2.rfc9101.errors import InvalidRequestUriError
from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningUpdate

from digital_id.db.purge import purge_expired
from digital_id.grants.digests import token_digest
from digital_id.oidc.agency_client import AgencyClient
from digital_id.oidc.constants import CLIENT_AUTH_METHODS, MAX_REQUEST_OBJECT_LIFETIME
from digital_id.oidc.context import OnServer, ProviderContext
from digital_id.oidc.dpop import InvalidDPoPProofError
from digital_id.oidc.models import PushedAuthorizationRequest
from digital_id.oidc.requests import Payload, ProviderRequest

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
# Seconds a pushed request may wait for its flow to start: FAPI 2.0 asks for under 600 and the
# issue for at most 60; a client redirects the browser right after pushing.
LIFETIME = 60
# How long a started flow may keep reading its request (a citizen typing a NIK and PIN, then
# a one-time code): as long as a signed request object may carry one.
FLOW_LIFETIME = timedelta(seconds=MAX_REQUEST_OBJECT_LIFETIME)
# What authenticates the push (RFC 6749 2.3, RFC 7523): not part of the authorization request.
_CLIENT_AUTHENTICATION = frozenset({"client_secret", "client_assertion", "client_assertion_type"})


class PushedAuthorization(OnServer, Endpoint):  # type: ignore[misc]
    """``POST /par``: validate, keep and name an authorization request (RFC 9126 section 2)."""

    ENDPOINT_NAME = "pushed_authorization"

    def validate_request(self, request: ProviderRequest) -> EndpointRequest:
        # A proof here binds the code to its key (RFC 9449 section 10.1), as dpop_jkt would;
        # checked first, as at /token, so a nonce refusal spends no client assertion.
        self.server.prove_possession(request, "/par")
        client: AgencyClient = self.server.authenticate_client(
            request, CLIENT_AUTH_METHODS, self.ENDPOINT_NAME
        )
        try:
            authorization = self._validated(request, client)
        except OAuth2Error as error:
            # Answered to the client as JSON (RFC 9126 section 2.3), never by redirect.
            error.redirect_uri = None
            error.state = None
            raise
        return EndpointRequest(authorization, client)

    def _validated(self, request: ProviderRequest, client: AgencyClient) -> ProviderRequest:
        data = request.payload.data
        if "request_uri" in data:
            raise InvalidRequestError("a pushed request may not itself name a request_uri")
        if data.get("client_id", client.client_id) != client.client_id:
            raise InvalidRequestError("client_id is not the client that authenticated")
        if invalid_error_characters(data.get("redirect_uri") or ""):
            raise InvalidRequestError("redirect_uri may hold only printable ASCII characters")
        pairs = [
            (name, value)
            for name, value in request.parameters
            if name not in _CLIENT_AUTHENTICATION
        ]
        if "client_id" not in data:
            pairs.append(("client_id", client.client_id))
        proved = self.context.issuing.jkt
        if proved is not None:
            if data.get("dpop_jkt", proved) != proved:
                raise InvalidDPoPProofError("dpop_jkt is not the key of the DPoP proof")
            if "dpop_jkt" not in data:
                pairs.append(("dpop_jkt", proved))
        authorization = ProviderRequest(
            "GET",
            self.context.settings.issuer.rstrip("/") + "/authorize",
            {},
            query=pairs,
            pushed=True,
        )
        # As /authorize validates it before anyone logs in: the request object (if any) is
        # verified and its jti spent here, then the grant checks the client, redirect URI,
        # response type, scope, PKCE and the OpenID Connect parameters.
        grant = self.server.get_authorization_grant(authorization)
        grant.validate_no_multiple_request_parameter(authorization)
        grant.validate_authorization_request()
        return authorization

    def create_response(self, validated: EndpointRequest) -> tuple[int, Any, list[Any]]:
        context = self.context
        client: AgencyClient = validated.client
        reference = secrets.token_urlsafe(32)
        expires_at = context.now + timedelta(seconds=LIFETIME)
        context.session.add(
            PushedAuthorizationRequest(
                client_id=client.pk,
                reference_digest=token_digest(reference),
                parameters=json.dumps(validated.request.parameters),
                expires_at=expires_at,
                kept_until=expires_at,
            )
        )
        body = {"request_uri": REQUEST_URI_PREFIX + reference, "expires_in": LIFETIME}
        return 201, body, [("Cache-Control", "no-store")]


def requires_push(context: ProviderContext, client: AgencyClient) -> bool:
    """Whether ``client`` must push its authorization requests: the server requires it of
    every client, or the client's registration does."""
    return context.settings.require_pushed_authorization_requests or bool(
        client.client_metadata.get("require_pushed_authorization_requests")
    )


def is_pushed_reference(request_uri: str) -> bool:
    """Whether ``request_uri`` has the form of ours; any other is refused as unsupported."""
    return request_uri.startswith(REQUEST_URI_PREFIX)


def take(
    context: ProviderContext,
    client: AgencyClient,
    request_uri: str,
    *,
    continues_flow: bool,
    state: str | None,
) -> Payload:
    """The authorization request ``request_uri`` names, for ``client``.

    At ``/authorize`` (``continues_flow`` false) it is taken: unexpired, never taken before,
    and pushed by this client, else ``invalid_request_uri``. A later step of the flow it
    started reads it again while the flow may last."""
    session = context.session
    # Bound names differ from the columns': an UPDATE reserves those for its SET clause.
    parameters = {
        "digest": token_digest(request_uri.removeprefix(REQUEST_URI_PREFIX)),
        "client_pk": client.pk,
        "now": context.now,
    }
    if continues_flow:
        found = session.execute(_read_taken(), parameters).scalar_one_or_none()
    else:
        found = session.execute(
            _take(), {**parameters, "flow_ends": context.now + FLOW_LIFETIME}
        ).scalar_one_or_none()
    if found is None:
        raise InvalidRequestUriError(
            description="the request_uri is unknown, expired, used before, or another client's",
            state=state,
        )
    return Payload([(str(name), str(value)) for name, value in json.loads(found)])


@cache
def _take() -> ReturningUpdate[str]:
    return (
        update(PushedAuthorizationRequest)
        .where(
            PushedAuthorizationRequest.reference_digest == bindparam("digest"),
            PushedAuthorizationRequest.client_id == bindparam("client_pk"),
            PushedAuthorizationRequest.taken_at.is_(None),
            PushedAuthorizationRequest.expires_at >= bindparam("now"),
        )
        .values(taken_at=bindparam("now"), kept_until=bindparam("flow_ends"))
        .returning(PushedAuthorizationRequest.parameters)
        .execution_options(synchronize_session=False)
    )


@cache
def _read_taken() -> Select[str]:
    return select(PushedAuthorizationRequest.parameters).where(
        PushedAuthorizationRequest.reference_digest == bindparam("digest"),
        PushedAuthorizationRequest.client_id == bindparam("client_pk"),
        PushedAuthorizationRequest.taken_at.is_not(None),
        PushedAuthorizationRequest.kept_until >= bindparam("now"),
    )


def purge_pushed_requests(session: Session, now: datetime) -> int:
    """Delete up to a batch of pushed requests no flow can use any more (the housekeeping job
    runs it); how many went."""
    return purge_expired(
        session, PushedAuthorizationRequest, PushedAuthorizationRequest.kept_until < now
    )
