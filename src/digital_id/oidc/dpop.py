"""DPoP: proof of possession of a client's key, binding tokens to it (RFC 9449).

authlib has no server side for DPoP, so the checks are ours; joserfc verifies the proof's
signature. Every place that accepts a proof (the token endpoint, ``/par``, UserInfo) calls
``verify_proof``, so the rules are the same everywhere:

- one ``DPoP`` header holding a compact JWS whose header has ``typ: dpop+jwt``, an
  asymmetric ``alg`` we support, and the client's public key as ``jwk`` (``jwt_policy``
  allows an embedded key here and nowhere else);
- the signature verifies with that key;
- ``htm`` and ``htu`` are this request's method and URL (without query and fragment);
- ``iat`` within ``PROOF_WINDOW`` seconds before now (``ASSERTION_LEEWAY`` ahead);
- ``ath``, where an access token is presented, is its SHA-256;
- ``nonce``, where the server asks for one, is one of ours that has not run out;
- ``jti`` never seen before with that key (kept in the database until the proof could no
  longer pass the ``iat`` check, then purged by the housekeeping).

A token bound to the key carries its thumbprint (``cnf.jkt``, RFC 7638).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from authlib.oauth2.rfc6749 import OAuth2Error
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry
from sqlalchemy import bindparam
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from digital_id.db.engine import dialect_insert
from digital_id.db.purge import purge_expired
from digital_id.oidc.constants import ASSERTION_LEEWAY
from digital_id.oidc.errors import REALM
from digital_id.oidc.jwt_policy import (
    MAX_JWT_LENGTH,
    UnacceptableJsonError,
    UnacceptableJwtError,
    check_jwt,
    load_json,
)
from digital_id.oidc.models import SeenDPoPProof

# FAPI 2.0 asks for PS256, ES256 or EdDSA; RS256 is what RFC 9449's examples and many
# libraries still use. Never HMAC or none: the proof must show possession of a private key.
ALGORITHMS: Final = ("ES256", "PS256", "RS256")
PROOF_TYPE: Final = "dpop+jwt"
# How old a proof may be: a client makes it just before sending its request.
PROOF_WINDOW: Final = 60
# A server nonce is good for the window it was made in and the next one.
NONCE_WINDOW: Final = 300
# Base64url characters of a proof's header: room for a 4096-bit RSA key.
MAX_PROOF_HEADER: Final = 2048
# A key's RFC 7638 SHA-256 thumbprint, base64url: how ``dpop_jkt`` names one (section 10).
JWK_THUMBPRINT: Final = re.compile(r"[A-Za-z0-9_-]{43}")
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class InvalidDPoPProofError(OAuth2Error):  # type: ignore[misc]
    """RFC 9449 section 5: the proof failed a check (the description says which)."""

    error = "invalid_dpop_proof"
    status_code = 400


class UseDPoPNonceError(OAuth2Error):  # type: ignore[misc]
    """RFC 9449 section 8: the proof must carry the nonce this answer's ``DPoP-Nonce`` gives."""

    error = "use_dpop_nonce"
    status_code = 400

    def __init__(self, nonce: str) -> None:
        super().__init__(description="Authorization server requires nonce in DPoP proof")
        self.nonce = nonce

    def get_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = super().get_headers()
        return [*headers, ("DPoP-Nonce", self.nonce)]


class DPoPChallengeError(OAuth2Error):  # type: ignore[misc]
    """401 from UserInfo to a request that used the DPoP scheme, with a DPoP challenge (RFC
    9449 section 7.1) naming the error and the algorithms we accept. ``reason`` is for logs;
    the body names the error alone, as a bearer refusal does."""

    status_code = 401

    def __init__(self, error: str, reason: str) -> None:
        super().__init__(description=reason)
        self.error = error
        self.reason = reason

    def __str__(self) -> str:
        return self.reason

    def get_body(self) -> list[tuple[str, str]]:
        return [("error", self.error)]

    def get_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = super().get_headers()
        challenge = f'DPoP realm="{REALM}", error="{self.error}", algs="{" ".join(ALGORITHMS)}"'
        return [*headers, ("WWW-Authenticate", challenge)]


@dataclass(frozen=True)
class Proof:
    """A proof that passed every check: the key it was signed with, by thumbprint."""

    jkt: str
    jti: str
    issued: datetime


