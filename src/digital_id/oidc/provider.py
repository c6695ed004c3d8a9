"""Digital ID's authorization server, assembled from authlib's parts.

authlib supplies the protocol: the authorization code grant (RFC 6749), PKCE (RFC 7636),
OpenID Connect's ID token, client authentication including private_key_jwt (RFC 7523) and
JWT access tokens (RFC 9068). This module fills in what authlib leaves to the server:
storage, keys, the citizen, and the stricter rules we hold every client to (PKCE S256 always,
the client's one registered authentication method, 401 for every failed client
authentication). A ``Provider`` is built per request around that request's database session,
so nothing here holds state between requests.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
)
from authlib.oauth2.rfc6749.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc8628 import SlowDownError as DeviceSlowDownError
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from authlib.oauth2.rfc9101 import JWTAuthenticationRequest
from authlib.oauth2.rfc9101.errors import InvalidRequestObjectError
from authlib.oidc.core import AuthorizationCodeMixin
from authlib.oidc.core.grants import OpenIDCode
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digital_id.audit import trail
from digital_id.audit.trail import EventContext, citizen_ref
from digital_id.clients.jwks import (
    ASSERTION_ALGORITHMS,
    ClientKeyResolver,
    ClientKeysUnavailableError,
)
from digital_id.clients.models import Client
from digital_id.clients.service import verify_secret
from digital_id.clients.subjects import subject_for
from digital_id.config import Settings
from digital_id.consent import service as consent_service
from digital_id.db.purge import purge_expired
from digital_id.db.types import storable
from digital_id.grants.codes import (
    Authentication,
    CodeRequest,
    create_grant,
    issue_code,
    nonce_used,
    redeem_code,
)
from digital_id.grants.models import (
    AuthorizationCode,
    AuthorizationGrant,
    RefreshToken,
)
from digital_id.grants.refresh import (
    accept_generation,
    issue_refresh_token,
    live_family_member,
    mark_rotated,
)
from digital_id.grants.revocation import revoke_access_token, revoke_grant
from digital_id.keys.store import KeySnapshot
from digital_id.oidc.claims import (
    OFFLINE_ACCESS,
    SCOPE_CLAIMS,
    ClaimsRequest,
    InvalidClaimsRequestError,
    claim_values,
    resolve_claims_request,
)
from digital_id.oidc.jwt_policy import (
    MAX_REQUEST_OBJECT_LENGTH,
    UnacceptableJwtError,
    check_jwt,
)
from digital_id.oidc.models import SeenClientAssertion, SeenRequestObject
from digital_id.oidc.requests import Payload, ProviderRequest, describable, parameter_problem
from digital_id.oidc.tokens import (
    ACCESS_TOKEN_ALGORITHM,
    CLIENT_TOKEN_PREFIX,
    PresentedToken,
    find_token,
    grant_problem,
)
from digital_id.registry.models import Citizen
from digital_id.registry.regions import RegionTable
from digital_id.sessions.models import BrowserSession
from digital_id.throttle.limiter import Limits, RateLimitedError, RateLimiter

RESPONSE_MODES = ("query", "form_post")
PROMPTS = frozenset({"none", "login", "consent", "select_account"})
# Client assertions may not be valid for longer than this (a replay window we must remember).
MAX_ASSERTION_LIFETIME = 300
# A request object may be prepared ahead (a link in a letter), but not for longer than this.
MAX_REQUEST_OBJECT_LIFETIME = 3600
ASSERTION_LEEWAY = 10
# Scopes that release something about a citizen: never for a client acting as itself.
CITIZEN_SCOPES: Final = frozenset({*SCOPE_CLAIMS, OFFLINE_ACCESS})
CLIENT_AUTH_METHODS: Final = (
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "none",
)


@dataclass(frozen=True)
class ProviderContext:
    """What one request's protocol work needs, passed in (no globals)."""

    session: Session
    settings: Settings
    keys: KeySnapshot
    pairwise_secret: bytes
    regions: RegionTable
    client_keys: ClientKeyResolver
    now: datetime
    events: EventContext = field(default_factory=EventContext)
    rate_limiter: RateLimiter | None = None
    limits: Limits | None = None

    @property
    def token_endpoint(self) -> str:
        return self.settings.issuer.rstrip("/") + "/token"


