"""Every JWT the provider accepts, attacked the known ways (RFC 8725, the JWT BCP): client
assertions at the token endpoint, request objects and ``id_token_hint`` at the authorization
endpoint, ``id_token_hint`` at logout, and our own access tokens at UserInfo and
introspection. Each forgery is refused with that place's error and changes nothing.

Tokens are put together by hand (base64url, and the HMAC or RSA signature computed here),
because a JOSE library will not build most of them: it refuses ``alg=none``, an HMAC keyed
with an RSA public key, or a header carrying its own key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digital_id.oidc.models import SeenClientAssertion
from digital_id.sessions.models import BrowserSession
from tests.web.conftest import ISSUER, Agency, Provider, pkce_pair, query_of

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def part(value: dict[str, Any]) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def rs256(key: RSAKey, header: dict[str, Any], claims: dict[str, Any]) -> str:
    signing_input = f"{part(header)}.{part(claims)}"
    signature = key.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def hs256(secret: bytes, header: dict[str, Any], claims: dict[str, Any]) -> str:
    signing_input = f"{part(header)}.{part(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def public_pem(key: RSAKey) -> bytes:
    return key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def attacker_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"alg": "RS256"}, auto_kid=True)


@dataclass
class Target:
    """One place that accepts a JWT: the key it trusts, what a good token there holds, how to
    present one, and whether the answer was a refusal that changed nothing."""

    key: RSAKey
    header: dict[str, Any]
    claims: Callable[[], dict[str, Any]]
    present: Callable[[str], httpx.Response]
    refused: Callable[[httpx.Response], None]
    accepted: Callable[[httpx.Response], None]
    # A token over the parameter's size limit: refused as a bad request before it is read.
    too_long: Callable[[httpx.Response], None] | None = None

    def good(self, **claims: Any) -> str:
        body = {**self.claims(), **claims}
        return rs256(self.key, self.header, {k: v for k, v in body.items() if v is not None})


def _alg_none(t: Target) -> str:
    return f"{part({**t.header, 'alg': 'none'})}.{part(t.claims())}."


def _alg_none_with_signature(t: Target) -> str:
    _header, payload, signature = t.good().split(".")
    return f"{part({**t.header, 'alg': 'none'})}.{payload}.{signature}"


def _hs256_with_public_key(t: Target) -> str:
    return hs256(public_pem(t.key), {**t.header, "alg": "HS256"}, t.claims())


def _hs256_with_public_jwk(t: Target) -> str:
    secret = json.dumps(t.key.as_dict(private=False)).encode()
    return hs256(secret, {**t.header, "alg": "HS256"}, t.claims())


def _wrong_kid(t: Target) -> str:
    return rs256(t.key, {**t.header, "kid": "not-a-key-of-ours"}, t.claims())


def _missing_kid(t: Target) -> str:
    return rs256(t.key, {k: v for k, v in t.header.items() if k != "kid"}, t.claims())


def _another_key_same_kid(t: Target) -> str:
    return rs256(attacker_key(), t.header, t.claims())


def _embedded(name: str, trusted_signer: bool) -> Callable[[Target], str]:
    def make(t: Target) -> str:
        signer = t.key if trusted_signer else attacker_key()
        values = {
            "jwk": signer.as_dict(private=False),
            "jku": "https://attacker.example/jwks.json",
            "x5u": "https://attacker.example/cert.pem",
            "x5c": ["MIIBszCCAVmgAwIBAgIUZm9yZ2Vk"],
            "crit": ["exp"],
        }
        kid = t.header["kid"] if trusted_signer else signer.kid
        return rs256(signer, {**t.header, "kid": kid, name: values[name]}, t.claims())

    return make


def _expired(t: Target) -> str:
    now = int(time.time())
    return t.good(iat=now - 900, exp=now - 600)


def _not_yet_valid(t: Target) -> str:
    return t.good(nbf=int(time.time()) + 120)


def _wrong_aud(t: Target) -> str:
    return t.good(aud="https://elsewhere.example")


def _wrong_iss(t: Target) -> str:
    return t.good(iss="https://elsewhere.example")


def _oversized(t: Target) -> str:
    return t.good(padding="x" * 20_000)


def _not_a_jwt(t: Target) -> str:
    return "eyJhbGciOiJSUzI1NiJ9.not-base64!.sig"


ATTACKS: dict[str, Callable[[Target], str]] = {
    "alg-none": _alg_none,
    "alg-none-keeping-the-signature": _alg_none_with_signature,
    "hs256-keyed-with-the-public-key-pem": _hs256_with_public_key,
    "hs256-keyed-with-the-public-jwk": _hs256_with_public_jwk,
    "wrong-kid": _wrong_kid,
    "missing-kid": _missing_kid,
    "another-key-same-kid": _another_key_same_kid,
    "embedded-jwk": _embedded("jwk", trusted_signer=False),
    "embedded-jwk-trusted-signer": _embedded("jwk", trusted_signer=True),
    "jku": _embedded("jku", trusted_signer=False),
    "jku-trusted-signer": _embedded("jku", trusted_signer=True),
    "x5u": _embedded("x5u", trusted_signer=False),
    "x5c-trusted-signer": _embedded("x5c", trusted_signer=True),
    "crit-trusted-signer": _embedded("crit", trusted_signer=True),
    "expired": _expired,
    "not-yet-valid": _not_yet_valid,
    "wrong-aud": _wrong_aud,
    "wrong-iss": _wrong_iss,
    "oversized": _oversized,
    "not-a-jwt": _not_a_jwt,
}
# An expired hint still says who the agency believes is logged in (OpenID Connect Core
# 3.1.2.1; RP-Initiated Logout 1.0 section 2 says so for logout), and an agency may revoke a
# token of its own that has expired (RFC 7009 section 2.1): accepted, on purpose.
EXPIRY_NOT_CHECKED = {
    "id_token_hint-at-authorize",
    "id_token_hint-at-logout",
    "access-token-at-revocation",
}


# --- the places ------------------------------------------------------------------------------


def _count(provider: Provider, model: Any) -> int:
    with Session(provider.engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _agency_with_two_keys(provider: Provider) -> tuple[Agency, RSAKey]:
    """An agency part-way through a key rotation: with two keys, a JWT must name its key
    (OpenID Connect Core 10.1); with one, it may leave ``kid`` out."""
    signing, other = attacker_key(), attacker_key()
    jwks = KeySet([signing, other]).as_dict(private=False)
    return provider.agency("private_key_jwt", jwks=jwks), signing


def client_assertion(provider: Provider) -> Target:
    agency, key = _agency_with_two_keys(provider)

    def claims() -> dict[str, Any]:
        now = int(time.time())
        return {"iss": agency.client_id, "sub": agency.client_id, "aud": ISSUER,
                "iat": now, "exp": now + 60, "jti": secrets.token_urlsafe(16)}  # fmt: skip

    def present(token: str) -> httpx.Response:
        form = {"grant_type": "authorization_code", "code": "no-such-code",
                "redirect_uri": agency.redirect_uri, "code_verifier": "v" * 43,
                "client_assertion_type": ASSERTION_TYPE, "client_assertion": token}  # fmt: skip
        return provider.http.post("/token", data=form)

    def refused(response: httpx.Response) -> None:
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_client"
        assert response.headers["cache-control"] == "no-store"
        assert _count(provider, SeenClientAssertion) == 0  # a refused assertion's jti is not kept

    def accepted(response: httpx.Response) -> None:
        # Authenticated: the (made-up) code is what fails now.
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_grant"

    header = {"alg": "RS256", "kid": key.kid}
    return Target(key, header, claims, present, refused, accepted, _bad_oauth_request)


def _bad_oauth_request(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert "longer than" in response.json()["error_description"]


def request_object(provider: Provider) -> Target:
    agency, key = _agency_with_two_keys(provider)

    def claims() -> dict[str, Any]:
        now = int(time.time())
        return {"iss": agency.client_id, "aud": ISSUER, "client_id": agency.client_id,
                "response_type": "code", "redirect_uri": agency.redirect_uri,
                "scope": "openid profile", "state": "from-the-object",
                "nonce": secrets.token_urlsafe(8), "iat": now, "exp": now + 300,
                "jti": secrets.token_urlsafe(12)}  # fmt: skip

    def present(token: str) -> httpx.Response:
        _verifier, challenge = pkce_pair()
        return provider.authorize(
            agency, request=token, code_challenge=challenge, code_challenge_method="S256"
        )

    def refused(response: httpx.Response) -> None:
        assert 'name="pin"' not in response.text
        if response.status_code in (302, 303):
            answer = query_of(response.headers["location"])
            assert answer["error"] == "invalid_request_object", answer
            assert "code" not in answer
        else:
            assert response.status_code == 400, response.text[:500]

    def accepted(response: httpx.Response) -> None:
        assert response.status_code == 200
        assert 'name="pin"' in response.text

    header = {"alg": "RS256", "kid": key.kid}
    return Target(key, header, claims, present, refused, accepted, _bad_request_redirect)


def _bad_request_redirect(response: httpx.Response) -> None:
    """To the agency (its client and redirect URI check out), without a code."""
    assert response.status_code in (302, 303), response.text[:500]
    answer = query_of(response.headers["location"])
    assert answer["error"] == "invalid_request"
    assert "longer than" in answer["error_description"]
    assert "code" not in answer


def _logged_in(provider: Provider) -> tuple[Agency, RSAKey, dict[str, Any]]:
    """A citizen logged in to an agency in this browser; our key and the ID token's claims."""
    citizen = provider.citizen()
    agency = provider.agency()
    tokens = provider.tokens_for(agency, citizen["nik"])
    ours = provider.key_store.snapshot().signing_key("RS256")
    return agency, ours, provider.verify(tokens["id_token"])


