"""The demo agency's key helpers, and its start page without a provider."""

from __future__ import annotations

import httpx2
import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet

from examples.agency_app.app import AgencyConfig, create_app
from examples.agency_app.keys import generate_client_key, load_signing_key, public_jwks

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_generated_key_is_private_with_kid_and_alg(alg):
    jwk = generate_client_key(alg)

    assert jwk["kid"]
    assert jwk["alg"] == alg
    assert jwk["use"] == "sig"
    assert "d" in jwk


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_public_jwks_has_only_public_members(alg):
    jwk = generate_client_key(alg)

    jwks = public_jwks(jwk)

    assert [key["kid"] for key in jwks["keys"]] == [jwk["kid"]]
    assert not PRIVATE_MEMBERS & set(jwks["keys"][0])


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_jwt_signed_with_private_key_verifies_with_public_set(alg):
    jwk = generate_client_key(alg)
    key = load_signing_key(jwk)
    signed = jwt.encode({"alg": alg, "kid": key.kid}, {"iss": "agency"}, key.key)

    public = KeySet.import_key_set(public_jwks(jwk))  # type: ignore[arg-type]
    token = jwt.decode(signed, public, algorithms=[alg])

    assert token.claims == {"iss": "agency"}


def test_unknown_algorithm_is_refused():
    with pytest.raises(ValueError, match="HS256"):
        generate_client_key("HS256")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda jwk: jwk.pop("kid"), "no kid"),
        (lambda jwk: [jwk.pop(m) for m in ("d", "p", "q", "dp", "dq", "qi")], "only a public key"),
        (lambda jwk: jwk.update(alg="ES256"), "does not fit"),
        (lambda jwk: jwk.update(kty="oct"), "not supported"),
    ],
)
def test_unusable_keys_are_refused_with_the_reason(change, message):
    jwk = generate_client_key("RS256")
    change(jwk)

    with pytest.raises(ValueError, match=message):
        load_signing_key(jwk)


def _no_network(request: httpx2.Request) -> httpx2.Response:
    raise AssertionError(f"unexpected request to {request.url}")


def test_start_page_shows_the_agency_and_a_login_link_without_contacting_the_provider():
    config = AgencyConfig(
        name="Kantor Pajak & <Retribusi> (demo)",
        issuer="http://127.0.0.1:8000",
        client_id="agency-1",
        private_jwk=generate_client_key("ES256"),
        base_url="http://127.0.0.1:8001",
        scope="openid profile nik address",
        session_secret="s" * 32,
    )
    app = create_app(config, transport=httpx2.MockTransport(_no_network))

    with TestClient(app) as client:
        response = client.get("/")

    assert response.status_code == 200
    assert "Kantor Pajak &amp; &lt;Retribusi&gt; (demo)" in response.text
    assert 'href="/login"' in response.text
    assert "Log in with Digital ID" in response.text


def test_config_keeps_secrets_out_of_repr():
    jwk = generate_client_key("ES256")
    config = AgencyConfig(
        name="Agency",
        issuer="http://127.0.0.1:8000",
        client_id="agency-1",
        private_jwk=jwk,
        base_url="http://127.0.0.1:8001",
        scope="openid",
        session_secret="session-secret-value",
    )

    assert jwk["d"] not in repr(config)
    assert "session-secret-value" not in repr(config)
    assert config.redirect_uri == "http://127.0.0.1:8001/callback"
    assert config.discovery_url == "http://127.0.0.1:8000/.well-known/openid-configuration"


def test_config_requires_openid_scope():
    with pytest.raises(ValueError, match="openid"):
        AgencyConfig(
            name="Agency",
            issuer="http://127.0.0.1:8000",
            client_id="agency-1",
            private_jwk=generate_client_key("ES256"),
            base_url="http://127.0.0.1:8001",
            scope="profile",
            session_secret="s" * 32,
        )
