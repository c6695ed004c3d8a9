"""Encrypted ID tokens and UserInfo answers (OpenID Connect Core 10.2, Registration 1.0
section 2), for agencies that registered an encryption algorithm: Singpass encrypts its ID
token, so a token that leaks from the agency's logs or the citizen's browser reveals nothing.

The token is signed first and the signed JWT is then encrypted to the agency's public
encryption key (a Nested JWT, ``cty: JWT``); a UserInfo answer registered for encryption
without signing is the claims JSON, encrypted. joserfc does the JWE; which key is ours to
choose: one of the agency's ``jwks`` or ``jwks_uri`` keys meant for encryption and of the
algorithm's type (``clients.jwks``, which follows the agency's key rotation as it does for
signature keys).
"""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from authlib.oauth2.rfc6749 import InvalidClientError
from joserfc import jwe

from digital_id.clients.jwks import ClientKeyResolver, ClientKeysUnavailableError
from digital_id.oidc.agency_client import AgencyClient

Purpose = Literal["id_token", "userinfo"]


def encrypted_for(
    client: AgencyClient,
    payload: str | bytes,
    *,
    purpose: Purpose,
    client_keys: ClientKeyResolver,
    nested: bool,
) -> str | None:
    """``payload`` (a signed JWT when ``nested``, else the claims JSON) encrypted as the
    client registered for ``purpose``; None when it registered no encryption. A client whose
    encryption key cannot be found gets nothing (``invalid_client``) rather than plaintext."""
    metadata = client.client_metadata
    alg = metadata.get(f"{purpose}_encrypted_response_alg")
    if not alg:
        return None
    enc = metadata[f"{purpose}_encrypted_response_enc"]
    try:
        key = client_keys.encryption_key(client.client_id, metadata, alg)
    except ClientKeysUnavailableError as exc:
        raise InvalidClientError(description=f"no encryption key for {alg}: {exc}") from None
    header: dict[str, Any] = {"alg": alg, "enc": enc}
    if nested:
        header["cty"] = "JWT"
    if key.kid:
        header["kid"] = key.kid
    return jwe.encrypt_compact(header, payload, key, registry=_registry(alg, enc))


@cache
def _registry(alg: str, enc: str) -> jwe.JWERegistry:
    return jwe.JWERegistry(algorithms=[alg, enc])