def id_token_hint_at_authorize(provider: Provider) -> Target:
    agency, ours, id_token = _logged_in(provider)

    def claims() -> dict[str, Any]:
        now = int(time.time())
        return {**id_token, "iat": now, "exp": now + 300}

    def present(token: str) -> httpx.Response:
        _verifier, challenge = pkce_pair()
        return provider.authorize(
            agency,
            prompt="none",
            id_token_hint=token,
            code_challenge=challenge,
            code_challenge_method="S256",
        )

    def refused(response: httpx.Response) -> None:
        if response.status_code in (302, 303):
            answer = query_of(response.headers["location"])
            assert answer.get("error") in ("invalid_request", "login_required"), answer
            assert "code" not in answer
        else:
            assert response.status_code == 400, response.text[:500]

    def accepted(response: httpx.Response) -> None:
        assert response.status_code in (302, 303), response.text[:500]
        assert "code" in query_of(response.headers["location"])

    header = {"alg": "RS256", "kid": ours.kid}
    return Target(ours, header, claims, present, refused, accepted, _bad_request_redirect)


def id_token_hint_at_logout(provider: Provider) -> Target:
    agency, ours, id_token = _logged_in(provider)

    def claims() -> dict[str, Any]:
        now = int(time.time())
        return {**id_token, "iat": now, "exp": now + 300}

    def present(token: str) -> httpx.Response:
        return provider.http.get(
            "/logout",
            params={"id_token_hint": token, "client_id": agency.client_id},
            follow_redirects=False,
        )

    def live_sessions() -> int:
        with Session(provider.engine) as session:
            return len(
                session.scalars(
                    select(BrowserSession).where(BrowserSession.ended_at.is_(None))
                ).all()
            )

    def refused(response: httpx.Response) -> None:
        # Never trusted: the citizen is asked to confirm, and stays logged in meanwhile.
        assert response.status_code in (200, 400), response.text[:500]
        assert "location" not in response.headers
        assert live_sessions() == 1

    def accepted(response: httpx.Response) -> None:
        assert response.status_code == 200
        assert live_sessions() == 0

    def too_long(response: httpx.Response) -> None:
        assert response.status_code == 400, response.text[:500]
        refused(response)

    header = {"alg": "RS256", "kid": ours.kid}
    return Target(ours, header, claims, present, refused, accepted, too_long)


