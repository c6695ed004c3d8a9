"""Signed request objects by value (RFC 9101): verified against the client's keys, their
values override the query, ``request_uri`` is refused."""

from __future__ import annotations

import base64
import json
import secrets
import time
from urllib.parse import parse_qsl, urlencode

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from tests.web.conftest import ISSUER, PIN, hidden, pkce_pair
from tests.web.test_authorization_endpoint import redirected
from tests.web.test_rate_limits import browser_at


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
        "jti": secrets.token_urlsafe(12),
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
            lambda agency: request_object(agency, exp=int(time.time()) + 2 * 3600),
            id="exp-more-than-an-hour-ahead",
        ),
        pytest.param(lambda agency: request_object(agency, iat=None), id="no-iat"),
        pytest.param(lambda agency: request_object(agency, jti=None), id="no-jti"),
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


def test_a_request_object_starts_one_flow_only(provider):
    """Its jti is remembered until it expires: the same object presented again, from any
    browser, is a replay, even when the first flow never finished."""
    agency = provider.agency("private_key_jwt")
    signed = request_object(agency)
    page, _ = authorize_with(provider, agency, signed)
    assert 'name="pin"' in page.text

    other_browser = browser_at(provider, "203.0.113.30")
    replay, _ = authorize_with(other_browser, agency, signed)
    assert_refused(replay)


def test_an_object_that_did_not_start_a_flow_cannot_be_carried_into_one(provider):
    """The login page carries the object on; one posted straight to it, never presented at
    the authorization endpoint, is refused there."""
    citizen = provider.citizen()
    agency = provider.agency("private_key_jwt")
    page, _ = authorize_with(provider, agency, request_object(agency))
    carried = hidden(page.text, "authorization_request")
    fresh = request_object(agency)
    swapped = urlencode(
        [(name, fresh if name == "request" else value) for name, value in parse_qsl(carried)]
    )
    response = provider.http.post(
        "/authorize/login",
        data={
            "csrf_token": hidden(page.text, "csrf_token"),
            "authorization_request": swapped,
            "nik": citizen["nik"],
            "pin": PIN,
        },
        follow_redirects=False,
    )
    assert 'name="decision"' not in response.text
    assert_refused(response)


def test_a_registered_request_object_signing_alg_is_the_only_one_accepted(provider):
    agency = provider.agency("private_key_jwt", request_object_signing_alg="PS256")
    response, _ = authorize_with(provider, agency, request_object(agency))  # RS256
    assert_refused(response)


def assert_refused(response) -> None:
    """Refused, at the agency's redirect URI or (it could not be verified) on the error page."""
    assert 'name="pin"' not in response.text
    if response.status_code in (302, 303):
        assert redirected(response)["error"] in ("invalid_request_object", "invalid_request")
    else:
        assert response.status_code == 400
