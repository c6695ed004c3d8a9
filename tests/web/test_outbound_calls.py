"""The calls this server makes to an agency's host (its jwks_uri here; the sector identifier
and back-channel logout go the same way): one deadline for the whole exchange, a size cap,
only public addresses in production, a jwks_uri fetched again for an unknown kid at most once
per client per interval, and an address whose client authentications keep failing refused
before any of that work."""

from __future__ import annotations

import http.server
import json
import secrets
import socket
import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from digital_id.app import create_app
from digital_id.config import load_settings
from tests.conftest import TEST_PASSPHRASE
from tests.web.conftest import ISSUER, Provider
from tests.web.test_pages import pkce
from tests.web.test_rate_limits import assert_slow_down, browser_at
from tests.web.test_request_objects import authorize_with, request_object
from tests.web.test_revocation_and_introspection import client_credentials, machine_client

REFETCH_SECONDS = 2
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def settings(settings):
    return settings.model_copy(
        update={
            "jwks_refetch_seconds": REFETCH_SECONDS,
            "outbound_deadline_seconds": 1.0,
            "rate_limit_client_auth_failures_per_ip": 20,
            "rate_limit_client_auth_failures_per_ip_seconds": 10**6,
            "rate_limit_request_objects_per_ip": 2,
            "rate_limit_request_objects_per_ip_seconds": 10**6,
        }
    )


class AgencyHost:
    """An agency's web server on a real port: serves ``body`` at any path, counting requests."""

    def __init__(self, body: bytes = b'{"keys": []}') -> None:
        self.body = body
        self.fetches = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args: Any) -> None:
                pass

        class CountingServer(http.server.ThreadingHTTPServer):
            def verify_request(self, request: Any, client_address: Any) -> bool:
                outer.connections += 1
                return True

        self.connections = 0
        self.server = CountingServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def publish(self, *keys: RSAKey) -> None:
        self.body = json.dumps(KeySet(list(keys)).as_dict(private=False)).encode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def agency_host():
    host = AgencyHost()
    yield host
    host.close()


def new_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"alg": "RS256"}, auto_kid=True)


def present(provider: Provider, agency, *, key: RSAKey | None = None, aud: str = ISSUER):
    """A token request authenticated by an assertion signed with ``key``; the code is made up,
    so an authenticated client gets invalid_grant (400) and an unauthenticated one 401."""
    key = key or agency.private_key
    now = int(time.time())
    claims = {"iss": agency.client_id, "sub": agency.client_id, "aud": aud, "iat": now,
              "exp": now + 60, "jti": secrets.token_urlsafe(16)}  # fmt: skip
    assertion = jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)
    return provider.http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": "made-up",
            "code_verifier": "v" * 43,
            "redirect_uri": agency.redirect_uri,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
    )


def authenticated(response) -> bool:
    if response.status_code == 400 and response.json()["error"] == "invalid_grant":
        return True
    assert response.status_code == 401, response.text
    return False


def test_an_unknown_kid_refetches_the_jwks_uri_at_most_once_per_interval(provider, agency_host):
    old = new_key()
    agency_host.publish(old)
    agency = provider.agency("private_key_jwt", jwks_uri=agency_host.url)
    assert authenticated(present(provider, agency, key=old))
    assert authenticated(present(provider, agency, key=old))
    assert agency_host.fetches == 1  # cached

    # Anyone may name any kid: within the interval none of them makes another fetch.
    for _ in range(5):
        assert not authenticated(present(provider, agency, key=new_key()))
    assert agency_host.fetches == 1

    # The agency rotates; after the interval its new kid is fetched once and accepted.
    rotated = new_key()
    agency_host.publish(old, rotated)
    time.sleep(REFETCH_SECONDS + 0.2)
    assert authenticated(present(provider, agency, key=rotated))
    assert agency_host.fetches == 2

    # A kid still missing after a fetch is remembered: asking again fetches nothing more.
    stranger = new_key()
    time.sleep(REFETCH_SECONDS + 0.2)
    assert not authenticated(present(provider, agency, key=stranger))
    assert agency_host.fetches == 3
    time.sleep(REFETCH_SECONDS + 0.2)
    assert not authenticated(present(provider, agency, key=stranger))
    assert agency_host.fetches == 3