def _access_token_target(provider: Provider, endpoint: str) -> Target:
    citizen = provider.citizen()
    agency = provider.agency()
    tokens = provider.tokens_for(agency, citizen["nik"])
    ours = provider.key_store.snapshot().signing_key("RS256")
    genuine = provider.verify(tokens["access_token"])

    def claims() -> dict[str, Any]:
        now = int(time.time())
        return {**genuine, "iat": now, "exp": now + 120}

    def present(token: str) -> httpx.Response:
        if endpoint == "userinfo":
            return provider.userinfo(token)
        return provider.http.post(f"/{endpoint}", **agency.authenticated({"token": token}))

    def refused(response: httpx.Response) -> None:
        if endpoint == "userinfo":
            assert response.status_code == 401, response.text
            assert response.json()["error"] == "invalid_token"
            assert 'error="invalid_token"' in response.headers["www-authenticate"]
        elif endpoint == "introspect":
            assert response.status_code == 200, response.text
            assert response.json() == {"active": False}
        else:  # RFC 7009: 200 whatever the token; what matters is that nothing was revoked
            assert response.status_code == 200, response.text
            assert provider.userinfo(tokens["access_token"]).status_code == 200

    def accepted(response: httpx.Response) -> None:
        assert response.status_code == 200, response.text
        if endpoint == "introspect":
            assert response.json()["active"] is True
        if endpoint == "revoke":
            assert provider.userinfo(tokens["access_token"]).status_code == 401

    header = {"alg": "RS256", "kid": ours.kid, "typ": "at+jwt"}
    # In the Authorization header at UserInfo, a long token is just not a token of ours.
    too_long = refused if endpoint == "userinfo" else _bad_oauth_request
    return Target(ours, header, claims, present, refused, accepted, too_long)


