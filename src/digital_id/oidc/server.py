"""Digital ID's authorization server, assembled once per process from authlib's parts.

authlib supplies the protocol: the authorization code grant (RFC 6749), PKCE (RFC 7636),
OpenID Connect's ID token, client authentication including private_key_jwt (RFC 7523) and
JWT access tokens (RFC 9068). The modules beside this one fill in what authlib leaves to the
server: storage (through ``grants``), keys, the citizen, and the stricter rules we hold every
client to (PKCE S256 always, the client's one registered authentication method, 401 for
every failed client authentication).
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidClientError,
    InvalidRequestError,
    OAuth2Error,
)
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE

from digital_id.audit import trail
from digital_id.audit.trail import citizen_ref
from digital_id.clients.cache import ClientCache
from digital_id.config import Settings
from digital_id.consent.service import guardian_detail
from digital_id.db.types import storable
from digital_id.grants.refresh import issue_refresh_token
from digital_id.oidc import dpop
from digital_id.oidc.access_tokens import AccessTokens
from digital_id.oidc.agency_client import AgencyClient
from digital_id.oidc.claims import SCOPE_CLAIMS
from digital_id.oidc.client_auth import PrivateKeyJwt, authenticate_within_limits
from digital_id.oidc.client_credentials import ClientCredentials
from digital_id.oidc.code_grant import CodeGrant, OpenIDExtension, RequiredS256, Subject
from digital_id.oidc.context import OAuthResponse, ProviderContext
from digital_id.oidc.device_flow import DeviceAuthorizationRequests, DeviceGrant, DeviceIdToken
from digital_id.oidc.end_session import EndSession
from digital_id.oidc.introspection import TokenIntrospection
from digital_id.oidc.pushed_requests import PushedAuthorization
from digital_id.oidc.refresh_grant import PresentedRefreshToken, RefreshGrant
from digital_id.oidc.request_objects import RequestObjects
from digital_id.oidc.requests import ProviderRequest
from digital_id.oidc.revocation import TokenRevocation

# The grants whose first tokens release a citizen's claims in the ID token.
_CITIZEN_GRANTS = frozenset({"authorization_code", DEVICE_CODE_GRANT_TYPE})


class Provider(AuthorizationServer):  # type: ignore[misc]
    """authlib's AuthorizationServer with our grants, endpoints and client authentication,
    built once per process (``Services``). Nothing on it belongs to one request: each
    request's ``ProviderContext`` (database session, time, who is asking) is bound with
    ``serving`` and read back as ``context`` by every grant, endpoint and extension.

    The binding is a context variable, the way authlib's own framework integrations reach
    the current request (Flask's request context): authlib calls many of our hooks
    (``get_jwks``, ``get_client_claims``, ``resolve_client_public_key``, ...) without the
    request, so the context cannot travel as an argument. Each request runs in a context of
    its own (a task, or a copy in the worker thread), so requests never see each other's."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(scopes_supported=list(SCOPE_CLAIMS))
        self._serving: ContextVar[ProviderContext] = ContextVar("oauth_request_context")
        self.clients = ClientCache(check_interval=settings.clients_reload_seconds)
        self.register_grant(CodeGrant, [RequiredS256(required=True), OpenIDExtension(self)])
        self.register_grant(RefreshGrant)
        self.register_grant(ClientCredentials)
        self.register_grant(DeviceGrant, [DeviceIdToken(self)])
        self.register_endpoint(TokenRevocation)
        self.register_endpoint(TokenIntrospection)
        self.register_endpoint(EndSession)
        self.register_endpoint(PushedAuthorization)
        self.register_endpoint(DeviceAuthorizationRequests)
        self.register_extension(RequestObjects(self))
        self.register_token_generator("default", AccessTokens(self, settings))
        self.register_client_auth_method(PrivateKeyJwt.CLIENT_AUTH_METHOD, PrivateKeyJwt(self))

    def serving(self, context: ProviderContext) -> Provider:
        """This server, working for the request ``context`` describes (until the next call
        in the same request's context)."""
        self._serving.set(context)
        return self

    @property
    def context(self) -> ProviderContext:
        return self._serving.get()

    def query_client(self, client_id: str) -> AgencyClient | None:
        if not storable(client_id):
            return None
        known = self.context.clients
        if client_id not in known:
            row = self.clients.find(self.context.session, client_id)
            known[client_id] = AgencyClient(row) if row is not None and row.enabled else None
        return known[client_id]

    def validate_requested_scope(self, scope: str | None) -> None:
        """Unknown scopes are ignored, as OpenID Connect Core 3.1.2.1 asks, not refused."""

    def authenticate_client(
        self, request: ProviderRequest, methods: Any, endpoint: str = "token"
    ) -> AgencyClient:
        """authlib's client authentication, within the rate limits (``client_auth``)."""
        client = authenticate_within_limits(
            self.context, lambda: self._authenticate(request, methods, endpoint), endpoint
        )
        issuing = self.context.issuing
        if issuing.unspent_proof is not None:
            # Spent only now: a request without credentials writes nothing.
            proof, issuing.unspent_proof = issuing.unspent_proof, None
            dpop.spend(self.context.session, proof)
        if (
            endpoint == "token"
            and self.context.issuing.jkt is None
            and client.client_metadata.get("dpop_bound_access_tokens")
        ):
            raise dpop.InvalidDPoPProofError(
                "this client's access tokens are DPoP-bound: send a DPoP proof"
            )
        return client

    def _authenticate(self, request: ProviderRequest, methods: Any, endpoint: str) -> AgencyClient:
        """authlib's client authentication; its refusal named every method it knows, as a
        Python tuple. A client that exists is told the one it is registered for instead."""
        try:
            client: AgencyClient = super().authenticate_client(request, methods, endpoint)
        except InvalidClientError as exc:
            if not str(exc.description).startswith("The client cannot authenticate with"):
                raise  # a refusal of our own (an assertion's), which says what was wrong
            basic = extract_basic_authorization(request.headers)[0]
            claimed = self.query_client(basic or request.payload.client_id or "")
            exc.description = "the client could not be authenticated" + (
                f" with its registered method, {claimed.client_metadata.get('token_endpoint_auth_method')}"
                if claimed is not None
                else ""
            )
            raise
        return client

    def save_token(self, token: dict[str, Any], request: ProviderRequest) -> None:
        """Only a refresh token is stored (hashed): access tokens are self-contained, and
        their grant was stored with the code."""
        subject: Subject | None = request.user
        client: AgencyClient = request.client
        if "refresh_token" in token:
            assert subject is not None
            parent: PresentedRefreshToken | None = request.refresh_token
            issue_refresh_token(
                self.context.session,
                subject.grant,
                token["refresh_token"],
                parent=parent.row if parent is not None else None,
                idle=timedelta(days=self.context.settings.refresh_token_idle_days),
                now=self.context.now,
                # A public client has no credential of its own: the key is its refresh
                # token's only protection (RFC 9449 section 5).
                dpop_jkt=self.context.issuing.jkt if client.is_public else None,
            )
        trail.record(
            self.context.session,
            "token:issued",
            context=self.context.events,
            actor="client",
            client_id=client.client_id,
            # The internal reference, so a citizen's history can be found across agencies.
            subject=citizen_ref(subject.grant.citizen_id) if subject is not None else None,
            details={
                "grant_type": request.payload.grant_type,
                "scope": token.get("scope", ""),
                "refresh_token": "refresh_token" in token,
                "acr": subject.grant.acr if subject is not None else None,
                "id_token_claims": list(subject.grant.id_token_claims) if subject else [],
                **guardian_detail(subject.grant.actor_citizen_id if subject else None),
            },
            now=self.context.now,
        )
        if (
            subject is not None
            and subject.grant.id_token_claims
            and request.payload.grant_type in _CITIZEN_GRANTS
        ):
            # Claims asked for in the ID token leave here, not at UserInfo.
            trail.record(
                self.context.session,
                "claims:released",
                context=self.context.events,
                actor="client",
                client_id=client.client_id,
                subject=citizen_ref(subject.grant.citizen_id),
                details={
                    "claims": sorted(subject.grant.id_token_claims),
                    "acr": subject.grant.acr,
                    "endpoint": "token",
                    **guardian_detail(subject.grant.actor_citizen_id),
                },
                now=self.context.now,
            )

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Not used: the audit trail is written where each event happens (``save_token``,
        ``grants.revocation``), in the request's transaction."""

    def create_oauth2_request(self, request: ProviderRequest) -> ProviderRequest:
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> OAuthResponse:
        return OAuthResponse(status, body, list(headers))

    def create_token_response(self, request: ProviderRequest) -> OAuthResponse:
        problem = request.parameter_problem()
        if problem is not None:
            return self.handle_error_response(request, InvalidRequestError(problem))
        try:
            self.prove_possession(request, "/token")
        except OAuth2Error as error:
            return self.handle_error_response(request, error)
        response: OAuthResponse = super().create_token_response(request)
        nonces = self.context.dpop_nonces
        if self.context.issuing.jkt is not None and nonces is not None:
            # The nonce to use next, so a client need not be refused once per window.
            response.headers.append(("DPoP-Nonce", nonces.current(self.context.now)))
        return response

    def prove_possession(self, request: ProviderRequest, path: str) -> None:
        """The request's DPoP proof (RFC 9449), if it carries one, checked for ``path``; its
        key is then what the tokens issued to this request are bound to."""
        if not request.dpop:
            return
        context = self.context
        proof = dpop.verify_proof(
            context.session,
            request.dpop,
            method="POST",
            url=context.settings.issuer.rstrip("/") + path,
            now=context.now,
            nonces=context.dpop_nonces,
            remember=False,
        )
        context.issuing.jkt = proof.jkt
        context.issuing.unspent_proof = proof

    def create_endpoint_response(self, name: str, request: ProviderRequest) -> OAuthResponse:
        problem = request.parameter_problem()
        if problem is not None:
            return self.handle_error_response(request, InvalidRequestError(problem))
        response: OAuthResponse = super().create_endpoint_response(name, request)
        return response

    def handle_error_response(self, request: ProviderRequest, error: OAuth2Error) -> OAuthResponse:
        if isinstance(error, InvalidClientError):
            # RFC 6749 5.2 allows 401 always and requires it with Basic; one answer for all.
            error.status_code = 401
        response: OAuthResponse = super().handle_error_response(request, error)
        return response
