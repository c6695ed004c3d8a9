"""A small, strict stand-in for Digital ID's OpenID Connect endpoints, for the demo agency's tests.

It checks what the real provider checks of a confidential client: a private_key_jwt assertion
signed with a registered key (``kid``), ``iss`` = ``sub`` = client_id, ``aud`` the issuer or
the token endpoint, ``exp`` at most five minutes ahead, a ``jti`` never seen before; an
authorization code used once, with its redirect_uri and PKCE S256 verifier.

It also advertises an ``end_session_endpoint`` and signs back-channel logout tokens
(:meth:`FakeDigitalID.logout_token`) the way the real provider does, for the agency's logout.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ISSUER = "http://digital-id.test"
TOKEN_ENDPOINT = f"{ISSUER}/token"
END_SESSION_ENDPOINT = f"{ISSUER}/logout"
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 300


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Grant:
    redirect_uri: str
    nonce: str
    code_challenge: str
    scope: str


@dataclass
class FakeDigitalID:
    client_id: str
    client_jwks: dict[str, Any]
    issuer_in_discovery: str = ISSUER
    id_token_overrides: dict[str, Any] = field(default_factory=dict)
    userinfo_overrides: dict[str, Any] = field(default_factory=dict)
    sign_with_unpublished_key: bool = False
    token_error: str | None = None
    assertions: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    id_tokens: list[str] = field(default_factory=list)
    jwks_requests: int = 0
    sid: str = "digital-id-session-1"
    advertise_end_session: bool = True
    jwks_down: bool = False
    citizen: dict[str, Any] = field(
        default_factory=lambda: {
            "sub": "pairwise-subject-1",
            "name": "Siti Rahayu",
            "nik": "3174015507900002",
            "address": {"locality": "Jakarta Selatan", "country": "ID"},
        }
    )

    def __post_init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"alg": "RS256"}, auto_kid=True)
        self.codes: dict[str, Grant] = {}
        self.tokens: set[str] = set()
        self.seen_jti: set[str] = set()
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/token", self.token, methods=["POST"]),
                Route("/userinfo", self.userinfo),
            ]
        )

    def authorize(self, authorization_url: str) -> str:
        """What /authorize would do once the citizen consents: the redirect back, as a path."""
        parts = urlsplit(authorization_url)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{ISSUER}/authorize"
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        assert query["response_type"] == "code"
        assert query["client_id"] == self.client_id
        assert query["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(16)
        self.codes[code] = Grant(
            redirect_uri=query["redirect_uri"],
            nonce=query["nonce"],
            code_challenge=query["code_challenge"],
            scope=query["scope"],
        )
        return f"/callback?{urlencode({'code': code, 'state': query['state']})}"

    async def discovery(self, request: Request) -> JSONResponse:
        metadata = {
            "issuer": self.issuer_in_discovery,
            "authorization_endpoint": f"{ISSUER}/authorize",
            "token_endpoint": TOKEN_ENDPOINT,
            "userinfo_endpoint": f"{ISSUER}/userinfo",
            "jwks_uri": f"{ISSUER}/jwks",
            "end_session_endpoint": END_SESSION_ENDPOINT,
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
            "response_types_supported": ["code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "code_challenge_methods_supported": ["S256"],
        }
        if not self.advertise_end_session:
            del metadata["end_session_endpoint"]
        return JSONResponse(metadata)

    async def jwks(self, request: Request) -> JSONResponse:
        self.jwks_requests += 1
        if self.jwks_down:
            return JSONResponse({"error": "unavailable"}, 503)
        return JSONResponse(KeySet([self.key]).as_dict(private=False))

    async def token(self, request: Request) -> JSONResponse:
        form = await request.form()
        problem = self._check_assertion(
            form.get("client_assertion_type"), form.get("client_assertion")
        )
        if problem:
            return JSONResponse({"error": "invalid_client", "error_description": problem}, 401)
        grant = self.codes.pop(str(form.get("code")), None)
        if grant is None or self.token_error:
            return JSONResponse({"error": self.token_error or "invalid_grant"}, 400)
        if form.get("redirect_uri") != grant.redirect_uri:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "redirect_uri"}, 400
            )
        verifier = str(form.get("code_verifier", ""))
        if _b64(hashlib.sha256(verifier.encode()).digest()) != grant.code_challenge:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, 400)

        access_token = secrets.token_urlsafe(24)
        self.tokens.add(access_token)
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": self.citizen["sub"],
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "auth_time": now,
            "nonce": grant.nonce,
            "at_hash": _b64(hashlib.sha256(access_token.encode()).digest()[:16]),
            "name": self.citizen["name"],
            "sid": self.sid,
            **self.id_token_overrides,
        }
        key = self.key
        if self.sign_with_unpublished_key:
            key = RSAKey.generate_key(2048, parameters={"kid": str(self.key.kid)})
        id_token = jwt.encode({"alg": "RS256", "kid": self.key.kid}, claims, key)
        self.id_tokens.append(id_token)
        return JSONResponse(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
                "scope": grant.scope,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def userinfo(self, request: Request) -> JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in self.tokens:
            return JSONResponse({"error": "invalid_token"}, 401)
        return JSONResponse({**self.citizen, **self.userinfo_overrides})

    def logout_token(
        self,
        *,
        header: dict[str, Any] | None = None,
        unpublished_key: bool = False,
        **overrides: Any,
    ) -> str:
        """A back-channel logout token as Digital ID sends it (Back-Channel Logout 1.0,
        section 2.4); ``overrides`` replace claims, and a None override removes one."""
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 120,
            "jti": secrets.token_urlsafe(16),
            "sub": self.citizen["sub"],
            "sid": self.sid,
            "events": {BACKCHANNEL_EVENT: {}},
            **overrides,
        }
        claims = {name: value for name, value in claims.items() if value is not None}
        key = self.key
        if unpublished_key:
            key = RSAKey.generate_key(2048, parameters={"kid": str(self.key.kid)})
        headers = {"alg": "RS256", "kid": self.key.kid, "typ": "logout+jwt", **(header or {})}
        headers = {name: value for name, value in headers.items() if value is not None}
        return jwt.encode(headers, claims, key, default_type=None)

    def rotate_key(self) -> None:
        """Publish and sign with a new key (a new kid), as a key rotation does."""
        self.key = RSAKey.generate_key(2048, parameters={"alg": "RS256"}, auto_kid=True)

    def _check_assertion(self, assertion_type: object, assertion: object) -> str | None:
        if assertion_type != ASSERTION_TYPE or not isinstance(assertion, str):
            return "private_key_jwt required"
        try:
            keys = KeySet.import_key_set(self.client_jwks)  # type: ignore[arg-type]
            token = jwt.decode(assertion, keys, algorithms=["RS256", "ES256"])
        except JoseError as exc:
            return f"bad signature ({exc.error})"
        header, claims = dict(token.header), dict(token.claims)
        self.assertions.append((header, claims))
        now = int(time.time())
        if claims.get("iss") != self.client_id or claims.get("sub") != self.client_id:
            return "iss and sub must be the client_id"
        if claims.get("aud") not in (ISSUER, TOKEN_ENDPOINT):
            return "aud must be the issuer or the token endpoint"
        if not now < claims.get("exp", 0) <= now + MAX_ASSERTION_LIFETIME:
            return "exp must be within five minutes"
        if not claims.get("jti") or claims["jti"] in self.seen_jti:
            return "jti missing or replayed"
        self.seen_jti.add(claims["jti"])
        return None
