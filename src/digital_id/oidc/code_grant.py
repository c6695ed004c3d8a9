"""The authorization code grant (RFC 6749 section 4.1) with PKCE S256 always (RFC 7636) and
OpenID Connect's ID token (Core 3.1), on authlib's grant and extensions."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import cached_property
from typing import Any

from authlib.oauth2.rfc6749 import InvalidRequestError, InvalidScopeError, OAuth2Error
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import AuthorizationCodeMixin
from authlib.oidc.core.errors import RegistrationNotSupportedError, RequestURINotSupportedError
from authlib.oidc.core.grants import OpenIDCode
from sqlalchemy.orm import Session

from digital_id.accounts.grant_standing import redeemed_grant_standing
from digital_id.grants.codes import (
    Authentication,
    CodeRequest,
    create_grant_with_code,
    nonce_used,
    redeem_code,
)
from digital_id.grants.models import AuthorizationCode, AuthorizationGrant
from digital_id.oidc.agency_client import AgencyClient
from digital_id.oidc.claims import (
    OFFLINE_ACCESS,
    ClaimsRequest,
    InvalidClaimsRequestError,
    claim_values,
    resolve_claims_request,
)
from digital_id.oidc.constants import (
    CLIENT_AUTH_METHODS,
    FAPI2_CODE_SECONDS,
    PROMPTS,
    RESPONSE_MODES,
)
from digital_id.oidc.context import OnServer, ProviderContext
from digital_id.oidc.dpop import JWK_THUMBPRINT, InvalidDPoPProofError
from digital_id.oidc.encryption import encrypted_for
from digital_id.oidc.errors import check_agreement
from digital_id.oidc.requests import ProviderRequest, describable
from digital_id.oidc.resources import check_same_resource, requested_resource
from digital_id.registry.models import Citizen
from digital_id.sessions.models import BrowserSession


@dataclass
class Approval:
    """The citizen's yes at the authorization endpoint: who, from which session, releasing what."""

    citizen: Citizen
    browser_session: BrowserSession
    claims: ClaimsRequest
    # The guardian who logged in and approved for ``citizen``, a child (``oidc.acting``).
    guardian: Citizen | None = None

    def get_user_id(self) -> int:
        return self.citizen.id


@dataclass
class Subject:
    """The citizen as one agency knows them, behind an authorization grant."""

    sub: str
    grant: AuthorizationGrant
    session: Session
    known_citizen: Citizen | None = None
    # The guardian who acted for the citizen, a child, as this agency knows them.
    actor_sub: str | None = None

    @property
    def act(self) -> dict[str, Any]:
        """The ``act`` claim (RFC 8693 section 4.1) of a guardian's tokens for a child: the
        guardian's pairwise ``sub`` at the agency. Empty for a citizen's own."""
        return {} if self.actor_sub is None else {"act": {"sub": self.actor_sub}}

    @cached_property
    def citizen(self) -> Citizen:
        """The register's record, read only when a claim needs it (an ID token that names
        none is signed without it), unless the caller had it already."""
        return self.known_citizen or self.session.get_one(Citizen, self.grant.citizen_id)

    def get_user_id(self) -> str:
        return self.sub


class IssuedCode(AuthorizationCodeMixin):  # type: ignore[misc]
    def __init__(
        self, row: AuthorizationCode, grant: AuthorizationGrant, sid: str | None = None
    ) -> None:
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


