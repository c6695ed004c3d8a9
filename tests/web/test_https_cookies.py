"""Behind an https issuer, every cookie is Secure."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from digital_id.app import create_app
from tests.web.conftest import Provider, pkce_pair

HTTPS_ISSUER = "https://id.example.go.id"


@pytest.fixture
def https_provider(settings, engine, key_store, tmp_path):
    key_store.generate("RS256", size=2048)
    key_store.generate("ES256")  # access tokens
    https_settings = settings.model_copy(update={"issuer": HTTPS_ISSUER})
    with TestClient(create_app(https_settings), base_url=HTTPS_ISSUER) as http:
        yield Provider(http, engine, key_store, https_settings, tmp_path)


def test_cookies_are_secure_when_the_issuer_is_https(https_provider):
    citizen = https_provider.citizen()
    agency = https_provider.agency()
    page = https_provider.authorize(
        agency, code_challenge=pkce_pair()[1], code_challenge_method="S256"
    )
    consent = https_provider.log_in(page, citizen["nik"])
    cookies = page.headers.get_list("set-cookie") + consent.headers.get_list("set-cookie")
    names = {cookie.split("=", 1)[0] for cookie in cookies}
    # __Host-: only this host may set them (no sibling host can plant a browser cookie).
    assert {"__Host-dgid_browser", "dgid_session", "__Host-dgid_device"} <= names
    for cookie in cookies:
        attributes = cookie.lower()
        assert "; secure" in attributes
        assert "; httponly" in attributes
        assert "samesite=lax" in attributes
        if cookie.startswith("__Host-"):
            assert "; path=/" in attributes
            assert "domain=" not in attributes
