"""A stateless fleet: two separate ``digital-id serve`` processes on one PostgreSQL database
and one keys directory serve one citizen's flow between them, whichever receives each step,
and both pick up a key rotation done through the CLI within seconds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.cookiejar import CookieJar
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from joserfc import jws

from digital_id.config import load_settings
from tests.conftest import TEST_PASSPHRASE
from tests.processes import (
    ServerProcess,
    digital_id,
    digital_id_server,
    require_postgresql,
    server_env,
)
from tests.web.conftest import Agency, Provider, free_port, pkce_pair, query_of

OFFLINE = "openid profile offline_access"
AFTER_LOGOUT = "https://pajak.example.go.id/logged-out"


class Fleet:
    """Two servers, A and B, the environment they run with, and one browser (one cookie jar)
    that talks to either."""

    def __init__(
        self, a: ServerProcess, b: ServerProcess, env: dict[str, str], arranging: dict[str, Any]
    ) -> None:
        self.a, self.b, self.env = a, b, env
        self.cookies = CookieJar()
        self._arranging = arranging
        self._clients: list[httpx.Client] = []
        self.arrange = self.on(a)  # registering citizens and agencies goes to the database

    def on(self, server: ServerProcess) -> Provider:
        """The test drivers, acting through ``server``, with the browser's shared cookies."""
        client = httpx.Client(base_url=server.url, cookies=self.cookies, timeout=10)
        self._clients.append(client)
        return Provider(client, **self._arranging)  # type: ignore[arg-type]

    def close(self) -> None:
        for client in self._clients:
            client.close()


@pytest.fixture
def fleet(database_url, engine, key_store, keys_dir, tmp_path) -> Iterator[Fleet]:
    require_postgresql(database_url)
    key_store.generate("RS256", size=2048)
    key_store.generate("ES256")  # access tokens
    port_a, port_b = free_port(), free_port()
    issuer = f"http://127.0.0.1:{port_a}"
    # The JWKS cache lifetime bounds how soon a next key may be activated; none here.
    env = server_env(database_url, keys_dir, issuer, jwks_cache_seconds="0")
    settings = load_settings(
        database_url=database_url,
        keys_dir=keys_dir,
        keys_passphrase=TEST_PASSPHRASE,
        issuer=issuer,
        pin_argon2_memory_kib=64,
        pin_argon2_time_cost=1,
    )
    arranging = {
        "engine": engine,
        "key_store": key_store,
        "settings": settings,
        "tmp_path": tmp_path,
    }
    with (
        digital_id_server(env, port_a, tmp_path / "a.log") as a,
        digital_id_server(env, port_b, tmp_path / "b.log") as b,
    ):
        fleet = Fleet(a, b, env, arranging)
        try:
            yield fleet
        finally:
            fleet.close()


def test_a_flow_moves_between_processes_and_logout_on_one_ends_the_session_on_the_other(
    fleet,
):
    citizen = fleet.arrange.citizen()
    agency = fleet.arrange.agency(
        grant_types=["authorization_code", "refresh_token"],
        scope="openid profile nik offline_access",
        post_logout_redirect_uris=[AFTER_LOGOUT],
    )
    a, b = fleet.on(fleet.a), fleet.on(fleet.b)

    # Authorize and log in on A.
    code, verifier, _ = a.code_for(agency, citizen["nik"], scope=OFFLINE)
    session_cookie = next(c for c in fleet.cookies if c.name == "dgid_session")

    # Redeem the code on B.
    redeemed = b.token(agency, code, verifier)
    assert redeemed.status_code == 200, redeemed.text
    tokens = redeemed.json()
    assert a.verify(tokens["id_token"])["sub"] == b.verify(tokens["id_token"])["sub"]

    # Refresh on A; the refresh token B issued is known there, and the old one is spent.
    refreshed = a.http.post(
        "/token",
        **agency.authenticated(
            {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        ),
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] != tokens["refresh_token"]
    assert b.userinfo(refreshed.json()["access_token"]).status_code == 200

    # Log out on B (RP-initiated, with the ID token as hint).
    logout = b.http.get(
        "/logout?"
        + urlencode(
            {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": AFTER_LOGOUT}
        ),
        follow_redirects=False,
    )
    assert logout.status_code == 303, logout.text
    assert logout.headers["location"] == AFTER_LOGOUT

    # prompt=none on A now fails, even for a browser that kept the old session cookie: the
    # session ended in the database, not in B's memory.
    fleet.cookies.set_cookie(session_cookie)
    _, challenge = pkce_pair()
    silent = a.authorize(
        agency, prompt="none", code_challenge=challenge, code_challenge_method="S256"
    )
    assert silent.status_code in (302, 303), silent.text
    assert query_of(silent.headers["location"])["error"] == "login_required"


def test_a_key_rotation_through_the_cli_reaches_both_processes_within_seconds(fleet):
    citizen = fleet.arrange.citizen()
    agency = fleet.arrange.agency()
    a, b = fleet.on(fleet.a), fleet.on(fleet.b)
    old_kid = _signing_kid(a, agency, citizen["nik"])

    generated = digital_id(fleet.env, "keys", "generate", "--alg", "RS256", "--size", "2048")
    assert generated.returncode == 0, generated.stderr
    new_kid = next(
        r.kid for r in fleet.arrange.key_store.records() if r.kid != old_kid and r.alg == "RS256"
    )
    for server in (a, b):  # published at once (as next), by both
        _within(5, lambda server=server: new_kid in _kids(server), f"{new_kid} in /jwks")

    rotated = digital_id(fleet.env, "keys", "rotate", "--alg", "RS256")
    assert rotated.returncode == 0, rotated.stderr
    for server in (a, b):  # ID tokens from both are signed with it, the old key still published
        _within(
            5,
            lambda server=server: _signing_kid(server, agency, citizen["nik"]) == new_kid,
            f"ID tokens signed by {new_kid}",
        )
        assert old_kid in _kids(server)


def _kids(provider: Provider) -> set[str]:
    return {key["kid"] for key in provider.http.get("/jwks").json()["keys"]}


def _signing_kid(provider: Provider, agency: Agency, nik: str) -> str:
    """The kid on a fresh ID token from this server (the browser's session makes it silent
    after the first login)."""
    id_token = provider.tokens_for(agency, nik)["id_token"]
    kid: str = jws.extract_compact(id_token.encode()).protected["kid"]
    return kid


def _within(seconds: float, condition: Any, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.2)