class RefreshOnlyWhenOffline:
    """For the grants a citizen approves (code, device): a refresh token only when the
    citizen consented to offline access (OpenID Connect Core 11), whatever the client's
    registration allows."""

    def generate_token(
        self,
        user: Subject | None = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        offline = user is not None and user.grant.offline_until is not None
        token: dict[str, Any] = super().generate_token(  # type: ignore[misc]
            user, scope, grant_type, expires_in, include_refresh_token and offline
        )
        return token


class CodeGrant(OnServer, RefreshOnlyWhenOffline, AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    AUTHORIZATION_CODE_LENGTH = 43  # 256 bits of token_urlsafe-like alphabet

    def save_authorization_code(self, code: str, request: ProviderRequest) -> None:
        approval: Approval = request.user
        client: AgencyClient = request.client
        context = self.context
        data = request.payload.data
        browser_session = approval.browser_session
        create_grant_with_code(
            context.session,
            citizen_id=approval.citizen.id,
            client_pk=client.pk,
            authentication=Authentication(
                session_id=browser_session.id,
                acr=browser_session.acr,
                amr=browser_session.amr,
                auth_time=browser_session.auth_time,
                guardian_id=approval.guardian.id if approval.guardian is not None else None,
            ),
            scope=request.scope,
            userinfo_claims=approval.claims.userinfo_release,
            id_token_claims=approval.claims.id_token_release,
            offline_until=context.now + timedelta(days=context.settings.refresh_token_absolute_days)
            if approval.claims.offline_access
            else None,
            code=code,
            request=CodeRequest(
                redirect_uri=data.get("redirect_uri"),
                code_challenge=data["code_challenge"],
                code_challenge_method=data["code_challenge_method"],
                nonce=data.get("nonce"),
                dpop_jkt=data.get("dpop_jkt"),
            ),
            resource=data.get("resource"),
            now=context.now,
            lifetime=timedelta(
                seconds=min(context.settings.authorization_code_seconds, FAPI2_CODE_SECONDS)
                if client.is_fapi2
                else context.settings.authorization_code_seconds
            ),
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
        if row.dpop_jkt is not None and row.dpop_jkt != context.issuing.jkt:
            # Redeemed all the same: a code presented by someone without its key is spent.
            raise InvalidDPoPProofError("the code is bound to another DPoP key (dpop_jkt)")
        check_same_resource(self.request.payload.datalist.get("resource", []), grant.resource)
        context.issuing.resource = grant.resource
        # The session's sid comes with the grant's standing (``authenticate_user``), once the
        # request has passed authlib's checks of the redirect URI and the PKCE verifier.
        return IssuedCode(row, grant)

    def delete_authorization_code(self, authorization_code: IssuedCode) -> None:
        """Nothing to delete: the redemption already marked it, and the mark is what lets a
        second presentation be recognised and its tokens revoked."""

    def authenticate_user(self, authorization_code: IssuedCode) -> Subject | None:
        """The citizen behind the code, if the one rule still lets them receive this agency's
        tokens: a code issued just before a block, a logout or a withdrawal is worth nothing
        (its ID token would name a ``sid`` whose back-channel logout was already sent).

        The grant, its agency, the citizen and the rule's facts come in one statement
        (``accounts.grant_standing``), with the ``sid`` of the session the code came from."""
        context = self.context
        found = redeemed_grant_standing(
            context.session, authorization_code.grant.id, now=context.now
        )
        if found is None:
            return None
        standing, sid = found
        if standing.problem is not None:
            return None  # revoked, or refused by the one rule
        authorization_code.sid = sid
        return subject_for(context, self.request.client, standing.grant, standing.citizen)


def subject_for(
    context: ProviderContext,
    client: AgencyClient,
    grant: AuthorizationGrant,
    citizen: Citizen | None = None,
) -> Subject:
    """The citizen as ``client`` knows them, once the grant was found to stand; ``citizen``
    when the caller has read it already."""
    guardian_id = grant.actor_citizen_id
    return Subject(
        client.subject_for(grant.citizen_id, context.pairwise_secret),
        grant,
        context.session,
        citizen,
        None if guardian_id is None else client.subject_for(guardian_id, context.pairwise_secret),
    )


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


# Parameters we do not offer, each refused with its own error code (Core 3.1.2.6).
_UNSUPPORTED: dict[str, type[OAuth2Error]] = {
    "request_uri": RequestURINotSupportedError,
    "registration": RegistrationNotSupportedError,
}


def validate_request_parameters(grant: CodeGrant, redirect_uri: str) -> None:
    """The OpenID Connect parameters authlib's grant does not check itself."""
    data = grant.request.payload.data
    if "openid" not in (grant.request.scope or "").split():
        raise InvalidScopeError("this is an OpenID provider: the scope must include openid")
    if data.get("response_mode", "query") not in RESPONSE_MODES:
        raise InvalidRequestError("response_mode must be query or form_post")
    for name, refusal in _UNSUPPORTED.items():
        if name in data:
            raise refusal(description=f"the {name} parameter is not supported")
    prompts = set(data.get("prompt", "").split())
    if prompts - PROMPTS:
        unknown = describable(sorted(prompts - PROMPTS)[0])
        raise InvalidRequestError(f"unknown prompt value '{unknown}'")
    requested_resource(
        grant.request.client,
        grant.request.payload.datalist.get("resource", []),
        userinfo_url=grant.context.settings.issuer.rstrip("/") + "/userinfo",
    )
    if "dpop_jkt" in data and not JWK_THUMBPRINT.fullmatch(data["dpop_jkt"]):
        raise InvalidRequestError("dpop_jkt must be a JWK SHA-256 thumbprint (RFC 7638)")
    if "max_age" in data and not (data["max_age"].isdigit() and len(data["max_age"]) <= 9):
        raise InvalidRequestError("max_age must be a non-negative number of seconds")
    client: AgencyClient = grant.request.client
    check_agreement(client, grant.context.now)
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


class OpenIDExtension(OnServer, OpenIDCode):  # type: ignore[misc]
    """The ID token: signed with the algorithm the client registered, ``sid`` of the session
    the code came from, and the claims asked for by name (Core 5.5); nonce optional."""

    def __init__(self, server: Any) -> None:
        super().__init__(require_nonce=False)
        self.server = server

    def __call__(self, grant: CodeGrant) -> None:
        grant.register_hook(
            "after_validate_authorization_request_payload", validate_request_parameters
        )
        super().__call__(grant)

    def exists_nonce(self, nonce: str, request: ProviderRequest) -> bool:
        client: AgencyClient = request.client
        checks = self.context.nonces
        if checks.deferred:
            return False  # asked when the request is validated again to be answered
        known = checks.known
        if (client.pk, nonce) not in known:
            known[client.pk, nonce] = nonce_used(
                self.context.session, client_pk=client.pk, nonce=nonce
            )
        return known[client.pk, nonce]

    def encode_id_token(self, token: dict[str, Any], request: ProviderRequest) -> str:
        """Signed, then encrypted to the agency when it registered an encryption algorithm
        (``oidc.encryption``)."""
        signed: str = super().encode_id_token(token, request)
        encrypted = encrypted_for(
            request.client,
            signed,
            purpose="id_token",
            client_keys=self.context.client_keys,
            nested=True,
        )
        return encrypted or signed

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
        if not user.grant.id_token_claims:
            return {"sub": user.sub, **user.act}
        return {
            "sub": user.sub,
            **user.act,
            **claim_values(
                user.citizen,
                user.grant.id_token_claims,
                regions=self.context.regions,
                today=self.context.now.date(),
            ),
        }
