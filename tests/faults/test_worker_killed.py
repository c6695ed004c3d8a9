"""``kill -9`` of one worker of ``digital-id serve --workers 2`` under login load: the other
serves on, `serve`'s supervisor starts a replacement, and the data the killed
worker was writing is whole (its open transaction rolled back with its connection)."""

from __future__ import annotations

import os
import signal
import time

import httpx

from digital_id.config import load_settings
from tests.conftest import TEST_PASSPHRASE
from tests.faults.conftest import half_done
from tests.faults.load import Load
from tests.processes import digital_id, digital_id_server, require_postgresql, server_env
from tests.web.conftest import Provider, free_port

# Requests already in flight on the killed worker, or on a kept-alive connection to it, fail;
# after this long none may.
SETTLE = 1.0


def test_the_other_worker_serves_on_when_one_is_killed_and_the_data_stays_whole(
    database_url, engine, key_store, keys_dir, tmp_path
):
    require_postgresql(database_url)
    key_store.generate("RS256", size=2048)
    key_store.generate("ES256")  # access tokens
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = server_env(database_url, keys_dir, issuer, authorization_code_seconds="600")
    settings = load_settings(
        database_url=database_url,
        keys_dir=keys_dir,
        keys_passphrase=TEST_PASSPHRASE,
        issuer=issuer,
        pin_argon2_memory_kib=64,
        pin_argon2_time_cost=1,
    )
    with (
        digital_id_server(env, port, tmp_path / "server.log", workers=2) as server,
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        workers = _wait_for_workers(server, 2)
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
        )
        load = Load(server.url, arranging, agency, [arrange.citizen()["nik"] for _ in range(4)])

        with load.running():
            _wait_until(lambda: len(load.completed) >= 4, 20, "flows before the kill")
            victim = workers[0]
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            _wait_until(
                lambda: load.completed_between(killed + SETTLE, float("inf")) >= 6,
                20,
                "flows after the kill",
            )
            settled = time.monotonic()

        after = load.between(killed + SETTLE, settled)
        assert after, "no requests after the kill"
        assert [(e.path, e.status) for e in after if e.status != 200 and e.status != 303] == []
        assert not [e for e in load.exchanges if e.status is not None and e.status >= 500]

        # The supervisor replaces the dead worker (it checks every half second).
        replaced = _wait_for_workers(server, 2)
        assert victim not in replaced
        assert http.get("/readyz").status_code == 200

    assert half_done(engine) == {}
    verified = digital_id(env, "audit", "verify")
    assert verified.returncode == 0, verified.stderr


def _wait_for_workers(server, count: int, seconds: float = 20) -> list[int]:
    deadline = time.monotonic() + seconds
    while len(pids := server.worker_pids()) != count:
        assert time.monotonic() < deadline, (
            f"{len(pids)} workers, not {count}:\n{server.log_tail()}"
        )
        time.sleep(0.2)
    return pids


def _wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)
