from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from digital_id import openapi
from digital_id.app import create_app
from digital_id.config import load_settings
from tests.conftest import TEST_PASSPHRASE

OPENAPI_DOCUMENT = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"


@pytest.fixture
def settings(database_url, keys_dir):
    return load_settings(
        database_url=database_url,
        keys_dir=keys_dir,
        keys_passphrase=TEST_PASSPHRASE,
        jwks_cache_seconds=900,
    )


@pytest.fixture
def client(settings, key_store):
    key_store.generate("RS256", size=2048)
    key_store.generate("ES256")  # access tokens
    with TestClient(create_app(settings)) as client:
        yield client


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok"}


def test_jwks_serves_public_keys_with_cache_headers(client, key_store):
    key_store.generate("ES256")
    client.app.state.key_ring.check_interval = 0  # see the change at once
    response = client.get("/jwks")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=900"
    assert response.headers["content-type"].startswith("application/jwk-set+json")
    keys = response.json()["keys"]
    assert {k["alg"] for k in keys} == {"RS256", "ES256"}
    for key in keys:
        assert {"kid", "alg", "use", "kty"} <= set(key)
        assert key["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key), "private parameters published"


def test_app_refuses_to_start_without_an_active_rs256_key(settings):
    from digital_id.keys import KeyStoreError

    with (
        pytest.raises(KeyStoreError, match="no active RS256 signing key"),
        TestClient(create_app(settings)),
    ):
        pass


def test_committed_openapi_document_matches_the_app():
    """`openapi/openapi.json` is what `digital-id openapi export` writes, byte for byte."""
    assert openapi.is_current(OPENAPI_DOCUMENT), (
        f"{OPENAPI_DOCUMENT} is stale: the routes changed since it was written; "
        f"run `{openapi.EXPORT_COMMAND}` and commit openapi/openapi.json"
    )


def test_readiness_fails_when_a_client_s_algorithm_has_no_active_key(client, session):
    from digital_id.clients import service

    registration = {
        "client_name": "Agency",
        "redirect_uris": ["https://a.example/cb"],
        "id_token_signed_response_alg": "PS256",
    }
    service.register(session, registration, production=True, active_algorithms={"RS256", "PS256"})
    session.commit()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["problems"] == [
        "no active PS256 signing key, which registered clients use"
    ]
