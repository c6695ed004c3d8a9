"""OpenID Provider metadata (OpenID Connect Discovery 1.0), from what the server supports.

Built from the same constants the protocol code uses, and checked with authlib's metadata
classes, so discovery cannot advertise what the server does not do.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from authlib.oauth2.rfc9207 import AuthorizationServerMetadata as IssuerParameterMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata
from authlib.oidc.rpinitiated import OpenIDProviderMetadata as LogoutMetadata

from digital_id.clients.jwks import (
    ASSERTION_ALGORITHMS,
    CONTENT_ENCRYPTION,
    ENCRYPTION_ALGORITHMS,
)
from digital_id.clients.metadata import AUTH_METHODS, GRANT_TYPES, LANGUAGES, SUBJECT_TYPES
from digital_id.keys.store import ALGORITHMS
from digital_id.levels import ACR_VALUES
from digital_id.oidc.claims import OFFLINE_ACCESS, SCOPE_CLAIMS, SUPPORTED_CLAIMS
from digital_id.oidc.constants import RESPONSE_MODES
from digital_id.oidc.dpop import ALGORITHMS as DPOP_ALGORITHMS
from digital_id.oidc.verified_claims import EVIDENCE, TRUST_FRAMEWORK

ENDPOINTS = {
    "authorization_endpoint": "/authorize",
    "token_endpoint": "/token",
    "userinfo_endpoint": "/userinfo",
    "revocation_endpoint": "/revoke",
    "introspection_endpoint": "/introspect",
    "jwks_uri": "/jwks",
    "end_session_endpoint": "/logout",
    "pushed_authorization_request_endpoint": "/par",
    "device_authorization_endpoint": "/device_authorization",
}


def provider_metadata(
    issuer: str, *, access_token_algorithm: str, require_pushed_requests: bool = False
) -> dict[str, Any]:
    base = issuer.rstrip("/")
    metadata = OpenIDProviderMetadata(
        {
            "issuer": issuer,
            **{name: base + path for name, path in ENDPOINTS.items()},
            "scopes_supported": [*SCOPE_CLAIMS, OFFLINE_ACCESS],
            "response_types_supported": ["code"],
            "response_modes_supported": list(RESPONSE_MODES),
            "grant_types_supported": list(GRANT_TYPES),
            "subject_types_supported": list(SUBJECT_TYPES),
            "id_token_signing_alg_values_supported": list(ALGORITHMS),
            "userinfo_signing_alg_values_supported": list(ALGORITHMS),
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "token_endpoint_auth_signing_alg_values_supported": sorted(ASSERTION_ALGORITHMS),
            "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "revocation_endpoint_auth_signing_alg_values_supported": sorted(ASSERTION_ALGORITHMS),
            "introspection_endpoint_auth_methods_supported": [m for m in AUTH_METHODS if m != "none"],
            "introspection_endpoint_auth_signing_alg_values_supported": sorted(ASSERTION_ALGORITHMS),
            "code_challenge_methods_supported": ["S256"],
            # SUPPORTED_CLAIMS starts with openid's sub, listed once.
            "claims_supported": list(dict.fromkeys(["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "act", *SUPPORTED_CLAIMS])),
            "claims_parameter_supported": True,
            # OpenID Connect for Identity Assurance 1.0 section 7 (oidc.verified_claims).
            "verified_claims_supported": True,
            "trust_frameworks_supported": [TRUST_FRAMEWORK],
            "evidence_supported": [EVIDENCE],
            "claims_in_verified_claims_supported": [c for c in SUPPORTED_CLAIMS if c != "sub"],
            "request_parameter_supported": True,
            "request_object_signing_alg_values_supported": sorted(ASSERTION_ALGORITHMS),
            # A request_uri from /par only: we fetch none from a client (RFC 9126 section 5).
            "request_uri_parameter_supported": False,
            "require_pushed_authorization_requests": require_pushed_requests,
            "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
            "id_token_encryption_alg_values_supported": list(ENCRYPTION_ALGORITHMS),
            "id_token_encryption_enc_values_supported": list(CONTENT_ENCRYPTION),
            "userinfo_encryption_alg_values_supported": list(ENCRYPTION_ALGORITHMS),
            "userinfo_encryption_enc_values_supported": list(CONTENT_ENCRYPTION),
            "acr_values_supported": list(ACR_VALUES),
            "claim_types_supported": ["normal"],
            "ui_locales_supported": list(LANGUAGES),
            "claims_locales_supported": ["id"],
            "prompt_values_supported": ["none", "login", "consent"],
            "authorization_response_iss_parameter_supported": True,
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
            "access_token_signing_alg_values_supported": [access_token_algorithm],
        }
    )  # fmt: skip
    metadata.validate(metadata_classes=[IssuerParameterMetadata, LogoutMetadata])
    return dict(metadata)


@lru_cache(maxsize=8)
def provider_metadata_json(
    issuer: str, *, access_token_algorithm: str, require_pushed_requests: bool = False
) -> bytes:
    """The discovery document as sent: it depends on the issuer, the access tokens'
    algorithm and whether every client must push its requests alone, so each process builds
    and validates it once."""
    metadata = provider_metadata(
        issuer,
        access_token_algorithm=access_token_algorithm,
        require_pushed_requests=require_pushed_requests,
    )
    return json.dumps(metadata, separators=(",", ":")).encode()
