"""Running servers pick up a key change made by the CLI, in every process, without restart."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx

from tests.conftest import TEST_PASSPHRASE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def published_kids(port: int) -> set[str]:
    return {
        key["kid"] for key in httpx.get(f"http://127.0.0.1:{port}/jwks", timeout=5).json()["keys"]
    }


def wait_until(condition, timeout: float) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "condition not met in time"
        time.sleep(0.1)
    return time.monotonic() - started


def test_two_server_processes_see_a_cli_key_change_within_seconds(engine, cli_env, keys_dir):
    env = {
        **cli_env,
        "DIGITAL_ID_KEYS_DIR": str(keys_dir),
        "DIGITAL_ID_KEYS_PASSPHRASE": TEST_PASSPHRASE,
        "DIGITAL_ID_KEYS_RELOAD_SECONDS": "1",
        "DIGITAL_ID_METRICS_ENABLED": "false",  # two servers on this host
    }
    cli = [sys.executable, "-m", "digital_id", "keys"]
    # A server signs with RS256 (ID tokens) and ES256 (access tokens).
    subprocess.run(
        [*cli, "generate", "--alg", "RS256", "--size", "2048"],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run([*cli, "generate", "--alg", "ES256"], env=env, check=True, capture_output=True)
    ports = [free_port(), free_port()]
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "digital_id", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    try:
        for port in ports:
            wait_until(lambda port=port: _answers(port), timeout=30)
        before = [published_kids(port) for port in ports]
        assert before[0] == before[1]
        assert len(before[0]) == 2

        subprocess.run(
            [*cli, "generate", "--alg", "PS256", "--size", "2048"],
            env=env,
            check=True,
            capture_output=True,
        )

        for port in ports:
            waited = wait_until(lambda port=port: len(published_kids(port)) == 3, timeout=5)
            assert waited < 5
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=10)


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