@dataclass(frozen=True)
class OAuthResponse:
    """A response as authlib produces it, for the web layer to send."""

    status: int
    body: Any
    headers: list[tuple[str, str]]

    @property
    def location(self) -> str | None:
        return next((value for name, value in self.headers if name.lower() == "location"), None)


class AgencyClient(ClientMixin):  # type: ignore[misc]
    """An enabled agency client as authlib's grants ask about it."""

    def __init__(self, row: Client) -> None:
        self.row = row
        self.client_metadata: dict[str, Any] = row.registration

    @property
    def pk(self) -> int:
        return self.row.id

    @property
    def client_id(self) -> str:
        return self.row.client_id

    @property
    def redirect_uris(self) -> list[str]:
        return list(self.client_metadata.get("redirect_uris", []))

    @property
    def registered_scopes(self) -> list[str]:
        return str(self.client_metadata.get("scope", "openid")).split()

    @property
    def id_token_signed_response_alg(self) -> str:
        return str(self.client_metadata.get("id_token_signed_response_alg", "RS256"))

    def assertion_algorithms(self, registered_as: str) -> frozenset[str]:
        """The algorithms the client may sign with where ``registered_as``
        (``token_endpoint_auth_signing_alg``, ``request_object_signing_alg``) applies: the one
        it registered, or any asymmetric one (OpenID Connect Registration 1.0, section 2)."""
        registered = self.client_metadata.get(registered_as)
        return frozenset({registered}) if registered else ASSERTION_ALGORITHMS

    def name(self, language: str) -> str:
        return self.row.display_name(language)

    def subject_for(self, citizen_id: int, secret: bytes) -> str:
        return subject_for(self.row, citizen_id, secret)

    # --- authlib's ClientMixin -------------------------------------------------------------

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Only an unambiguous default: with several registered, the request must name one.
        uris = self.redirect_uris
        return uris[0] if len(uris) == 1 else None

    @property
    def api_scopes(self) -> list[str]:
        """The registered scopes a client may hold as itself (client credentials)."""
        return [scope for scope in self.registered_scopes if scope not in CITIZEN_SCOPES]

    @property
    def is_resource_server(self) -> bool:
        return self.client_metadata.get("resource_server") is True

    def get_allowed_scope(self, scope: str | None) -> str | None:
        requested = (scope or "").split()
        if "openid" not in requested:
            # Acting as itself: only its own API scopes; all of them if it names none.
            return " ".join(s for s in requested if s in self.api_scopes) or (
                " ".join(self.api_scopes) if not requested else ""
            )
        registered = set(self.registered_scopes)
        # Scopes outside the registration are dropped (the token response shows what was granted).
        return " ".join(dict.fromkeys(s for s in requested if s in registered))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # exact string match, nothing looser

    def check_client_secret(self, client_secret: str) -> bool:
        return verify_secret(self.row, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.client_metadata.get("token_endpoint_auth_method")

    def check_response_type(self, response_type: str) -> bool:
        return response_type in self.client_metadata.get("response_types", ["code"])

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.client_metadata.get("grant_types", [])


@dataclass
class Approval:
    """The citizen's yes at the authorization endpoint: who, from which session, releasing what."""

    citizen: Citizen
    browser_session: BrowserSession
    claims: ClaimsRequest

    def get_user_id(self) -> int:
        return self.citizen.id


@dataclass
class Subject:
    """The citizen as one agency knows them, behind an authorization grant."""

    sub: str
    grant: AuthorizationGrant
    citizen: Citizen

    def get_user_id(self) -> str:
        return self.sub


class IssuedCode(AuthorizationCodeMixin):  # type: ignore[misc]
    def __init__(self, row: AuthorizationCode, grant: AuthorizationGrant, sid: str | None) -> None:
        self.row = row
        self.grant = grant
        self.sid = sid
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str | None:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.grant.scope

    def get_nonce(self) -> str | None:
        return self.row.nonce

    def get_auth_time(self) -> int:
        return int(self.grant.auth_time.timestamp())

    def get_acr(self) -> str:
        return self.grant.acr

    def get_amr(self) -> list[str]:
        return list(self.grant.amr)


class _OnServer:
    """For authlib grants and endpoints: the request's context, from the server they serve."""

    server: Any

    @property
    def context(self) -> ProviderContext:
        context: ProviderContext = self.server.context
        return context


class CodeGrant(_OnServer, AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    AUTHORIZATION_CODE_LENGTH = 43  # 256 bits of token_urlsafe-like alphabet

    def save_authorization_code(self, code: str, request: ProviderRequest) -> None:
        approval: Approval = request.user
        client: AgencyClient = request.client
        context = self.context
        data = request.payload.data
        browser_session = approval.browser_session
        grant = create_grant(
            context.session,
            citizen_id=approval.citizen.id,
            client_pk=client.pk,
            authentication=Authentication(
                session_id=browser_session.id,
                acr=browser_session.acr,
                amr=browser_session.amr,
                auth_time=browser_session.auth_time,
            ),
            scope=request.scope,
            userinfo_claims=approval.claims.userinfo,
            id_token_claims=approval.claims.id_token,
            offline_until=context.now + timedelta(days=context.settings.refresh_token_absolute_days)
            if approval.claims.offline_access
            else None,
            now=context.now,
        )
        issue_code(
            context.session,
            grant,
            code,
            request=CodeRequest(
                redirect_uri=data.get("redirect_uri"),
                code_challenge=data["code_challenge"],
                code_challenge_method=data["code_challenge_method"],
                nonce=data.get("nonce"),
            ),
            now=context.now,
            lifetime=timedelta(seconds=context.settings.authorization_code_seconds),
        )

    def query_authorization_code(self, code: str, client: AgencyClient) -> IssuedCode | None:
        """Redeem the code, once (``grants.codes.redeem_code``)."""
        context = self.context
        redeemed = redeem_code(
            context.session, code, client_pk=client.pk, now=context.now, events=context.events
        )
        if redeemed is None:
            return None
        row, grant = redeemed
        browser_session = (
            context.session.get(BrowserSession, grant.session_id) if grant.session_id else None
        )
        return IssuedCode(row, grant, browser_session.sid if browser_session else None)

    def generate_token(
        self,
        user: Subject | None = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        # A refresh token only when the citizen consented to offline access (Core 11).
        offline = user is not None and user.grant.offline_until is not None
        token: dict[str, Any] = super().generate_token(
            user, scope, grant_type, expires_in, include_refresh_token and offline
        )
        return token

    def delete_authorization_code(self, authorization_code: IssuedCode) -> None:
        """Nothing to delete: the redemption already marked it, and the mark is what lets a
        second presentation be recognised and its tokens revoked."""

    def authenticate_user(self, authorization_code: IssuedCode) -> Subject | None:
        """The citizen behind the code, if the one rule still lets them receive this agency's
        tokens: a code issued just before a block, a logout or a withdrawal is worth nothing
        (its ID token would name a ``sid`` whose back-channel logout was already sent)."""
        return subject_of(self.context, self.request.client, authorization_code.grant)


def subject_of(
    context: ProviderContext, client: AgencyClient, grant: AuthorizationGrant
) -> Subject | None:
    """The citizen behind ``grant`` as ``client`` knows them, or None when the grant no longer
    stands (``tokens.grant_problem``: revoked, or refused by the one rule)."""
    if grant_problem(context.session, grant, context.now) is not None:
        return None
    citizen = context.session.get_one(Citizen, grant.citizen_id)
    return Subject(client.subject_for(citizen.id, context.pairwise_secret), grant, citizen)


class PresentedRefreshToken:
    def __init__(self, row: RefreshToken, grant: AuthorizationGrant) -> None:
        self.row = row
        self.grant = grant

    def check_client(self, client: AgencyClient) -> bool:
        return self.grant.client_id == client.pk

    def get_scope(self) -> str:
        return self.grant.scope


class RefreshGrant(_OnServer, RefreshTokenGrant):  # type: ignore[misc]
    """Rotation on every use (OAuth 2.0 Security BCP 4.14). Only the newest generation of a
    family is live; a token rotated less than REFRESH_GRACE ago still works (its response may
    have been lost), and any other stale token presented revokes the family: that grant
    only, not the citizen's other sessions or agencies."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> PresentedRefreshToken | None:
        context = self.context
        client: AgencyClient = self.request.client
        found = live_family_member(
            context.session, refresh_token, client_pk=client.pk, now=context.now
        )
        if found is None:
            return None
        row, grant = found
        consent = consent_service.current(
            context.session, citizen_id=grant.citizen_id, client_pk=client.pk
        )
        if consent is None or OFFLINE_ACCESS not in consent.claims:
            return None  # withdrawn since (the one rule, in subject_of, asks the rest)
        if not accept_generation(
            context.session, row, grant, now=context.now, events=context.events
        ):
            return None
        return PresentedRefreshToken(row, grant)

    def authenticate_user(self, refresh_token: PresentedRefreshToken) -> Subject | None:
        return subject_of(self.context, self.request.client, refresh_token.grant)

    def revoke_old_credential(self, refresh_token: PresentedRefreshToken) -> None:
        mark_rotated(self.context.session, refresh_token.row, now=self.context.now)


class RequiredS256(CodeChallenge):  # type: ignore[misc]
    """PKCE for every client, S256 only (authlib would accept ``plain`` and no challenge)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 (authlib's class attribute)

    def validate_code_challenge(self, grant: CodeGrant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError(
                "code_challenge is required: every client uses PKCE with S256 (RFC 7636)"
            )
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256; plain is not accepted")
        super().validate_code_challenge(grant, redirect_uri)


def validate_request_parameters(grant: CodeGrant, redirect_uri: str) -> None:
    """The OpenID Connect parameters authlib's grant does not check itself."""
    data = grant.request.payload.data
    if "openid" not in (grant.request.scope or "").split():
        raise InvalidScopeError("this is an OpenID provider: the scope must include openid")
    if data.get("response_mode", "query") not in RESPONSE_MODES:
        raise InvalidRequestError("response_mode must be query or form_post")
    for name in ("request_uri", "registration"):
        if name in data:
            raise OAuth2Error(
                error=f"{name}_not_supported",
                description=f"the {name} parameter is not supported",
            )
    prompts = set(data.get("prompt", "").split())
    if prompts - PROMPTS:
        unknown = describable(sorted(prompts - PROMPTS)[0])
        raise InvalidRequestError(f"unknown prompt value '{unknown}'")
    if "max_age" in data and not (data["max_age"].isdigit() and len(data["max_age"]) <= 9):
        raise InvalidRequestError("max_age must be a non-negative number of seconds")
    client: AgencyClient = grant.request.client
    try:
        grant.request.claims_request = resolve_claims_request(
            (grant.request.scope or "").split(),
            data.get("claims"),
            registered_scopes=client.registered_scopes,
        )
    except InvalidClaimsRequestError as exc:
        raise InvalidRequestError(describable(str(exc), limit=200)) from None
    if OFFLINE_ACCESS in (grant.request.scope or "").split() and client.check_grant_type(
        "refresh_token"
    ):
        grant.request.claims_request = replace(grant.request.claims_request, offline_access=True)


class OpenIDExtension(OpenIDCode):  # type: ignore[misc]
    def __init__(self, context: ProviderContext) -> None:
        super().__init__(require_nonce=False)
        self.context = context

    def __call__(self, grant: CodeGrant) -> None:
        grant.register_hook(
            "after_validate_authorization_request_payload", validate_request_parameters
        )
        super().__call__(grant)

    def exists_nonce(self, nonce: str, request: ProviderRequest) -> bool:
        client: AgencyClient = request.client
        return nonce_used(self.context.session, client_pk=client.pk, nonce=nonce)

    def resolve_client_private_key(self, client: AgencyClient) -> Any:
        return self.context.keys.signing_key(client.id_token_signed_response_alg)

    def get_encode_header(self, client: AgencyClient) -> dict[str, str]:
        alg = client.id_token_signed_response_alg
        return {"alg": alg, "kid": self.context.keys.signing_key(alg).kid or "", "typ": "JWT"}

    def get_client_claims(self, client: AgencyClient) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.context.settings.issuer,
            "aud": client.client_id,
            "iat": now,
            "exp": now + self.context.settings.id_token_lifetime_seconds,
        }

    def get_authorization_code_claims(self, authorization_code: IssuedCode) -> dict[str, Any]:
        claims: dict[str, Any] = super().get_authorization_code_claims(authorization_code)
        if authorization_code.sid:
            claims["sid"] = authorization_code.sid
        return claims

    def generate_user_info(self, user: Subject, scope: str) -> dict[str, Any]:
        # Scope claims go to UserInfo (Core 5.4); only those asked for by name come here.
        return {
            "sub": user.sub,
            **claim_values(
                user.citizen,
                user.grant.id_token_claims,
                regions=self.context.regions,
                today=self.context.now.date(),
            ),
        }


def _random_refresh_token(**_: Any) -> str:
    return secrets.token_urlsafe(32)


class AccessTokens(JWTBearerTokenGenerator):  # type: ignore[misc]
    """RFC 9068 access tokens: no claim values, nothing written; the ``jti`` starts with the
    grant's public id so UserInfo can check that the grant is still live."""

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(
            issuer=context.settings.issuer,
            alg=ACCESS_TOKEN_ALGORITHM,
            expires_generator=context.settings.access_token_lifetime_seconds,
            refresh_token_generator=_random_refresh_token,
        )
        self.context = context

    def get_jwks(self) -> KeySet:
        return KeySet([self.context.keys.signing_key(ACCESS_TOKEN_ALGORITHM)])

    def get_jti(
        self, client: AgencyClient, grant_type: str, user: Subject | None, scope: str
    ) -> str:
        owner = user.grant.public_id if user is not None else CLIENT_TOKEN_PREFIX
        return f"{owner}.{secrets.token_urlsafe(12)}"

    def get_auth_time(self, user: Subject | None) -> int | None:
        return int(user.grant.auth_time.timestamp()) if user is not None else None

    def get_acr(self, user: Subject | None) -> str | None:
        return user.grant.acr if user is not None else None


class PrivateKeyJwt(JWTBearerClientAssertion):  # type: ignore[misc]
    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(validate_jti=True, leeway=ASSERTION_LEEWAY)
        self.context = context

    def get_audiences(self) -> list[str]:
        """The issuer identifier alone (draft-ietf-oauth-rfc7523bis, FAPI 2.0): an assertion
        made out to an endpoint URL could have been obtained by another server that
        advertised our endpoint as its own, and replayed here."""
        return [self.context.settings.issuer]

    def resolve_client_public_key(self, client: AgencyClient) -> Any:
        return self.context.client_keys.resolver(
            client.client_id,
            client.client_metadata,
            algorithms=client.assertion_algorithms("token_endpoint_auth_signing_alg"),
        )

    def extract_assertion(self, assertion: str) -> Any:
        # Before authlib reads anything from it (it looks the client up by ``sub`` first).
        try:
            check_jwt(assertion, algorithms=ASSERTION_ALGORITHMS, require_kid=False)
        except UnacceptableJwtError as exc:
            raise InvalidClientError(description=str(exc)) from None
        return super().extract_assertion(assertion)

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        try:
            return super().process_assertion_claims(assertion, resolve_key)
        except ClientKeysUnavailableError as exc:
            raise InvalidClientError(description=str(exc)) from None

    def verify_claims(self, claims: Any) -> None:
        if claims.get("aud") not in (self.context.settings.issuer, [self.context.settings.issuer]):
            raise InvalidClientError(
                description="the assertion's aud must be the issuer identifier, and only it"
            )
        exp = claims.get("exp")
        if (
            isinstance(exp, int | float)
            and exp > time.time() + MAX_ASSERTION_LIFETIME + self.leeway
        ):
            raise InvalidClientError(
                description=f"the assertion's exp is more than {MAX_ASSERTION_LIFETIME} seconds ahead"
            )
        super().verify_claims(claims)

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        """Remember the ``jti`` until the assertion expires; a second use anywhere fails."""
        session = self.context.session
        client = session.scalars(select(Client).where(Client.client_id == claims["sub"])).one()
        if not isinstance(jti, str) or len(jti) > 256:
            return False
        expires_at = datetime.fromtimestamp(
            float(claims["exp"]) + self.leeway, tz=self.context.now.tzinfo
        )
        purge_expired(
            session, SeenClientAssertion, SeenClientAssertion.expires_at < self.context.now
        )
        try:
            with session.begin_nested():
                session.add(
                    SeenClientAssertion(client_id=client.id, jti=jti, expires_at=expires_at)
                )
        except IntegrityError:
            return False
        return True


class ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    """An agency acting as itself, for agency-to-agency APIs: only clients registered for the
    grant, only scopes in their registration, never a scope that releases citizen data."""

    TOKEN_ENDPOINT_AUTH_METHODS = tuple(m for m in CLIENT_AUTH_METHODS if m != "none")

    def validate_token_request(self) -> None:
        super().validate_token_request()
        client: AgencyClient = self.request.client
        requested = set((self.request.payload.scope or "").split())
        if requested & CITIZEN_SCOPES or not requested <= set(client.api_scopes):
            raise InvalidScopeError("the scope is not in this client's registration")
        if not client.api_scopes:
            raise InvalidScopeError("this client has no scopes registered for itself")


class _FindsTokens(_OnServer):
    """Revocation and introspection look a presented token up the same way."""

    def query_token(self, token_string: str, token_type_hint: str | None) -> PresentedToken | None:
        context = self.context
        return find_token(
            context.session,
            token_string,
            keys=context.keys,
            issuer=context.settings.issuer,
            now=context.now,
        )


class TokenRevocation(_FindsTokens, RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009. Revoking any token of a grant revokes the grant: its refresh token family
    and its access tokens (at UserInfo and introspection) together."""

    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def authenticate_token(self, request: ProviderRequest, client: AgencyClient) -> Any:
        """Another client's token is treated as an unknown one: 200 and nothing revoked.
        authlib answers it 400 ``invalid_grant``, which would tell a client, against a 200
        for garbage, that a token it holds is real (RFC 7009 section 2.2 allows the 200)."""
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        return token if token is not None and token.check_client(client) else None

    def revoke_token(self, token: PresentedToken, request: ProviderRequest) -> None:
        context = self.context
        if token.grant is not None:
            revoke_grant(
                context.session,
                token.grant.id,
                context.now,
                reason="revoked_by_client",
                events=context.events,
            )
            return
        revoke_access_token(
            context.session, token.claims["jti"], expires_at=token.expires_at, now=context.now
        )


class TokenIntrospection(_FindsTokens, IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662. A client sees its own tokens; a client registered as a resource server sees
    any. Inactive, expired, revoked, unknown and foreign tokens all answer ``active: false``."""

    CLIENT_AUTH_METHODS = tuple(m for m in CLIENT_AUTH_METHODS if m != "none")

    def check_permission(
        self, token: PresentedToken, client: AgencyClient, request: ProviderRequest
    ) -> bool:
        return token.check_client(client) or client.is_resource_server

    def introspect_token(self, token: PresentedToken) -> dict[str, Any]:
        if token.kind == "access_token":
            payload: dict[str, Any] = {
                name: token.claims[name]
                for name in (
                    "scope",
                    "client_id",
                    "sub",
                    "aud",
                    "iss",
                    "exp",
                    "iat",
                    "jti",
                    "acr",
                    "auth_time",
                )
                if name in token.claims
            }
            return {"active": True, "token_type": "Bearer", **payload}
        assert token.grant is not None
        owner = AgencyClient(token.client)
        return {
            "active": True,
            "token_type": "refresh_token",
            "scope": token.grant.scope,
            "client_id": token.client.client_id,
            "sub": owner.subject_for(token.grant.citizen_id, self.context.pairwise_secret),
            "iss": self.context.settings.issuer,
            "exp": int(token.expires_at.timestamp()),
        }


class RequestObjects(JWTAuthenticationRequest):  # type: ignore[misc]
    """Signed request objects by value (RFC 9101, OpenID Connect Core 6.1), on authlib's
    extension: verified against the client's own keys (asymmetric algorithms only, so
    ``alg=none`` and HMAC never pass), ``aud`` must be us, ``exp`` is required. Values in the
    object override the query; ``request_uri`` is refused until it can be offered safely."""

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(support_request=True, support_request_uri=False)
        self.context = context

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
        self.claims_validator = jwt.JWTClaimsRegistry(
            now=int(self.context.now.timestamp()),
            leeway=ASSERTION_LEEWAY,
            client_id={"essential": True, "value": client_id},
            aud={"essential": True, "value": self.context.settings.issuer},
            exp={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
            iss={"essential": False, "value": client_id},
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
        purge_expired(session, SeenRequestObject, SeenRequestObject.expires_at < context.now)
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


class SlowDownError(DeviceSlowDownError):  # type: ignore[misc]
    """The client has used up its token budget for this window. ``slow_down`` is registered
    for the token endpoint (RFC 8628 section 3.5, OAuth Extensions Error Registry); the
    status is RFC 6585's 429, with ``Retry-After`` saying when the window frees."""

    status_code = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(description=f"Too many token requests; retry after {retry_after} seconds")
        self.retry_after = retry_after

    def get_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = super().get_headers()
        return [*headers, ("Retry-After", str(self.retry_after))]


class Provider(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, context: ProviderContext) -> None:
        super().__init__(scopes_supported=list(SCOPE_CLAIMS))
        self.context = context
        self._clients: dict[str, AgencyClient | None] = {}
        self.register_grant(CodeGrant, [RequiredS256(required=True), OpenIDExtension(context)])
        self.register_grant(RefreshGrant)
        self.register_grant(ClientCredentials)
        self.register_endpoint(TokenRevocation)
        self.register_endpoint(TokenIntrospection)
        self.register_extension(RequestObjects(context))
        self.register_token_generator("default", AccessTokens(context))
        self.register_client_auth_method(PrivateKeyJwt.CLIENT_AUTH_METHOD, PrivateKeyJwt(context))

    def query_client(self, client_id: str) -> AgencyClient | None:
        if not storable(client_id):
            return None
        if client_id not in self._clients:
            row = self.context.session.scalars(
                select(Client).where(Client.client_id == client_id)
            ).one_or_none()
            self._clients[client_id] = (
                AgencyClient(row) if row is not None and row.enabled else None
            )
        return self._clients[client_id]

    def validate_requested_scope(self, scope: str | None) -> None:
        """Unknown scopes are ignored, as OpenID Connect Core 3.1.2.1 asks, not refused."""

    def authenticate_client(
        self, request: ProviderRequest, methods: Any, endpoint: str = "token"
    ) -> AgencyClient:
        """authlib's client authentication, with the rate limits around it.

        An address whose failed client authentications (at the token, revocation and
        introspection endpoints alike) spent its window is refused before any authentication
        work: no assertion is parsed, no agency key set fetched, no secret hashed. The check
        costs no statement; the database counts each failure, and each process remembers the
        windows it saw refused.

        A client's token budget is charged only once it has authenticated: charged to the
        client id a request merely claims, anyone could spend an agency's budget and lock it
        out. The hit is committed at once, in a transaction of its own (authentication is the
        grant's first step, so nothing else is in it but a ``private_key_jwt``'s seen
        ``jti``): every request of one client counts on one row, and a row lock held until
        the grant's end would let that client's requests through one at a time."""
        context = self.context
        limiter, limits = context.rate_limiter, context.limits
        if limiter is None or limits is None:
            return self._authenticate(request, methods, endpoint)
        failures = limits.client_auth_failure(context.events.ip)
        try:
            limiter.refuse_remembered([failures], now=context.now)
            try:
                client = self._authenticate(request, methods, endpoint)
            except InvalidClientError:
                limiter.charge(context.session, [failures], now=context.now)
                raise
            if endpoint == "token":
                limiter.charge(
                    context.session, [(limits.token_per_client, client.client_id)], now=context.now
                )
        except RateLimitedError as refused:
            raise SlowDownError(refused.retry_after) from None
        context.session.commit()
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
            )
        trail.record(
            self.context.session,
            "token:issued",
            context=self.context.events,
            actor="client",
            client_id=client.client_id,
            # The internal reference, so a citizen's history can be found across agencies.
            subject=citizen_ref(subject.citizen.id) if subject is not None else None,
            details={
                "grant_type": request.payload.grant_type,
                "scope": token.get("scope", ""),
                "refresh_token": "refresh_token" in token,
                "acr": subject.grant.acr if subject is not None else None,
                "id_token_claims": list(subject.grant.id_token_claims) if subject else [],
            },
            now=self.context.now,
        )
        if (
            subject is not None
            and subject.grant.id_token_claims
            and request.payload.grant_type == "authorization_code"
        ):
            # Claims asked for in the ID token leave here, not at UserInfo.
            trail.record(
                self.context.session,
                "claims:released",
                context=self.context.events,
                actor="client",
                client_id=client.client_id,
                subject=citizen_ref(subject.citizen.id),
                details={
                    "claims": sorted(subject.grant.id_token_claims),
                    "acr": subject.grant.acr,
                    "endpoint": "token",
                },
                now=self.context.now,
            )

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """authlib's signal hook; nothing listens: ``save_token`` and the endpoints write the
        audit trail themselves."""

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
        response: OAuthResponse = super().create_token_response(request)
        return response

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
