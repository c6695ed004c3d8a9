"""Client registrations are cached per server process, and a change the CLI makes in another
process reaches it within DIGITAL_ID_CLIENTS_RELOAD_SECONDS."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from digital_id.app import create_app
from tests.conftest import TEST_PASSPHRASE
from tests.web.conftest import ISSUER, Provider
from tests.web.test_revocation_and_introspection import client_credentials, machine_client

BOUND = 1.0


@pytest.fixture
def cached(provider: Provider) -> Iterator[Provider]:
    """A server with the default kind of cache: registrations checked every BOUND seconds."""
    settings = provider.settings.model_copy(update={"clients_reload_seconds": BOUND})
    with TestClient(create_app(settings), base_url=ISSUER) as http:
        yield Provider(http, provider.engine, provider.key_store, settings, provider.tmp_path)


def cli(cli_env: dict[str, str], keys_dir: object, *args: str) -> str:
    env = {
        **cli_env,
        "DIGITAL_ID_KEYS_DIR": str(keys_dir),
        "DIGITAL_ID_KEYS_PASSPHRASE": TEST_PASSPHRASE,
    }
    done = subprocess.run(
        [sys.executable, "-m", "digital_id", "clients", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def seconds_until(condition: Callable[[], bool], *, timeout: float) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "not seen in time"
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_client_disabled_by_the_cli_stops_getting_tokens_within_the_bound(
    cached, cli_env, keys_dir
):
    machine = machine_client(cached)
    assert client_credentials(cached, machine).status_code == 200  # cached now
    cli(cli_env, keys_dir, "disable", machine.client_id)
    waited = seconds_until(
        lambda: client_credentials(cached, machine).status_code == 401, timeout=5 * BOUND
    )
    assert waited <= BOUND + 0.5
    cli(cli_env, keys_dir, "enable", machine.client_id)
    seconds_until(lambda: client_credentials(cached, machine).status_code == 200, timeout=5 * BOUND)


def test_a_rotated_secret_replaces_the_old_one_within_the_bound(cached, cli_env, keys_dir):
    machine = machine_client(cached)
    assert client_credentials(cached, machine).status_code == 200
    output = cli(cli_env, keys_dir, "rotate-secret", machine.client_id)
    old = machine.secret
    machine.secret = next(
        word.strip('",') for word in output.split() if word.strip('",').startswith("dgid_cs_")
    )
    waited = seconds_until(
        lambda: client_credentials(cached, machine).status_code == 200, timeout=5 * BOUND
    )
    assert waited <= BOUND + 0.5
    machine.secret = old
    assert client_credentials(cached, machine).status_code == 401
