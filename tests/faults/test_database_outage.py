"""PostgreSQL stops while citizens are logging in: every request meanwhile gets a prompt 503
(``temporarily_unavailable`` from the OAuth endpoints, the error page on pages), never a 500;
once it is back the same server process serves again, without a restart, and no flow was left
half-done."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import httpx
from sqlalchemy import text

from digital_id.config import load_settings
from digital_id.db.engine import create_engine_for
from digital_id.db.migrate import upgrade
from tests.conftest import TEST_PASSPHRASE
from tests.faults.conftest import half_done
from tests.faults.load import OFFLINE, Load
from tests.processes import digital_id, digital_id_server, server_env
from tests.web.conftest import Provider, free_port, pkce_pair
from tests.web.test_logout import _LogoutReceiver

OAUTH_PATHS = {"/token", "/revoke", "/introspect", "/userinfo"}
# Each request during the outage must be answered within this (the connect timeout is 2 s).
PROMPT = 5.0


def test_requests_during_a_database_outage_get_503_and_the_same_server_recovers(
    private_postgres, key_store, keys_dir, tmp_path
):
    admin = create_engine_for(private_postgres.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("CREATE DATABASE digital_id"))
    admin.dispose()
    url = private_postgres.url("digital_id")
    engine = create_engine_for(url)
    upgrade(engine)
    key_store.generate("RS256", size=2048)
    key_store.generate("ES256")  # access tokens
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = server_env(
        url,
        keys_dir,
        issuer,
        database_connect_timeout_seconds="2",
        authorization_code_seconds="600",  # no code expires (and is purged) during the test
    )
    settings = load_settings(
        database_url=url,
        keys_dir=keys_dir,
        keys_passphrase=TEST_PASSPHRASE,
        issuer=issuer,
        pin_argon2_memory_kib=64,
        pin_argon2_time_cost=1,
    )
    receiver = _LogoutReceiver()
    try:
        with (
            digital_id_server(env, port, tmp_path / "server.log") as server,
            httpx.Client(base_url=server.url, timeout=10) as http,
        ):
            arranging = {
                "engine": engine,
                "key_store": key_store,
                "settings": settings,
                "tmp_path": tmp_path,
            }
            arrange = Provider(http, **arranging)  # type: ignore[arg-type]
            agency = arrange.agency(
                grant_types=["authorization_code", "refresh_token"],
                scope="openid profile offline_access",
                backchannel_logout_uri=receiver.url,
            )
            niks = [arrange.citizen()["nik"] for _ in range(3)]
            load = Load(server.url, arranging, agency, niks)

            with load.running():
                _wait_for(lambda: len(load.completed) >= 3, 20, "flows before the outage")
                private_postgres.crash()
                down = time.monotonic()
                time.sleep(1)
                probes = _probe_while_down(arrange, agency)
                time.sleep(2)
                private_postgres.start()
                up = time.monotonic()
                _wait_for(
                    lambda: load.completed_between(up, float("inf")) >= 3,
                    20,
                    "flows after the database came back",
                )

            # Never a 500 or a traceback; a prompt answer to every request.
            failures = [e for e in load.exchanges if e.status is None or e.status >= 500]
            assert all(e.status == 503 for e in failures), {
                (e.path, e.status, e.body[:300]) for e in failures if e.status != 503
            }
            assert not [e for e in load.exchanges if "Traceback" in e.body]
            assert max(e.seconds for e in load.exchanges) < PROMPT
            during = load.between(down, up)
            assert any(e.status == 503 for e in during), "the outage was not noticed"
            assert all(e.retry_after for e in failures)
            for e in failures:
                if e.path in OAUTH_PATHS:
                    assert '"error":"temporarily_unavailable"' in e.body.replace(" ", ""), e.body
                else:
                    assert "<html" in e.body, e.body[:300]

            # The page and the JSON, in the citizen's language, checked while it was down.
            for name, response in probes.items():
                assert response.status_code == 503, (name, response.text[:300])
            assert all(
                int(probes[name].headers["retry-after"]) > 0 for name in probes if name != "readyz"
            )
            assert probes["token"].json()["error"] == "temporarily_unavailable"
            assert "Layanan sedang terganggu" in probes["authorize (id)"].text
            assert "Service temporarily unavailable" in probes["authorize (en)"].text
            assert probes["readyz"].json()["status"] == "unavailable"

            # The same process, never restarted, serves again: its pool replaced the dead
            # connections, and its logout courier resumed (it met the outage too).
            assert server.process.poll() is None
            assert http.get("/readyz").status_code == 200
            citizen_browser = load.browser()
            with citizen_browser.http:
                tokens = citizen_browser.tokens_for(agency, niks[0], scope=OFFLINE)
                logout = citizen_browser.http.get(
                    "/logout?" + urlencode({"id_token_hint": tokens["id_token"]}),
                    follow_redirects=False,
                )
            assert logout.status_code == 200, logout.text
            assert receiver.wait_for(1, timeout=10), "no back-channel logout after the outage"
            assert "Traceback" not in server.log_tail(400)

        # No flow left half-done, and the audit chain whole.
        assert half_done(engine) == {}
        verified = digital_id(env, "audit", "verify")
        assert verified.returncode == 0, verified.stderr
    finally:
        receiver.close()
        engine.dispose()


def _probe_while_down(arrange: Provider, agency) -> dict[str, httpx.Response]:
    """One request of each kind, as an agency's back end and as a browser would send it."""
    http = arrange.http
    _, challenge = pkce_pair()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": agency.client_id,
            "redirect_uri": agency.redirect_uri,
            "scope": "openid",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    page = {"accept": "text/html"}
    return {
        "token": http.post("/token", **agency.token_request("not-a-code", "x" * 43)),
        "authorize (id)": http.get(f"/authorize?{query}", headers=page),
        "authorize (en)": http.get(
            f"/authorize?{query}", headers={**page, "accept-language": "en"}
        ),
        "readyz": http.get("/readyz"),
    }


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)