PLACES: dict[str, Callable[[Provider], Target]] = {
    "client-assertion": client_assertion,
    "request-object": request_object,
    "id_token_hint-at-authorize": id_token_hint_at_authorize,
    "id_token_hint-at-logout": id_token_hint_at_logout,
    "access-token-at-userinfo": lambda p: _access_token_target(p, "userinfo"),
    "access-token-at-introspection": lambda p: _access_token_target(p, "introspect"),
    "access-token-at-revocation": lambda p: _access_token_target(p, "revoke"),
}


@pytest.mark.parametrize("place", PLACES)
def test_a_well_formed_token_is_accepted_at(provider, place):
    """The attacks below start from this token; it must work, or their refusals prove nothing."""
    target = PLACES[place](provider)
    target.accepted(target.present(target.good()))


@pytest.mark.parametrize("place", PLACES)
def test_every_forged_or_stale_token_is_refused_at(provider, place):
    """One arrangement per place (a login costs time), every attack against it; a refusal
    must leave the place as it was, so the next attack meets the same state."""
    target = PLACES[place](provider)
    failures = []
    for name, make in ATTACKS.items():
        if name == "expired" and place in EXPIRY_NOT_CHECKED:
            continue
        response = target.present(make(target))
        check = target.too_long if name == "oversized" and target.too_long else target.refused
        try:
            check(response)
        except AssertionError as exc:
            failures.append(f"{name}: {exc}".splitlines()[0][:300])
    assert not failures, "accepted or mishandled:\n" + "\n".join(failures)


@pytest.mark.parametrize("place", sorted(EXPIRY_NOT_CHECKED))
def test_an_expired_but_genuine_token_is_still_accepted_at(provider, place):
    target = PLACES[place](provider)
    target.accepted(target.present(_expired(target)))


@pytest.mark.parametrize("place", ["client-assertion", "request-object"])
def test_an_agency_with_a_single_key_may_leave_out_kid_at(provider, place):
    target = PLACES[place](provider)
    single = provider.agency("private_key_jwt")
    assert isinstance(single.private_key, RSAKey)
    if place == "client-assertion":
        claims = {**target.claims(), "iss": single.client_id, "sub": single.client_id}
        form = {"grant_type": "authorization_code", "code": "no-such-code",
                "redirect_uri": single.redirect_uri, "code_verifier": "v" * 43,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": rs256(single.private_key, {"alg": "RS256"}, claims)}  # fmt: skip
        answer = provider.http.post("/token", data=form)
        assert answer.json()["error"] == "invalid_grant"  # authenticated; the code is made up
    else:
        claims = {**target.claims(), "iss": single.client_id, "client_id": single.client_id}
        _verifier, challenge = pkce_pair()
        page = provider.authorize(
            single,
            request=rs256(single.private_key, {"alg": "RS256"}, claims),
            code_challenge=challenge,
            code_challenge_method="S256",
        )
        assert 'name="pin"' in page.text


def test_a_client_assertion_cannot_be_replayed(provider):
    target = client_assertion(provider)
    assertion = target.good()
    target.accepted(target.present(assertion))
    again = target.present(assertion)
    assert again.status_code == 401
    assert again.json()["error"] == "invalid_client"
    assert _count(provider, SeenClientAssertion) == 1
