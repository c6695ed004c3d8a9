"""Every log record of the test run, kept as JSON lines and scanned when the run ends.

A pytest plugin (registered by tests/conftest.py). From the start of the run the root logger
sends every record at INFO and above, the level a production server logs at, to a file under
test-artifacts/logs/; servers started in threads log through the root logger too, and tests
that run servers in subprocesses add those servers' stderr with ``run_log.add_lines``. At the
end the file is scanned for what must never be logged: a full NIK, a JWT, a PIN the tests use,
a client secret, a credential after a secret-sounding name, an Authorization header's
credentials. Anything found fails the run and is listed; the file is kept for reading then,
and removed when the run is clean.

The records are written before the server's redacting filter (which only production logging
installs) would mask anything: the scan checks what the code logs, not what redaction saves.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from digital_id.telemetry.logs import QUIET_LIBRARIES, JsonFormatter

# Every PIN the tests give citizens (tests/web/conftest.py, tests/accounts, tests/web/test_pages.py).
TEST_PINS = ("246810", "975318", "135790", "864213")
_SECRET_NAMES = (
    r"pin|new_pin|old_pin|otp|code|nik|login_hint|client_secret|code_verifier|client_assertion"
    r"|access_token|refresh_token|id_token|logout_token|token|password"
)
PATTERNS: dict[str, re.Pattern[str]] = {
    "a full NIK": re.compile(r"(?<![0-9A-Za-z])[0-9]{16}(?![0-9A-Za-z])"),
    "a JWT": re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
    # A whole word only: request ids are random hex, and a run now and then would otherwise find
    # a test PIN inside one (…a246810f…); so would a decimal's fraction (1795838272.246810).
    "a test PIN": re.compile(
        rf"(?<![0-9A-Za-z])(?<![0-9]\.)({'|'.join(TEST_PINS)})(?![0-9A-Za-z])"
    ),
    "a client secret": re.compile(r"\bdgid_cs_[A-Za-z0-9_-]{8,}"),
    # Not after a colon: an audit tag such as ``auth:otp:removed`` names an event, not a value.
    "a secret-named value": re.compile(
        rf"(?i)(?<!:)\b({_SECRET_NAMES})\\?['\"]?\s*[=:]\s*\\?['\"]?[A-Za-z0-9_\-.~+/]{{4,}}"
    ),
    "Authorization credentials": re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
}


@dataclass(frozen=True)
class Finding:
    line_number: int
    kind: str


def scan(lines: Iterable[str]) -> list[Finding]:
    return [
        Finding(number, kind)
        for number, line in enumerate(lines, start=1)
        for kind, pattern in PATTERNS.items()
        if pattern.search(line)
    ]


class RunLog:
    """The run's log file and the handler writing it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.handler = logging.FileHandler(path, mode="w", encoding="utf-8")
        self.handler.setFormatter(JsonFormatter())
        self.handler.setLevel(logging.INFO)
        self._levels = {name: logging.getLogger(name).level for name in (None, *QUIET_LIBRARIES)}

    def start(self) -> None:
        """Log as a production server does: INFO, with the same libraries held at WARNING."""
        root = logging.getLogger()
        root.addHandler(self.handler)
        if root.getEffectiveLevel() > logging.INFO:
            root.setLevel(logging.INFO)
        for name in QUIET_LIBRARIES:
            logging.getLogger(name).setLevel(logging.WARNING)

    def add_lines(self, lines: Iterable[str]) -> None:
        """Log lines a server wrote elsewhere (a subprocess's stderr), to be scanned too."""
        self.handler.acquire()
        try:
            self.handler.flush()
            with self.path.open("a", encoding="utf-8") as file:
                file.writelines(line if line.endswith("\n") else line + "\n" for line in lines)
        finally:
            self.handler.release()

    def lines(self) -> list[str]:
        # Under the handler's lock: a server thread may be writing a line at this moment.
        self.handler.acquire()
        try:
            self.handler.flush()
            return self.path.read_text(encoding="utf-8").split("\n")[:-1]
        finally:
            self.handler.release()

    def stop(self) -> None:
        logging.getLogger().removeHandler(self.handler)
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
        self.handler.close()


_run_log = pytest.StashKey[RunLog]()
_findings = pytest.StashKey[list[Finding]]()


def pytest_configure(config: pytest.Config) -> None:
    run_log = RunLog(config.rootpath / "test-artifacts" / "logs" / f"pytest-{os.getpid()}.jsonl")
    run_log.start()
    config.stash[_run_log] = run_log


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    run_log = session.config.stash.get(_run_log, None)
    if run_log is None:
        return
    run_log.stop()
    findings = scan(run_log.path.read_text(encoding="utf-8").split("\n"))
    session.config.stash[_findings] = findings
    if findings:
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        run_log.path.unlink()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    findings = config.stash.get(_findings, [])
    if not findings:
        return
    path = config.stash[_run_log].path
    terminalreporter.section("secrets in the logs", red=True, bold=True)
    terminalreporter.line(
        f"{len(findings)} log line(s) hold what must never be logged; the run fails. Lines of {path}:"
    )
    for finding in findings[:50]:
        terminalreporter.line(f"  line {finding.line_number}: {finding.kind}")


@pytest.fixture(scope="session")
def run_log(pytestconfig: pytest.Config) -> RunLog:
    return pytestconfig.stash[_run_log]
