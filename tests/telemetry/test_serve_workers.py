"""``digital-id serve --workers 2``: real worker processes, one metrics listener for both (on
loopback, apart from the public port), and JSON logs on stderr whose lines carry the request
id each response gave."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from digital_id.db.engine import create_engine_for
from digital_id.db.migrate import upgrade
from tests.conftest import TEST_PASSPHRASE
from tests.web.conftest import free_port

STARTUP_SECONDS = 90  # two fresh interpreters importing the app on a busy machine
POOL_SIZE = 3  # per worker, set below so the gauge's sum is known


class Server:
    """A ``digital-id serve`` subprocess and the JSON lines it writes to stderr."""

    def __init__(self, process: subprocess.Popen[str], url: str, metrics_url: str) -> None:
        self.process = process
        self.url = url
        self.metrics_url = metrics_url
        self.stderr: list[str] = []
        self.workers_at_start: list[int] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line.rstrip("\n"))

    def entries(self) -> list[dict]:
        return [json.loads(line) for line in list(self.stderr)]

    def get(self, path: str) -> httpx.Response:
        # A new connection each time, so the workers share the requests between them.
        return httpx.get(self.url + path, timeout=10, headers={"Connection": "close"})

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(self.metrics_url, timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return sample.value
        return 0.0

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(5)
        assert self.process.stderr is not None
        self.process.stderr.close()


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {seconds} s"
        time.sleep(0.2)


def answers(server: Server) -> bool:
    assert server.process.poll() is None, "\n".join(server.stderr[-20:])
    try:
        return server.get("/readyz").status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def server_directory(tmp_path_factory):
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def two_workers(server_directory, run_log) -> Iterator[Server]:
    """One server for this module's tests (starting two workers takes seconds); the last
    test stops it."""
    tmp_path = server_directory
    url = f"sqlite:///{tmp_path / 'digital-id.sqlite3'}"
    engine = create_engine_for(url)
    upgrade(engine)
    engine.dispose()
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DIGITAL_ID_", "PROMETHEUS_"))
    }
    environment |= {
        "DIGITAL_ID_DATABASE_URL": url,
        "DIGITAL_ID_KEYS_DIR": str(tmp_path / "keys"),
        "DIGITAL_ID_KEYS_PASSPHRASE": TEST_PASSPHRASE,  # no console warning among the JSON
        "DIGITAL_ID_ENV": "development",
        "DIGITAL_ID_LOG_FORMAT": "json",
        "DIGITAL_ID_DATABASE_POOL_SIZE": str(POOL_SIZE),
        "TMPDIR": str(tmp_path / "tmp"),  # where serve makes the workers' metrics directory
    }
    (tmp_path / "tmp").mkdir()
    port, metrics_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "digital_id",
            "serve",
            "--workers",
            "2",
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
        ],
        env=environment,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = Server(process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics")
    try:
        wait_for(lambda: answers(server), STARTUP_SECONDS, "the server answers")
        # Each worker sets its pool size when it builds the app: both have once it is 2 x POOL_SIZE.
        wait_for(
            lambda: server.metric("digital_id_db_pool_size") == 2 * POOL_SIZE,
            STARTUP_SECONDS,
            "both workers report",
        )
        server.workers_at_start = worker_pids(server)
        yield server
    finally:
        server.stop()
        run_log.add_lines(server.stderr)  # scanned with the rest of the run's logs


def healthz_pids(server: Server) -> set[int]:
    return {
        entry["pid"]
        for entry in server.entries()
        if entry["logger"] == "digital_id.access" and entry["route"] == "/healthz"
    }


def test_the_metrics_listener_adds_up_both_workers(two_workers):
    server = two_workers
    sent = 0
    deadline = time.monotonic() + 30
    while len(healthz_pids(server)) < 2:
        assert time.monotonic() < deadline, "the requests never reached the second worker"
        assert server.get("/healthz").status_code == 200
        sent += 1

    # Every scrape reports the requests both workers served.
    for _ in range(3):
        served = server.metric(
            "digital_id_http_requests_total", method="GET", route="/healthz", status="200"
        )
        assert served == sent
        assert server.metric("digital_id_db_pool_size") == 2 * POOL_SIZE


def test_the_public_port_serves_no_metrics(two_workers):
    assert two_workers.get("/metrics").status_code == 404


def listening_addresses(port: int) -> set[str]:
    """The local addresses a TCP socket listens on ``port`` at (Linux's /proc/net/tcp)."""
    addresses = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            addresses.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return addresses


def test_the_metrics_listener_is_on_loopback_by_default(two_workers):
    port = int(two_workers.metrics_url.split(":")[2].split("/")[0])

    assert listening_addresses(port) == {"127.0.0.1"}


def test_every_stderr_line_is_json_and_the_access_line_has_the_response_request_id(two_workers):
    server = two_workers
    response = server.get("/healthz?login_hint=3171011990100001")
    wait_for(
        lambda: any(
            entry.get("request_id") == response.headers["X-Request-ID"]
            for entry in server.entries()
        ),
        10,
        "the access line is written",
    )

    entries = server.entries()  # json.loads of every line: each one parses
    (access,) = [
        entry for entry in entries if entry.get("request_id") == response.headers["X-Request-ID"]
    ]
    assert access["logger"] == "digital_id.access"
    assert access["route"] == access["path"] == "/healthz"
    assert access["status"] == 200
    assert access["pid"] in {entry["pid"] for entry in entries}
    assert {entry["level"] for entry in entries} <= {"INFO", "WARNING"}
    assert "3171011990100001" not in "\n".join(server.stderr)


def test_new_connections_are_shared_by_both_workers(two_workers):
    """Each worker listens on a socket of its own (SO_REUSEPORT): the kernel spreads new
    connections by a hash of their addresses, so neither worker is left idle."""
    server = two_workers
    request_ids = {server.get("/healthz").headers["X-Request-ID"] for _ in range(40)}
    wait_for(
        lambda: request_ids <= {entry.get("request_id") for entry in server.entries()},
        10,
        "the access lines are written",
    )

    served_by = Counter(
        entry["pid"] for entry in server.entries() if entry.get("request_id") in request_ids
    )

    assert len(served_by) == 2
    assert min(served_by.values()) >= 8, served_by


def test_the_workers_metric_files_live_only_as_long_as_the_server(two_workers, server_directory):
    (directory,) = (server_directory / "tmp").glob("digital-id-metrics-*")
    assert list(directory.glob("*.db"))

    two_workers.stop()

    assert not directory.exists()


def worker_pids(server: Server) -> list[int]:
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    pids = [int(pid) for pid in children.read_text().split()]
    return [pid for pid in pids if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def test_sigterm_stops_every_worker(two_workers):
    workers = two_workers.workers_at_start
    assert len(workers) == 2

    two_workers.stop()  # SIGTERM to the supervisor alone (the test above may have sent it)

    assert two_workers.process.returncode == 0
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
