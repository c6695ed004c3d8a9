"""The protocol's constants: response modes and prompts, client authentication methods,
lifetimes and leeways of presented JWTs, the access tokens' algorithms and ``jti`` prefix."""

from __future__ import annotations

from typing import Final

from digital_id.oidc.claims import OFFLINE_ACCESS, SCOPE_CLAIMS

RESPONSE_MODES = ("query", "form_post")
PROMPTS = frozenset({"none", "login", "consent", "select_account"})
# Client assertions may not be valid for longer than this (a replay window we must remember).
MAX_ASSERTION_LIFETIME = 300
# A request object may be prepared ahead (a link in a letter), but not for longer than this.
MAX_REQUEST_OBJECT_LIFETIME = 3600
ASSERTION_LEEWAY = 10
# FAPI 2.0 Security Profile section 5.3.2.1: a code lives at most a minute.
FAPI2_CODE_SECONDS = 60
# Scopes that release something about a citizen: never for a client acting as itself.
CITIZEN_SCOPES: Final = frozenset({*SCOPE_CLAIMS, OFFLINE_ACCESS})
CLIENT_AUTH_METHODS: Final = (
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "none",
)
# Access tokens are signed with the setting's choice of these; both verify, so tokens
# signed before the setting changed stay valid while their key is published.
ACCESS_TOKEN_ALGORITHMS: Final = ["ES256", "RS256"]
# The jti prefix of an access token that no citizen stands behind (client credentials).
CLIENT_TOKEN_PREFIX = "cc"  # noqa: S105 (a prefix, not a secret)
