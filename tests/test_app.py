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


@pytest.mark.parametrize("path", ["/jwks", "/.well-known/openid-configuration"])
def test_published_documents_answer_304_to_a_client_holding_the_current_etag(client, path):
    first = client.get(path)
    etag = first.headers["etag"]
    assert etag.startswith('"')
    again = client.get(path, headers={"If-None-Match": f'"stale", W/{etag}'})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == "public, max-age=900"
    assert again.headers["x-content-type-options"] == "nosniff"
    assert client.get(path, headers={"If-None-Match": '"stale"'}).content == first.content


def test_jwks_etag_changes_when_the_keys_change(client, key_store):
    before = client.get("/jwks")
    key_store.generate("ES256")
    client.app.state.key_ring.check_interval = 0  # see the change at once
    after = client.get("/jwks", headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert after.headers["etag"] != before.headers["etag"]
    assert {k["alg"] for k in after.json()["keys"]} == {"RS256", "ES256"}


def test_app_refuses_to_start_without_an_active_rs256_key(settings):
    from digital_id.keys import KeyStoreError

    app = create_app(settings)
    with (
        pytest.raises(KeyStoreError, match="no active RS256 signing key"),
        TestClient(app),
    ):
        pass
    # The schema check before the refusal opened a connection: the refused start closed it
    # rather than leave it open until the garbage collector finds the app.
    assert app.state.engine.pool.checkedin() == 0


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


@pytest.mark.parametrize("path", ["/jwks", "/.well-known/openid-configuration"])
def test_published_documents_are_answered_like_any_route(client, path, caplog):
    """Answered from memory ahead of the router, they still pass the size limits, carry the
    request id and the security headers, are logged under their route, and refuse methods
    the route does not take."""
    caplog.set_level("INFO", logger="digital_id.access")
    response = client.get(path, headers={"X-Request-ID": "published-1234"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "published-1234"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["content-length"] == str(len(response.content))
    (logged,) = [r for r in caplog.records if getattr(r, "request_id", None) == "published-1234"]
    assert (logged.route, logged.status) == (path, 200)

    too_large = client.get(path, headers={"X-Padding": "x" * 40_000})
    assert too_large.status_code == 400
    assert client.post(path).status_code == 405
    assert client.head(path).status_code == 405