class DrippingHost:
    """A host that answers one byte at a time, slowly: 100 bytes over 20 seconds."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/jwks.json"
        self.sent = 0
        self.hung_up = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            try:
                for _ in range(100):
                    time.sleep(0.2)
                    connection.sendall(b" ")
                    self.sent += 1
            except OSError:
                pass
            self.hung_up.set()


def test_a_host_dripping_its_answer_is_cut_off_at_the_deadline(provider):
    host = DrippingHost()
    agency = provider.agency("private_key_jwt", jwks_uri=host.url)
    assert not authenticated(present(provider, agency, key=new_key()))
    assert host.hung_up.wait(30)
    # The deadline (1 s here) is for the whole answer, not for each read: cut off after a few
    # bytes, not after 100.
    assert host.sent < 50, host.sent
    host.listener.close()


def test_a_jwk_set_larger_than_the_cap_is_refused(provider, agency_host):
    key = new_key()
    document = KeySet([key]).as_dict(private=False)
    document["padding"] = "x" * (70 * 1024)
    agency_host.body = json.dumps(document).encode()
    agency = provider.agency("private_key_jwt", jwks_uri=agency_host.url)
    response = present(provider, agency, key=key)
    assert not authenticated(response)
    assert "larger than" in response.json()["error_description"]


def test_in_production_a_loopback_jwks_uri_is_refused_when_called(
    provider, agency_host, database_url, keys_dir
):
    """A registration from before the rule, or a name that now resolves to a private
    address: production never connects to it."""
    key = new_key()
    agency_host.publish(key)
    agency = provider.agency(
        "private_key_jwt", jwks_uri=f"https://localhost:{agency_host.port}/jwks.json"
    )
    issuer = "https://id.example.go.id"
    production = load_settings(
        env="production", database_url=database_url, keys_dir=keys_dir,
        keys_passphrase=TEST_PASSPHRASE, issuer=issuer,
    )  # fmt: skip
    with TestClient(create_app(production), base_url=issuer) as http:
        live = Provider(http, provider.engine, provider.key_store, production, provider.tmp_path)
        response = present(live, agency, key=key, aud=issuer)
    assert not authenticated(response)
    assert agency_host.connections == 0  # refused before connecting, not after


def test_an_address_past_its_failure_limit_is_refused_before_any_key_is_fetched(
    provider, agency_host
):
    agency_host.publish(new_key())
    agency = provider.agency("private_key_jwt", jwks_uri=agency_host.url)
    machine = machine_client(provider)
    guesser = browser_at(provider, "203.0.113.9")
    wrong = {"data": {"grant_type": "client_credentials"}, "auth": (machine.client_id, "nope")}
    for _ in range(20):
        assert guesser.http.post("/token", **wrong).status_code == 401
    assert_slow_down(guesser.http.post("/token", **wrong))

    assert_slow_down(present(guesser, agency, key=new_key()))
    assert agency_host.fetches == 0
    # Revocation and introspection count and refuse the same way.
    lookup = machine.authenticated({"token": "whatever"})
    assert_slow_down(guesser.http.post("/introspect", **lookup))
    assert_slow_down(guesser.http.post("/revoke", **lookup))
    # Another address is not affected.
    assert client_credentials(provider, machine).status_code == 200


def test_authorization_requests_with_request_objects_are_limited_per_address(provider):
    agency = provider.agency("private_key_jwt")
    visitor = browser_at(provider, "203.0.113.20")
    for _ in range(2):
        response, _ = authorize_with(visitor, agency, request_object(agency))
        assert response.status_code == 200, response.text[:500]
    response, _ = authorize_with(visitor, agency, request_object(agency))
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    # Plain authorization requests from that address, and other addresses, go on.
    assert visitor.authorize(agency, **pkce()).status_code == 200
    elsewhere, _ = authorize_with(provider, agency, request_object(agency))
    assert elsewhere.status_code == 200