class DPoPNonces:
    """Server nonces (RFC 9449 section 8) that need no storage: the number of the current
    ``NONCE_WINDOW`` and a MAC of it, under a secret every worker of the fleet shares. One
    is good until the end of the window after the one it was made in."""

    def __init__(self, secret: bytes) -> None:
        # Its own key, derived from the server secret it is given, for this use alone.
        self._key = hmac.new(secret, b"digital-id dpop nonce", hashlib.sha256).digest()

    def current(self, now: datetime) -> str:
        return self._nonce(int(now.timestamp()) // NONCE_WINDOW)

    def accepts(self, nonce: object, now: datetime) -> bool:
        if not isinstance(nonce, str) or len(nonce) > 64:
            return False
        window = int(now.timestamp()) // NONCE_WINDOW
        # As bytes: compare_digest refuses a str with anything but ASCII, which a proof (signed
        # by whoever made it) may carry.
        presented = nonce.encode("utf-8")
        return any(
            hmac.compare_digest(presented, self._nonce(made).encode("ascii"))
            for made in (window, window - 1)
        )

    def _nonce(self, window: int) -> str:
        number = struct.pack(">Q", window)
        mac = hmac.new(self._key, number, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(number + mac).decode("ascii").rstrip("=")


def access_token_hash(token: str) -> str:
    """``ath`` (RFC 9449 section 4.2): the base64url SHA-256 of the access token."""
    digest = hashlib.sha256(token.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def verify_proof(
    session: Session,
    headers: list[str],
    *,
    method: str,
    url: str,
    now: datetime,
    nonces: DPoPNonces | None = None,
    access_token: str | None = None,
    remember: bool = True,
) -> Proof:
    """The proof in the request's ``DPoP`` header values (``headers``), checked as the module
    says, its ``jti`` remembered in ``session``'s transaction; else InvalidDPoPProofError, or
    UseDPoPNonceError when ``nonces`` is given and the proof has none of them. With
    ``remember`` false the caller ``spend``s it later (the token endpoint, once the client
    has authenticated: no one writes to the replay cache without credentials)."""
    if len(headers) != 1:
        raise InvalidDPoPProofError("exactly one DPoP header is required")
    proof = headers[0].strip()
    try:
        header = check_jwt(proof, algorithms=ALGORITHMS, require_kid=False, embedded_key=True)
    except UnacceptableJwtError as exc:
        raise InvalidDPoPProofError(str(exc)) from None
    if header.get("typ") != PROOF_TYPE:
        raise InvalidDPoPProofError(f"the proof's typ must be {PROOF_TYPE}")
    public_key = header.get("jwk")
    if not isinstance(public_key, dict) or public_key.get("kty") not in ("EC", "RSA"):
        raise InvalidDPoPProofError("the proof must carry its public EC or RSA key as jwk")
    if _PRIVATE_MEMBERS & public_key.keys():
        raise InvalidDPoPProofError("the proof's jwk must be a public key")
    try:
        key = JWKRegistry.import_key(public_key)
        verified = jws.deserialize_compact(proof, key, registry=_proof_registry(header["alg"]))
        claims = load_json(verified.payload, max_length=MAX_JWT_LENGTH)
    except (JoseError, UnacceptableJsonError, ValueError, TypeError):
        raise InvalidDPoPProofError("the proof's signature does not verify") from None
    if not isinstance(claims, dict):
        raise InvalidDPoPProofError("the proof's claims are not a JSON object")
    _check_claims(claims, method=method, url=url, now=now, access_token=access_token)
    if nonces is not None and not nonces.accepts(claims.get("nonce"), now):
        raise UseDPoPNonceError(nonces.current(now))
    issued = datetime.fromtimestamp(float(claims["iat"]), tz=now.tzinfo)
    checked = Proof(str(key.thumbprint()), claims["jti"], issued)
    if remember:
        spend(session, checked)
    return checked


def spend(session: Session, proof: Proof) -> None:
    """Remember the proof's ``jti`` in ``session``'s transaction; InvalidDPoPProofError if it
    was seen before (a replay)."""
    remembered = session.execute(
        _remember(session.get_bind().dialect.name),
        {
            "proof_jkt": proof.jkt,
            "proof_jti": proof.jti,
            "kept_until": proof.issued + timedelta(seconds=PROOF_WINDOW + 2 * ASSERTION_LEEWAY),
        },
    ).first()
    if remembered is None:
        raise InvalidDPoPProofError("the proof was used before (jti)")


def _check_claims(
    claims: dict[str, Any], *, method: str, url: str, now: datetime, access_token: str | None
) -> None:
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= 256:
        raise InvalidDPoPProofError("the proof needs a jti of at most 256 characters")
    if claims.get("htm") != method:
        raise InvalidDPoPProofError("the proof's htm is not this request's method")
    htu = claims.get("htu")
    if not isinstance(htu, str) or _normalised(htu) != _normalised(url):
        raise InvalidDPoPProofError("the proof's htu is not this endpoint's URL")
    iat = claims.get("iat")
    moment = now.timestamp()
    if (
        not isinstance(iat, int | float)
        or isinstance(iat, bool)
        or not moment - PROOF_WINDOW - ASSERTION_LEEWAY <= iat <= moment + ASSERTION_LEEWAY
    ):
        raise InvalidDPoPProofError(f"the proof's iat must be within {PROOF_WINDOW} seconds of now")
    if access_token is not None and not (
        isinstance(claims.get("ath"), str)
        and hmac.compare_digest(
            claims["ath"].encode("utf-8"), access_token_hash(access_token).encode("ascii")
        )
    ):
        raise InvalidDPoPProofError("the proof's ath is not the hash of the access token")


def _normalised(url: str) -> str:
    """The URL compared as RFC 9449 section 4.3 asks (syntax-based normalisation, RFC 3986
    section 6.2.2): scheme and host in lower case, a default port dropped, no query or
    fragment."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


@cache
def _proof_registry(alg: str) -> jws.JWSRegistry:
    """joserfc's checks for a proof signed with ``alg``: its header, which carries the whole
    public key, may be longer than the 512 bytes joserfc allows by default (an RSA key's is);
    ``check_jwt`` has bounded the whole proof already."""
    registry = jws.JWSRegistry(algorithms=[alg])
    registry.max_header_length = MAX_PROOF_HEADER
    return registry


@cache
def _remember(dialect: str) -> ReturningInsert[tuple[int]]:
    """One statement, built once per process: the proof's row, unless it is there already."""
    insert = dialect_insert(dialect)
    return (
        insert(SeenDPoPProof)
        .values(
            jkt=bindparam("proof_jkt"),
            jti=bindparam("proof_jti"),
            expires_at=bindparam("kept_until"),
        )
        .on_conflict_do_nothing(index_elements=["jkt", "jti"])
        .returning(SeenDPoPProof.id)
    )


def purge_seen_proofs(session: Session, now: datetime) -> int:
    """Delete up to a batch of remembered proof ids too old to pass the ``iat`` check (the
    housekeeping job runs it); how many went."""
    return purge_expired(session, SeenDPoPProof, SeenDPoPProof.expires_at < now)
