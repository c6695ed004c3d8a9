"""The agency's own signing key, for ``private_key_jwt`` client authentication.

The agency keeps the private JWK; Digital ID gets only the public half, registered as the
client's ``jwks`` (RFC 7591 section 2). Every key carries a ``kid`` (its RFC 7638 thumbprint
when generated here), so the provider can pick the right key when an agency registers a new
one next to the old one while rotating.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

# RS256 is the algorithm every OpenID Connect party supports (OpenID Connect Core 1.0,
# section 15.1); ES256 gives shorter keys and signatures.
ALGORITHMS: Final = ("RS256", "ES256")
RSA_KEY_SIZE: Final = 2048
EC_CURVE: Final = "P-256"

SigningKey = RSAKey | ECKey


@dataclass(frozen=True)
class ClientKey:
    """A checked private signing key: the joserfc key, its algorithm and its ``kid``."""

    key: SigningKey
    alg: str
    kid: str


def generate_client_key(alg: str = "RS256") -> dict[str, Any]:
    """A new private JWK for ``alg``, with ``use``, ``alg`` and a thumbprint ``kid``."""
    key: SigningKey
    if alg == "RS256":
        key = RSAKey.generate_key(
            RSA_KEY_SIZE, parameters={"alg": alg, "use": "sig"}, auto_kid=True
        )
    elif alg == "ES256":
        key = ECKey.generate_key(EC_CURVE, parameters={"alg": alg, "use": "sig"}, auto_kid=True)
    else:
        raise ValueError(f"alg {alg!r} is not one of {', '.join(ALGORITHMS)}")
    return dict(key.as_dict(private=True))


def load_signing_key(private_jwk: Mapping[str, Any]) -> ClientKey:
    """The key and the algorithm it signs with, or ValueError saying what is wrong with it.

    The algorithm is the JWK's ``alg`` member when present, else RS256 for RSA keys and ES256
    for P-256 keys (RFC 7518 section 3.1).
    """
    kty = private_jwk.get("kty")
    try:
        key: SigningKey
        if kty == "RSA":
            key = RSAKey.import_key(dict(private_jwk))
            default_alg = "RS256"
        elif kty == "EC":
            key = ECKey.import_key(dict(private_jwk))
            default_alg = "ES256"
        else:
            raise ValueError(f"kty {kty!r} is not supported; use an RSA or EC (P-256) key")
    except (JoseError, TypeError, KeyError) as exc:
        raise ValueError(f"not a usable JWK ({exc.__class__.__name__}: {exc})") from None

    if not key.kid:
        raise ValueError("the JWK has no kid; Digital ID selects the client's key by kid")
    if not key.is_private:
        raise ValueError("the JWK holds only a public key; the agency signs with the private key")
    alg = str(private_jwk.get("alg", default_alg))
    if alg not in ALGORITHMS or alg != default_alg:
        raise ValueError(f"alg {alg!r} does not fit a {kty} key (use {default_alg})")
    if isinstance(key, ECKey) and key.curve_name != EC_CURVE:
        raise ValueError(f"ES256 needs a {EC_CURVE} key, not {key.curve_name}")
    return ClientKey(key=key, alg=alg, kid=key.kid)


def public_jwks(private_jwk: Mapping[str, Any]) -> dict[str, Any]:
    """The JWK Set to register as the client's ``jwks``: public members only."""
    return dict(KeySet([load_signing_key(private_jwk).key]).as_dict(private=False))
