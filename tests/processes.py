"""Real ``digital-id`` processes for the fleet and fault tests: servers started as an operator
starts them, and CLI commands run as a separate process, each bounded in time."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import TEST_PASSPHRASE

START_TIMEOUT = 30.0


def server_env(database_url: str, keys_dir: Path, issuer: str, **settings: str) -> dict[str, str]:
    """The environment of a server or CLI process: same database, keys and issuer for all."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("DIGITAL_ID_")}
    env |= {
        "DIGITAL_ID_ENV": "development",
        "DIGITAL_ID_DATABASE_URL": database_url,
        "DIGITAL_ID_KEYS_DIR": str(keys_dir),
        "DIGITAL_ID_KEYS_PASSPHRASE": TEST_PASSPHRASE,
        "DIGITAL_ID_ISSUER": issuer,
        "DIGITAL_ID_PIN_ARGON2_MEMORY_KIB": "64",
        "DIGITAL_ID_PIN_ARGON2_TIME_COST": "1",
        "DIGITAL_ID_BACKCHANNEL_LOGOUT_RETRY_SECONDS": "0.5",
        # These servers carry load from one address and a handful of citizens, which the
        # production login limits would rightly refuse; tests/web/test_rate_limits.py is
        # where the limits are tested.
        "DIGITAL_ID_RATE_LIMIT_LOGIN_PER_IP": "0",
        "DIGITAL_ID_RATE_LIMIT_LOGIN_PER_NIK": "0",
        # Several servers on one host; their metrics listeners would want the same port.
        "DIGITAL_ID_METRICS_ENABLED": "false",
    }
    env |= {f"DIGITAL_ID_{name.upper()}": value for name, value in settings.items()}
    return env


def digital_id(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """One CLI command in its own process; its output is in the assertion message on failure."""
    return subprocess.run(
        [sys.executable, "-m", "digital_id", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def worker_pids(self) -> list[int]:
        """The uvicorn worker processes under the supervisor (``--workers`` > 1)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = [int(pid) for pid in children.read_text().split()]
        return [pid for pid in pids if b"spawn_main" in _cmdline(pid)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


@contextmanager
def digital_id_server(
    env: dict[str, str], port: int, log: Path, *, workers: int = 1
) -> Iterator[ServerProcess]:
    """``digital-id serve`` on 127.0.0.1:``port`` until the block ends; ready when it answers."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "digital_id",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the workers end with it
        )
    server = ServerProcess(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_until_ready(server)
        yield server
    finally:
        stop(server)


def wait_until_ready(server: ServerProcess, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.process.poll() is None, "server exited:\n" + server.log_tail()
        try:
            if httpx.get(server.url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server not ready in {timeout} s:\n" + server.log_tail())


def stop(server: ServerProcess) -> None:
    """SIGTERM to the server's process group, then SIGKILL to whatever of it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)


def require_postgresql(database_url: str) -> None:
    """These tests are about several processes on one PostgreSQL database."""
    import pytest

    if database_url.startswith("sqlite"):
        pytest.skip("a fleet shares one PostgreSQL database; SQLite serves a single host")
