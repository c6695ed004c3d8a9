"""The demo agency's login, end to end against a strict fake of Digital ID's endpoints.

Logging out is in ``test_agency_app_logout.py``.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest
from fastapi.testclient import TestClient

from examples.agency_app.app import AgencyConfig, create_app
from examples.agency_app.keys import generate_client_key, public_jwks
from tests.examples.fake_digital_id import ISSUER, FakeDigitalID

CLIENT_ID = "kantor-pajak-demo"


def _agency(
    alg: str = "RS256", **provider_options: Any
) -> tuple[TestClient, FakeDigitalID, dict[str, Any]]:
    jwk = generate_client_key(alg)
    provider = FakeDigitalID(client_id=CLIENT_ID, client_jwks=public_jwks(jwk), **provider_options)
    config = AgencyConfig(
        name="Kantor Pajak Daerah (demo)",
        issuer=ISSUER,
        client_id=CLIENT_ID,
        private_jwk=jwk,
        base_url="http://agency.test",
        scope="openid profile nik address",
        session_secret="s" * 32,
    )
    app = create_app(config, transport=httpx2.ASGITransport(app=provider.app))
    return TestClient(app, base_url="http://agency.test"), provider, jwk


def _start_login(client: TestClient) -> str:
    response = client.get("/login", follow_redirects=False)
    assert response.status_code == 302, response.text
    return response.headers["location"]


def _log_in(client: TestClient, provider: FakeDigitalID) -> httpx2.Response:
    return client.get(provider.authorize(_start_login(client)), follow_redirects=False)


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_login_shows_verified_claims_and_userinfo(alg):
    client, provider, _jwk = _agency(alg)

    response = _log_in(client, provider)
    page = client.get("/")

    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/"
    assert "pairwise-subject-1" in page.text
    assert "3174015507900002" in page.text  # the NIK, from UserInfo
    assert "Jakarta Selatan" in page.text
    assert 'action="/logout"' in page.text


def test_authorization_request_carries_pkce_state_nonce_and_exact_redirect_uri():
    client, _provider, _jwk = _agency()

    query = parse_qs(urlsplit(_start_login(client)).query)

    assert query["redirect_uri"] == ["http://agency.test/callback"]
    assert query["scope"] == ["openid profile nik address"]
    assert query["code_challenge_method"] == ["S256"]
    assert {"state", "nonce", "code_challenge"} <= set(query)
    assert "code_verifier" not in query


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_client_assertion_is_what_digital_id_accepts(alg):
    client, provider, jwk = _agency(alg)
    before = int(time.time())

    _log_in(client, provider)

    [(header, claims)] = provider.assertions
    assert header["kid"] == jwk["kid"]
    assert header["alg"] == alg
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == ISSUER
    assert before <= claims["iat"] <= claims["exp"] <= claims["iat"] + 60


def test_every_assertion_has_a_new_jti():
    client, provider, _jwk = _agency()

    first = _log_in(client, provider)
    second = _log_in(client, provider)

    assert first.status_code == second.status_code == 303
    assert len({claims["jti"] for _header, claims in provider.assertions}) == 2


@pytest.mark.parametrize(
    "options",
    [
        {"id_token_overrides": {"nonce": "a-nonce-from-another-login"}},
        {"id_token_overrides": {"aud": "another-agency", "azp": CLIENT_ID}},
        {"id_token_overrides": {"aud": ["another-agency"], "azp": CLIENT_ID}},
        {"id_token_overrides": {"iss": "http://impostor.test"}},
        {"id_token_overrides": {"exp": int(time.time()) - 600}},
        {"id_token_overrides": {"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}},
        {"sign_with_unpublished_key": True},
    ],
    ids=["nonce", "aud", "aud-list", "iss", "expired", "at_hash", "signature"],
)
def test_an_id_token_that_fails_verification_logs_nobody_in(options):
    client, provider, _jwk = _agency(**options)

    response = _log_in(client, provider)

    assert response.status_code == 502
    assert "invalid_id_token" in response.text
    assert 'href="/login"' in client.get("/").text


def test_userinfo_about_someone_else_is_refused():
    client, provider, _jwk = _agency(userinfo_overrides={"sub": "someone-else"})

    response = _log_in(client, provider)

    assert response.status_code == 502
    assert "userinfo_subject_mismatch" in response.text


def test_token_endpoint_error_is_shown_as_a_page():
    client, provider, _jwk = _agency(token_error="invalid_grant")

    response = _log_in(client, provider)

    assert response.status_code == 400
    assert "invalid_grant" in response.text


def test_provider_error_for_this_browsers_login_is_shown_escaped():
    client, _provider, _jwk = _agency()
    state = parse_qs(urlsplit(_start_login(client)).query)["state"][0]
    query = urlencode(
        {"error": "access_denied", "error_description": "<b>Ditolak</b> by citizen", "state": state}
    )

    response = client.get(f"/callback?{query}")

    assert response.status_code == 400
    assert "access_denied" in response.text
    assert "&lt;b&gt;Ditolak&lt;/b&gt; by citizen" in response.text
    assert "<b>Ditolak</b>" not in response.text


def test_error_response_nobody_asked_for_is_not_echoed():
    client, _provider, _jwk = _agency()
    _start_login(client)
    query = urlencode(
        {"error": "access_denied", "error_description": "Call 0800-SCAM", "state": "forged"}
    )

    response = client.get(f"/callback?{query}")

    assert response.status_code == 400
    assert "unsolicited_error" in response.text
    assert "0800-SCAM" not in response.text


def test_code_without_a_login_started_here_is_refused():
    client, _provider, _jwk = _agency()

    response = client.get("/callback?code=stolen&state=guessed")

    assert response.status_code == 400
    assert "mismatching_state" in response.text


def test_discovery_naming_another_issuer_stops_the_login():
    client, _provider, _jwk = _agency(issuer_in_discovery="http://impostor.test")

    response = client.get("/login", follow_redirects=False)

    assert response.status_code == 502
    assert "issuer_mismatch" in response.text


def test_unreachable_provider_is_a_page_not_a_crash():
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    config = AgencyConfig(
        name="Agency",
        issuer=ISSUER,
        client_id=CLIENT_ID,
        private_jwk=generate_client_key("ES256"),
        base_url="http://agency.test",
        scope="openid",
        session_secret="s" * 32,
    )
    client = TestClient(create_app(config, transport=httpx2.MockTransport(refuse)))

    response = client.get("/login", follow_redirects=False)

    assert response.status_code == 502
    assert "discovery_failed" in response.text
