"""Signed request objects by value (RFC 9101): verified against the client's keys, their
values override the query, ``request_uri`` is refused."""

from __future__ import annotations

import base64
import json
import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from tests.web.conftest import ISSUER, pkce_pair
from tests.web.test_authorization_endpoint import redirected


def request_object(agency, key=None, header=None, **claims):
    now = int(time.time())
    body = {
        "iss": agency.client_id,
        "aud": ISSUER,
        "client_id": agency.client_id,
        "response_type": "code",
        "redirect_uri": agency.redirect_uri,
        "scope": "openid profile",
        "state": "from-the-object",
        "nonce": f"n-{now}-{time.perf_counter_ns()}",
        "iat": now,
        "exp": now + 300,
        **claims,
    }
    body = {name: value for name, value in body.items() if value is not None}
    key = key or agency.private_key
    return jwt.encode(header or {"alg": "RS256", "kid": key.kid}, body, key)


def authorize_with(provider, agency, request, **query):
    verifier, challenge = pkce_pair()
    response = provider.authorize(
        agency,
        request=request,
        code_challenge=challenge,
        code_challenge_method="S256",
        state="from-the-query",
        **query,
    )
    return response, verifier


def test_discovery_says_request_objects_by_value_only(provider):
    metadata = provider.http.get("/.well-known/openid-configuration").json()
    assert metadata["request_parameter_supported"] is True
    assert metadata["request_uri_parameter_supported"] is False
    assert "none" not in metadata["request_object_signing_alg_values_supported"]


def test_a_signed_request_object_is_used_and_its_values_win(provider):
    citizen = provider.citizen()
    agency = provider.agency("private_key_jwt")
    page, verifier = authorize_with(provider, agency, request_object(agency, scope="openid nik"))
    consent = provider.log_in(page, citizen["nik"])
    assert "NIK (Nomor Induk Kependudukan)" in consent.text  # the object's scope
    answer = redirected(provider.decide(consent))
    assert answer["state"] == "from-the-object"
    tokens = provider.token(agency, answer["code"], verifier).json()
    assert tokens["scope"] == "openid nik"


def _unsigned(agency) -> str:
    def part(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    now = int(time.time())
    claims = {"iss": agency.client_id, "aud": ISSUER, "client_id": agency.client_id,
              "response_type": "code", "scope": "openid", "exp": now + 300}  # fmt: skip
    return part({"alg": "none"}) + "." + part(claims) + "."


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_unsigned, id="alg-none"),
        pytest.param(
            lambda agency: request_object(
                agency,
                key=RSAKey.generate_key(2048, parameters={"alg": "RS256"}, auto_kid=True),
            ),
            id="signed-by-another-key",
        ),
        pytest.param(
            lambda agency: request_object(
                agency, key=OctKey.import_key(b"k" * 32), header={"alg": "HS256"}
            ),
            id="hmac",
        ),
        pytest.param(
            lambda agency: request_object(agency, aud="https://elsewhere.example"), id="wrong-aud"
        ),
        pytest.param(
            lambda agency: request_object(agency, exp=int(time.time()) - 60), id="expired"
        ),
        pytest.param(lambda agency: request_object(agency, exp=None), id="no-exp"),
        pytest.param(
            lambda agency: request_object(agency, client_id="dgid_other"), id="other-client"
        ),
        pytest.param(lambda agency: "not.a.jwt", id="garbage"),
    ],
)
def test_a_bad_request_object_is_refused_and_never_used(provider, make):
    agency = provider.agency("private_key_jwt")
    response, _ = authorize_with(provider, agency, make(agency))
    if response.status_code in (302, 303):
        answer = redirected(response)
        assert answer["error"] in ("invalid_request_object", "invalid_request")
    else:
        assert response.status_code == 400
        assert 'name="pin"' not in response.text


def test_request_uri_is_not_supported(provider):
    agency = provider.agency("private_key_jwt")
    _verifier, challenge = pkce_pair()
    response = provider.authorize(
        agency,
        request_uri="https://pajak.example.go.id/request.jwt",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    if response.status_code in (302, 303):
        assert redirected(response)["error"] == "request_uri_not_supported"
    else:
        assert response.status_code == 400
        assert "request_uri" in response.text


def test_a_client_without_keys_cannot_use_request_objects(provider):
    agency = provider.agency()  # client_secret_basic: no public keys registered
    signer = RSAKey.generate_key(2048, parameters={"alg": "RS256"}, auto_kid=True)
    response, _ = authorize_with(provider, agency, request_object(agency, key=signer))
    assert 'name="pin"' not in response.text
    assert KeySet([signer])
