"""``python -m examples.agency_app`` reads its configuration from the environment."""

from __future__ import annotations

import json

import pytest

from examples.agency_app.__main__ import config_from_environment
from examples.agency_app.keys import generate_client_key


@pytest.fixture
def jwk_file(tmp_path):
    path = tmp_path / "agency.jwk.json"
    path.write_text(json.dumps(generate_client_key("ES256")), encoding="utf-8")
    return path


def test_reads_every_variable(jwk_file):
    config = config_from_environment(
        {
            "AGENCY_NAME": "Dinas Kependudukan (demo)",
            "AGENCY_ISSUER": "http://127.0.0.1:9000",
            "AGENCY_CLIENT_ID": "dukcapil-demo",
            "AGENCY_PRIVATE_JWK_FILE": str(jwk_file),
            "AGENCY_BASE_URL": "http://127.0.0.1:9001",
            "AGENCY_SCOPE": "openid nik",
            "AGENCY_SESSION_SECRET": "a-fixed-session-secret",
        }
    )

    assert config.name == "Dinas Kependudukan (demo)"
    assert config.issuer == "http://127.0.0.1:9000"
    assert config.client_id == "dukcapil-demo"
    assert config.private_jwk == json.loads(jwk_file.read_text(encoding="utf-8"))
    assert config.redirect_uri == "http://127.0.0.1:9001/callback"
    assert config.scope == "openid nik"
    assert config.session_secret == "a-fixed-session-secret"


def test_defaults_and_a_random_session_secret(jwk_file):
    environ = {"AGENCY_CLIENT_ID": "agency", "AGENCY_PRIVATE_JWK_FILE": str(jwk_file)}

    first, second = config_from_environment(environ), config_from_environment(environ)

    assert first.issuer == "http://127.0.0.1:8000"
    assert first.base_url == "http://127.0.0.1:8001"
    assert "openid" in first.scope.split()
    assert len(first.session_secret) >= 32
    assert first.session_secret != second.session_secret


def test_missing_variables_are_named():
    with pytest.raises(ValueError, match="AGENCY_CLIENT_ID, AGENCY_PRIVATE_JWK_FILE"):
        config_from_environment({})


def test_unreadable_key_file_is_reported(tmp_path):
    with pytest.raises(ValueError, match="AGENCY_PRIVATE_JWK_FILE"):
        config_from_environment(
            {"AGENCY_CLIENT_ID": "agency", "AGENCY_PRIVATE_JWK_FILE": str(tmp_path / "absent")}
        )
