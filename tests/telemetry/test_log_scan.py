"""The run's log scan (tests/log_scan.py) sees every record, finds each kind of secret, and
fails the run when it does: it cannot pass by not looking."""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from tests.log_scan import PATTERNS, TEST_PINS, scan
from tests.web.conftest import PIN

REPOSITORY = Path(__file__).resolve().parents[2]
# Built from parts, so this file holds no whole example the scan of the repository could trip on.
NIK = "3171" + "011990100001"
JWT = "eyJhbGciOiJSUzI1NiJ9" + ".eyJzdWIiOiJ4In0.c2lnbmF0dXJl"

EXAMPLES = {
    "a full NIK": f'{{"message": "no citizen {NIK}"}}',
    "a JWT": f'{{"message": "GET /logout?id_token_hint={JWT} 302"}}',
    "a test PIN": '{"message": "checking 246810 for citizen:7"}',
    "a client secret": '{"message": "registered with dgid_cs_Q2xpZW50U2VjcmV0MTIz"}',
    "a secret-named value": '{"message": "GET /callback?code=Zm9vYmFyYmF6&state=s"}',
    "Authorization credentials": '{"message": "header Authorization: Basic ZGdpZDpzZWNyZXQ="}',
}


@pytest.mark.parametrize("kind", sorted(PATTERNS))
def test_the_scan_finds_each_kind_of_secret(kind):
    assert kind in {finding.kind for finding in scan(["harmless", EXAMPLES[kind]])}
    assert [finding.line_number for finding in scan(["harmless", EXAMPLES[kind]])] == [2]


def test_the_scan_knows_the_pin_the_tests_give_citizens():
    assert PIN in TEST_PINS


@pytest.mark.parametrize(
    "line",
    [
        '{"message": "refresh_token={}", "extra": "token=abc"}'.replace("abc", "[redacted]"),
        '{"logger": "digital_id.access", "message": "POST /token 200", "route": "/token", '
        '"status": 200, "duration_ms": 12.5, "request_id": "e13fdbcb9caf9631104406987553cda0"}',
        '{"message": "Running upgrade  -> 5e6fa5af5716, citizen accounts: PIN, lockout"}',
        '{"message": "grant_type=authorization_code&token_type_hint=refresh_token"}',
        '{"message": "NIK …0001, timestamp 1795838272.123456"}',
        '{"message": "POST /token 200", "request_id": "9c0a246810f4e1d2b3a4c5d6e7f80912"}',
        '{"message": "refreshed at 1795838272.246810"}',
        '{"message": "GET /account/receipts/auth:otp:removed.jwt 404 6.8 ms"}',
    ],
)
def test_the_scan_passes_ordinary_lines(line):
    assert scan([line]) == []


def test_records_from_a_server_thread_reach_the_run_log(run_log, live_server):
    marker = secrets.token_hex(8)
    logging.getLogger("digital_id.probe").info("marker %s", marker)

    response = httpx.get(live_server + "/healthz", timeout=10)

    def logged(message: str | None = None, request_id: str | None = None) -> bool:
        return any(
            (message is None or entry["message"] == message)
            and (request_id is None or entry["request_id"] == request_id)
            for entry in map(json.loads, run_log.lines())
        )

    assert logged(message=f"marker {marker}")
    # The server thread writes its access line just after the response has gone out.
    deadline = time.monotonic() + 10
    while not logged(request_id=response.headers["X-Request-ID"]):
        assert time.monotonic() < deadline, "the server thread's access line never arrived"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("logged", "fails"),
    [(f"citizen {NIK}", True), ("citizen:7", False)],
    ids=["a NIK logged", "nothing secret logged"],
)
def test_a_run_that_logs_a_secret_fails(tmp_path, logged, fails):
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.log_scan"]\n')
    (tmp_path / "test_probe.py").write_text(
        textwrap.dedent(f"""
            import logging

            def test_logs_something():
                logging.getLogger("digital_id.probe").warning({logged!r})
        """)
    )

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPOSITORY), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert "1 passed" in result.stdout
    if fails:
        assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
        assert "secrets in the logs" in result.stdout
        assert "line 1: a full NIK" in result.stdout
        assert list((tmp_path / "test-artifacts" / "logs").glob("*.jsonl"))
    else:
        assert result.returncode == pytest.ExitCode.OK, result.stdout
        assert not list((tmp_path / "test-artifacts" / "logs").glob("*.jsonl"))
