"""Signed request objects by value (RFC 9101, OpenID Connect Core 6.1), on authlib's
extension, with their seen-``jti`` cache."""

from __future__ import annotations

import json
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationServer, InvalidRequestError
from authlib.oauth2.rfc9101 import JWTAuthenticationRequest
from authlib.oauth2.rfc9101.errors import InvalidRequestObjectError
from joserfc import jwt
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digital_id.clients.jwks import ASSERTION_ALGORITHMS, ClientKeysUnavailableError
from digital_id.db.purge import purge_expired
from digital_id.oidc import pushed_requests
from digital_id.oidc.agency_client import AgencyClient
from digital_id.oidc.constants import ASSERTION_LEEWAY, MAX_REQUEST_OBJECT_LIFETIME
from digital_id.oidc.context import OnServer
from digital_id.oidc.jwt_policy import MAX_REQUEST_OBJECT_LENGTH, UnacceptableJwtError, check_jwt
from digital_id.oidc.models import SeenRequestObject
from digital_id.oidc.requests import Payload, ProviderRequest, parameter_problem


class RequestObjects(OnServer, JWTAuthenticationRequest):  # type: ignore[misc]
    """Signed request objects by value (RFC 9101, OpenID Connect Core 6.1), on authlib's
    extension: verified against the client's own keys (asymmetric algorithms only, so
    ``alg=none`` and HMAC never pass), ``aud`` must be us, ``exp`` is required. Values in the
    object override the query. A ``request_uri`` is taken only from ``/par``
    (``pushed_requests``); any other is refused, as we fetch nothing a client points at."""

    def __init__(self, server: Any) -> None:
        super().__init__(support_request=True, support_request_uri=False)
        self.server = server
        # authlib reads the claim rules off the extension, which serves every request of the
        # process; each request's rules (its client, its time) live in its own context.
        self._claim_rules: ContextVar[jwt.JWTClaimsRegistry] = ContextVar("request_object_rules")

    @property
    def claims_validator(self) -> jwt.JWTClaimsRegistry:
        return self._claim_rules.get()

    def resolve_client_public_key(self, client: AgencyClient) -> Any:
        return self.context.client_keys.resolver(
            client.client_id,
            client.client_metadata,
            algorithms=client.assertion_algorithms("request_object_signing_alg"),
        )

    def get_request_object_signing_algorithms(self, client: AgencyClient) -> list[str]:
        return sorted(client.assertion_algorithms("request_object_signing_alg"))

    def get_server_metadata(self) -> dict[str, Any]:
        return {}

    def get_client_require_signed_request_object(self, client: AgencyClient) -> bool:
        return False

    def parse_authorization_request(
        self, authorization_server: AuthorizationServer, request: ProviderRequest
    ) -> None:
        query = request.payload
        client_id = query.client_id
        if self._pushed(authorization_server, request):
            return
        if "request" in query.data:
            try:
                check_jwt(
                    query.data["request"],
                    algorithms=ASSERTION_ALGORITHMS,
                    max_length=MAX_REQUEST_OBJECT_LENGTH,
                    require_kid=False,
                )
            except UnacceptableJwtError as exc:
                raise InvalidRequestObjectError(description=str(exc), state=query.state) from None
        self._claim_rules.set(
            jwt.JWTClaimsRegistry(
                now=int(self.context.now.timestamp()),
                leeway=ASSERTION_LEEWAY,
                client_id={"essential": True, "value": client_id},
                aud={"essential": True, "value": self.context.settings.issuer},
                exp={"essential": True},
                iat={"essential": True},
                jti={"essential": True},
                iss={"essential": False, "value": client_id},
            )
        )
        try:
            super().parse_authorization_request(authorization_server, request)
        except ClientKeysUnavailableError as exc:
            raise InvalidRequestObjectError(description=str(exc), state=query.state) from None
        if request.payload is query:
            return
        client: AgencyClient = authorization_server.query_client(client_id)
        self._check_fresh(request, query, client)
        merged = {name: value for name, value in query.data.items() if name != "request"}
        for name, value in request.payload.data.items():
            merged[name] = value if isinstance(value, str) else json.dumps(value)
        problem = parameter_problem(merged.items())
        if problem is not None:
            raise InvalidRequestObjectError(description=problem, state=None)
        request.payload = Payload(list(merged.items()))

    def _pushed(self, authorization_server: AuthorizationServer, request: ProviderRequest) -> bool:
        """Whether the request names a pushed one (RFC 9126), which then becomes the request;
        refused when it names none for a client that must push (``pushed_requests``). A
        ``request_uri`` of any other form is left to authlib, which refuses it as unsupported."""
        query = request.payload
        request_uri = query.data.get("request_uri")
        client: AgencyClient | None = authorization_server.query_client(query.client_id or "")
        if client is None:
            return False  # authlib refuses an unknown client next
        if request_uri is None or not pushed_requests.is_pushed_reference(request_uri):
            if not request.pushed and pushed_requests.requires_push(self.context, client):
                raise InvalidRequestError(
                    "this client must push its authorization requests (PAR, RFC 9126)",
                    state=query.state,
                )
            return False
        if "request" in query.data:
            raise InvalidRequestError(
                "request and request_uri are mutually exclusive", state=query.state
            )
        request.payload = pushed_requests.take(
            self.context,
            client,
            request_uri,
            continues_flow=request.continues_flow,
            state=query.state,
        )
        return True

    def _check_fresh(self, request: ProviderRequest, query: Payload, client: AgencyClient) -> None:
        """``exp`` at most an hour ahead, and the ``jti`` new when the object starts a flow
        (recorded until ``exp``). The login, second-factor and consent steps carry the same
        object on: there it must be one that started a flow here."""
        claims: dict[str, Any] = request.payload.data  # the object's claims, not strings
        context = self.context
        now = context.now.timestamp()
        exp, jti = claims.get("exp"), claims.get("jti")
        if (
            not isinstance(exp, int | float)
            or exp > now + MAX_REQUEST_OBJECT_LIFETIME + ASSERTION_LEEWAY
        ):
            raise InvalidRequestObjectError(
                description=f"the request object's exp is more than {MAX_REQUEST_OBJECT_LIFETIME} seconds ahead",
                state=query.state,
            )
        if not isinstance(jti, str) or not 0 < len(jti) <= 256:
            raise InvalidRequestObjectError(description="jti must be a string", state=query.state)
        session = context.session
        if request.continues_flow:
            seen = session.scalar(
                select(
                    exists().where(
                        SeenRequestObject.client_id == client.pk,
                        SeenRequestObject.jti == jti,
                        SeenRequestObject.expires_at >= context.now,
                    )
                )
            )
            if not seen:
                raise InvalidRequestObjectError(
                    description="the request object did not start this flow", state=query.state
                )
            return
        try:
            with session.begin_nested():
                session.add(
                    SeenRequestObject(
                        client_id=client.pk,
                        jti=jti,
                        expires_at=datetime.fromtimestamp(
                            float(exp) + ASSERTION_LEEWAY, tz=context.now.tzinfo
                        ),
                    )
                )
        except IntegrityError:
            raise InvalidRequestObjectError(
                description="the request object was used before (jti)", state=query.state
            ) from None


def purge_seen_request_objects(session: Session, now: datetime) -> int:
    """Delete up to a batch of remembered request-object ids past their expiry (the
    housekeeping job runs it, not an authorization request); how many went."""
    return purge_expired(session, SeenRequestObject, SeenRequestObject.expires_at < now)
