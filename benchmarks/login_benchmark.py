"""Login benchmark: citizens' browsers log in to an agency through the real server.

    .venv/bin/python -m benchmarks.login_benchmark [--seconds 20] [--concurrency 8] [--workers 2]
                                                   [--databases sqlite,postgresql]

For each database: a fresh, migrated database and key store, a few hundred synthetic citizens
with PINs hashed at the production argon2id parameters (the Settings defaults), one agency
using client_secret_basic, and ``digital-id serve --workers N`` started as a child process
on a free port. Seeding is not measured. Then two time-limited phases, each with
``--concurrency`` virtual citizens (threads) running flows back to back:

- full login: a new browser (its own cookie jar) for every flow: the authorization page,
  NIK and PIN, the consent page (shown only the first time a citizen meets the agency), then
  the agency redeems the code at /token (PKCE) and calls /userinfo;
- single sign-on: a browser that already has a session: /authorize answers with a code at
  once (consent remembered), then /token and /userinfo.

Prints per-step and per-flow latency percentiles, flows/s, the CPU used per flow by the
server, PostgreSQL, this load generator and everything else (a warning when something else
took a noticeable share of the machine), and the time of one PIN hash measured in-process.
Checks the floors below; exits 1 if one is missed or any request failed (a failure prints
the request and the server's log, which holds any traceback).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import itertools
import os
import platform
import re
import secrets
import signal
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import make_url, text
from sqlalchemy.orm import Session

from benchmarks.import_benchmark import (
    POSTGRES_ADMIN_URL,
    drop_database,
    fresh_database,
    percentile,
)
from digital_id.accounts.activation import set_pin
from digital_id.accounts.pins import PinHasher
from digital_id.clients import service as clients
from digital_id.config import Settings
from digital_id.db.engine import create_engine_for
from digital_id.keys.store import KeyStore
from digital_id.registry.importer import CitizenImporter
from digital_id.registry.records import RecordValidator
from digital_id.registry.regions import load_regions
from digital_id.registry.register_files import RegisterFile, RejectReport
from digital_id.registry.synthetic import generate_citizens, write_file
from tests.passkey_authenticator import SoftPasskey

# Floors, checked at the default concurrency and workers (they describe this load on a
# 2-core machine; other settings only report). Set at about half the lower measured rate and
# twice the higher measured p95 of the two databases (docs/performance.md): they catch a
# change that roughly doubles what a flow costs the server, in CPU or in waiting (for a lock,
# a connection), not run-to-run noise (about 20 % on the shared development VM).
FULL_LOGIN_FLOW_P95_FLOOR_MS = 1_500.0  # a browser's whole login, 8 at once, 2 workers
FULL_LOGIN_RATE_FLOOR = 10.0  # full logins per second, over the phase
SSO_FLOW_P95_FLOOR_MS = 1_000.0  # a returning browser's whole flow, 8 at once, 2 workers
SSO_RATE_FLOOR = 20.0  # single sign-on flows per second
DEFAULT_CONCURRENCY = 8
DEFAULT_WORKERS = 2

CITIZENS = 300
PIN = "246810"
REDIRECT_URI = "https://pajak.example.go.id/callback"
SCOPE = "openid profile"
PASSPHRASE = "login-benchmark-" + secrets.token_hex(8)
SERVER_START_LIMIT_S = 60.0
REQUEST_TIMEOUT_S = 30.0
HASH_SAMPLES = 20
BUSY_ELSEWHERE_WARNING = 0.10  # of all cores: more means something else shared the machine
FULL_LOGIN = "full login"
SSO = "single sign-on"
STEPS = ("authorize", "login", "consent", "token", "userinfo", "flow")

# One TLS context for every client: httpx would otherwise load the CA bundle for each new
# browser, load-generator CPU taken from the server on a small machine (all traffic is http).
_TLS = ssl.create_default_context()


class FlowError(Exception):
    """A response the flow did not expect; the message names the request."""


@dataclass
class Agency:
    client_id: str
    secret: str


@dataclass
class Seeded:
    niks: list[str]
    agency: Agency
    seconds: float


@dataclass
class PhaseResult:
    database: str
    phase: str
    seconds: float
    cpu: CpuTimes = field(default_factory=lambda: CpuTimes(0.0, 0.0, 0.0, 0.0))
    connections: int = 0  # PostgreSQL connections the server opened during the phase
    samples: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    errors: list[str] = field(default_factory=list)
    tokens: list[dict[str, Any]] = field(default_factory=list)  # the agency's token responses

    @property
    def flows(self) -> int:
        return len(self.samples["flow"])

    @property
    def rate(self) -> float:
        return self.flows / self.seconds if self.seconds else 0.0

    def share(self, cpu_seconds: float) -> float:
        """``cpu_seconds`` as a fraction of what every core could do over the phase."""
        capacity = self.seconds * (os.cpu_count() or 1)
        return cpu_seconds / capacity if capacity else 0.0

    @property
    def disturbed(self) -> bool:
        return self.share(self.cpu.other) > BUSY_ELSEWHERE_WARNING


# --- seeding (not measured) ----------------------------------------------------------------


def production_hasher(store: KeyStore) -> PinHasher:
    """The PIN hasher with the argon2id parameters a default (production) server uses."""
    fields = Settings.model_fields
    return PinHasher(
        store.secret("pin_pepper"),
        memory_kib=fields["pin_argon2_memory_kib"].default,
        time_cost=fields["pin_argon2_time_cost"].default,
    )


def seed(url: str, keys_dir: Path, workdir: Path) -> Seeded:
    """Register citizens, give the active ones a PIN, register one agency."""
    started = time.perf_counter()
    store = KeyStore(keys_dir, PASSPHRASE)
    store.generate("RS256")
    # A few more than needed: the generator marks some citizens deceased or blocked.
    records = list(generate_citizens(CITIZENS + CITIZENS // 10, seed=7))
    register = workdir / "citizens.csv"
    write_file(register, iter(records), "csv")
    engine = create_engine_for(url)
    report = RejectReport(workdir / "citizens.rejected.csv")
    with RegisterFile(register) as source:
        summary = CitizenImporter(engine).run(
            source.rows(), RecordValidator(load_regions()), report
        )
    report.close()
    if summary.rejected:
        raise SystemExit(f"seeding: {summary.rejected} synthetic citizens rejected")
    niks = [record.nik for record in records if record.status == "active"][:CITIZENS]
    hasher = production_hasher(store)
    with Session(engine) as session, session.begin():
        for nik in niks:
            set_pin(session, hasher, nik=nik, pin=PIN)
        agency = register_agency(session)
    engine.dispose()
    return Seeded(niks, agency, time.perf_counter() - started)


def register_agency(session: Session, **metadata: Any) -> Agency:
    """An agency logging citizens in with ``client_secret_basic``; ``metadata`` overrides."""
    registered = clients.register(
        session,
        {
            "client_name#id": "Kantor Pajak Daerah",
            "client_name#en": "Regional Tax Office",
            "redirect_uris": [REDIRECT_URI],
            "scope": "openid profile nik address",
            "token_endpoint_auth_method": "client_secret_basic",
            **metadata,
        },
        production=False,
        active_algorithms={"RS256"},
    )
    return Agency(registered.client.client_id, registered.client_secret or "")


def pin_hash_seconds(samples: int = HASH_SAMPLES) -> list[float]:
    """Wall time of verifying one PIN at the production parameters, in this process."""
    with tempfile.TemporaryDirectory(prefix="digital-id-bench-keys-") as tmp:
        hasher = production_hasher(KeyStore(Path(tmp), PASSPHRASE))
    stored = hasher.hash(PIN)
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        hasher.verify(stored, PIN)
        timings.append(time.perf_counter() - started)
    return timings


# --- the server ------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    database: str | None  # the PostgreSQL database it serves, None for SQLite


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds (user + system) used over a phase, by whom."""

    server: float  # the server process and its workers
    database: float  # every PostgreSQL process (SQLite works inside the server)
    load: float  # this process: the virtual citizens
    machine: float  # every core, not idle: the above, the kernel and anything else running

    @property
    def other(self) -> float:
        """The kernel's own work (loopback networking) and processes outside the benchmark."""
        return max(0.0, self.machine - self.server - self.database - self.load)


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU used so far, from Linux /proc: per process of the server and of PostgreSQL."""

    processes: dict[tuple[str, int], float]
    load: float
    machine: float

    @classmethod
    def take(cls, server: Server) -> CpuSnapshot:
        tick = os.sysconf("SC_CLK_TCK")
        processes = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                name, rest = stat.read_text().rsplit(")", 1)
            except OSError:  # ended meanwhile
                continue
            # state, ppid, pgrp, ...; utime, stime, cutime, cstime are the 12th to 15th. A
            # process's own time plus that of its children that ended: so the backends a
            # PostgreSQL connection pool opens and closes within a phase still count.
            fields = rest.split()
            used = sum(int(value) for value in fields[11:15]) / tick
            if int(fields[2]) == server.process.pid:  # the server's own process group
                processes["server", int(stat.parent.name)] = used
            elif server.database is not None and name.endswith("(postgres"):
                processes["database", int(stat.parent.name)] = used
        user, nice, system, _idle, _iowait, irq, softirq, steal = (
            int(value) for value in Path("/proc/stat").read_text().split()[1:9]
        )
        machine = (user + nice + system + irq + softirq + steal) / tick
        return cls(processes, time.process_time(), machine)

    def until(self, later: CpuSnapshot) -> CpuTimes:
        used = {"server": 0.0, "database": 0.0}
        for (role, pid), seconds in later.processes.items():
            used[role] += seconds - self.processes.get((role, pid), 0.0)
        # A process that ended meanwhile: its whole time is now in its parent's children's
        # time, counted above; take off what it had used before the phase.
        for (role, pid), seconds in self.processes.items():
            if (role, pid) not in later.processes:
                used[role] -= seconds
        return CpuTimes(
            max(0.0, used["server"]),  # below 0 only if the server itself ended
            max(0.0, used["database"]),
            later.load - self.load,
            later.machine - self.machine,
        )


def database_sessions(name: str | None) -> int:
    """Connections ever opened to the PostgreSQL database (0 for SQLite)."""
    if name is None:
        return 0
    admin = create_engine_for(POSTGRES_ADMIN_URL)
    with admin.connect() as connection:
        sessions = connection.execute(
            text("SELECT sessions FROM pg_stat_database WHERE datname = :name"), {"name": name}
        ).scalar_one()
    admin.dispose()
    return int(sessions)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


RATE_LIMITS = ("LOGIN_PER_IP", "LOGIN_PER_NIK", "ACTIVATION_PER_IP", "ACTIVATION_PER_NIK",
               "TOKEN_PER_CLIENT", "CLIENT_AUTH_FAILURES_PER_IP")  # fmt: skip


@contextmanager
def serving(database_url: str, keys_dir: Path, workers: int, log: Path) -> Iterator[Server]:
    """``digital-id serve`` in its own process group, until the block ends."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {name: value for name, value in os.environ.items() if not name.startswith("DIGITAL_ID_")}
    env |= {
        "DIGITAL_ID_DATABASE_URL": database_url,
        "DIGITAL_ID_KEYS_DIR": str(keys_dir),
        "DIGITAL_ID_KEYS_PASSPHRASE": PASSPHRASE,
        "DIGITAL_ID_ISSUER": url,
    }
    # The load comes from one address and a few citizens and clients, far above any real
    # abuse ceiling; limits this high are never reached, yet every hit is still counted, so
    # the limiter's cost stays in the figures.
    env |= {f"DIGITAL_ID_RATE_LIMIT_{name}": "1000000000" for name in RATE_LIMITS}
    command = [str(Path(sys.executable).with_name("digital-id")), "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    command += ["--metrics-port", str(free_port())]  # counted as in production, on a free port
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=log.parent,  # no stray .env file is read
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    parsed = make_url(database_url)
    server = Server(url, process, log, parsed.database if parsed.drivername != "sqlite" else None)
    try:
        wait_ready(server)
        wait_for_listeners(port, workers)
        yield server
    finally:
        stop(process)


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + SERVER_START_LIMIT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"server exited while starting:\n{server.log.read_text()}")
        try:
            if httpx.get(server.url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(
        f"server not ready after {SERVER_START_LIMIT_S:.0f} s:\n{server.log.read_text()}"
    )


def wait_for_listeners(port: int, workers: int, limit_s: float = 15.0) -> None:
    """Until each worker listens on its own socket (``serve`` gives each worker one, with
    SO_REUSEPORT): a run that starts while one is still starting would put every kept-alive
    connection on the others for the whole run. Gives up quietly after ``limit_s`` (one shared
    socket where SO_REUSEPORT is missing; not Linux)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and _listening_sockets(port) < workers:
        time.sleep(0.1)


def _listening_sockets(port: int) -> int:
    """Sockets in the LISTEN state (0A) on ``port``, from the kernel's table."""
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return 0
    local_port = f":{port:04X}"
    return sum(1 for line in lines if (f := line.split())[1].endswith(local_port) and f[3] == "0A")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server (uvicorn stops its workers); SIGKILL to its group if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


# --- a citizen's browser and the agency ------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode()
    return verifier, challenge.rstrip("=")


def hidden(page: httpx.Response, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page.text)
    if match is None:
        raise FlowError(f"{describe(page)}: no hidden field {name}")
    return html.unescape(match.group(1))


def describe(response: httpx.Response) -> str:
    request = response.request
    return f"{request.method} {request.url.path} answered {response.status_code}"


def expect(response: httpx.Response, status: int, marker: str | None = None) -> httpx.Response:
    if response.status_code != status or (marker is not None and marker not in response.text):
        body = response.text[:300].replace("\n", " ")
        raise FlowError(f"{describe(response)}, expected {status}: {body}")
    return response


class Citizen:
    """One virtual citizen: a browser (cookie jar) and the agency's back end it logs in to."""

    def __init__(self, url: str, agency: Agency, scope: str = SCOPE) -> None:
        self.url = url
        self.agency = agency
        self.scope = scope
        self.backend = self.client()  # the agency's server: keeps its connection open
        self.tokens: list[dict[str, Any]] = []  # every token response, for later phases

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=REQUEST_TIMEOUT_S, follow_redirects=False, verify=_TLS
        )

    def full_login(self, browser: httpx.Client, nik: str) -> dict[str, float]:
        """Authorization page, NIK and PIN, consent if asked, code, token, UserInfo."""
        timings: dict[str, float] = {}
        started = time.perf_counter()
        verifier, query = self._request()
        page = self._timed(timings, "authorize", lambda: browser.get("/authorize", params=query))
        expect(page, 200, 'name="pin"')
        form = {name: hidden(page, name) for name in ("csrf_token", "authorization_request")}
        answer = self._timed(
            timings,
            "login",
            lambda: browser.post("/authorize/login", data={**form, "nik": nik, "pin": PIN}),
        )
        self._consent_and_redeem(browser, timings, answer, query["state"], verifier)
        timings["flow"] = time.perf_counter() - started
        return timings

    def passkey_login(self, browser: httpx.Client, device: SoftPasskey) -> dict[str, float]:
        """Authorization page, the passkey's options and assertion in place of NIK and PIN
        (no argon2: the server's cost of checking an assertion), consent if asked, code,
        token, UserInfo."""
        timings: dict[str, float] = {}
        started = time.perf_counter()
        verifier, query = self._request()
        page = self._timed(timings, "authorize", lambda: browser.get("/authorize", params=query))
        expect(page, 200, 'name="pin"')
        form = {name: hidden(page, name) for name in ("csrf_token", "authorization_request")}
        options = self._timed(
            timings,
            "options",
            lambda: browser.post(
                "/passkeys/options", data={"csrf_token": form["csrf_token"], "purpose": "login"}
            ),
        )
        credential = device.get(expect(options, 200).text)
        answer = self._timed(
            timings,
            "login",
            lambda: browser.post(
                "/authorize/login", data={**form, "nik": "", "pin": "", "credential": credential}
            ),
        )
        self._consent_and_redeem(browser, timings, answer, query["state"], verifier)
        timings["flow"] = time.perf_counter() - started
        return timings

    def single_sign_on(self, browser: httpx.Client) -> dict[str, float]:
        """The browser has a session and the citizen has consented: a code at once."""
        timings: dict[str, float] = {}
        started = time.perf_counter()
        verifier, query = self._request()
        answer = self._timed(timings, "authorize", lambda: browser.get("/authorize", params=query))
        self._redeem(timings, answer, query["state"], verifier)
        timings["flow"] = time.perf_counter() - started
        return timings

    def _request(self) -> tuple[str, dict[str, str]]:
        verifier, challenge = pkce_pair()
        return verifier, {
            "response_type": "code",
            "client_id": self.agency.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": self.scope,
            "state": secrets.token_urlsafe(12),
            "nonce": secrets.token_urlsafe(12),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }

    def _consent_and_redeem(
        self,
        browser: httpx.Client,
        timings: dict[str, float],
        answer: httpx.Response,
        state: str,
        verifier: str,
    ) -> None:
        """Approve on the consent page if the login led there, then the code's redemption."""
        if answer.status_code == 200 and 'name="decision"' in answer.text:
            fields = ("csrf_token", "authorization_request", "login_proof")
            consent = {name: hidden(answer, name) for name in fields} | {"decision": "approve"}
            answer = self._timed(
                timings, "consent", lambda: browser.post("/authorize/consent", data=consent)
            )
        self._redeem(timings, answer, state, verifier)

    def _redeem(
        self, timings: dict[str, float], answer: httpx.Response, state: str, verifier: str
    ) -> None:
        expect(answer, 303)
        redirect = {
            k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()
        }
        if redirect.get("state") != state or "code" not in redirect:
            raise FlowError(f"{describe(answer)} without a code for this state: {sorted(redirect)}")
        form = {
            "grant_type": "authorization_code",
            "code": redirect["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        }
        auth = (self.agency.client_id, self.agency.secret)
        token = self._timed(
            timings, "token", lambda: self.backend.post("/token", data=form, auth=auth)
        )
        self.tokens.append(expect(token, 200).json())
        access_token = self.tokens[-1]["access_token"]
        bearer = {"Authorization": f"Bearer {access_token}"}
        info = self._timed(
            timings, "userinfo", lambda: self.backend.get("/userinfo", headers=bearer)
        )
        if "sub" not in expect(info, 200).json():
            raise FlowError(f"{describe(info)} without sub")

    @staticmethod
    def _timed(
        timings: dict[str, float], step: str, send: Callable[[], httpx.Response]
    ) -> httpx.Response:
        started = time.perf_counter()
        response = send()
        timings[step] = time.perf_counter() - started
        return response


# --- the phases ----------------------------------------------------------------------------


def run_phase(
    database: str,
    phase: str,
    server: Server,
    seeded: Seeded,
    concurrency: int,
    seconds: float,
    scope: str = SCOPE,
) -> PhaseResult:
    """``concurrency`` threads run flows back to back until ``seconds`` have passed."""
    niks = itertools.cycle(seeded.niks)  # consecutive citizens, so no two threads share one
    niks_lock = threading.Lock()
    lock = threading.Lock()
    citizens = [Citizen(server.url, seeded.agency, scope) for _ in range(concurrency)]
    browsers: list[httpx.Client] = []
    result = PhaseResult(database, phase, 0.0)
    if server.process.poll() is not None:
        result.errors.append("the server had exited before the phase")
        return result
    if phase == SSO:  # each browser logs in once, unmeasured, and keeps its session
        for citizen, nik in zip(citizens, seeded.niks, strict=False):
            browsers.append(citizen.client())
            try:
                citizen.full_login(browsers[-1], nik)
            except (FlowError, httpx.HTTPError) as exc:
                result.errors.append(f"logging in before the phase: {type(exc).__name__}: {exc}")
        if result.errors:
            return result
    sessions = database_sessions(server.database)
    cpu = CpuSnapshot.take(server)
    started = time.perf_counter()
    deadline = started + seconds

    def virtual_citizen(index: int) -> None:
        citizen = citizens[index]
        while time.perf_counter() < deadline:
            try:
                if phase == SSO:
                    timings = citizen.single_sign_on(browsers[index])
                else:
                    with niks_lock:
                        nik = next(niks)
                    with citizen.client() as browser:  # a new browser: no cookies
                        timings = citizen.full_login(browser, nik)
            except (FlowError, httpx.HTTPError) as exc:
                with lock:
                    result.errors.append(f"{type(exc).__name__}: {exc}")
                if server.process.poll() is not None:
                    return  # nothing left to measure
                continue
            with lock:
                for step, value in timings.items():
                    result.samples[step].append(value)

    threads = [threading.Thread(target=virtual_citizen, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    result.cpu = cpu.until(CpuSnapshot.take(server))
    result.connections = database_sessions(server.database) - sessions
    if (status := server.process.poll()) is not None:
        result.errors.append(f"the server exited during the phase, status {status}")
    for client in [*browsers, *(c.backend for c in citizens)]:
        client.close()
    result.tokens = [token for citizen in citizens for token in citizen.tokens]
    return result


def database_version(url: str, kind: str) -> str:
    if kind == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"
    engine = create_engine_for(url)
    with engine.connect() as connection:
        version = connection.execute(text("SHOW server_version")).scalar_one()
    engine.dispose()
    return f"PostgreSQL {str(version).split()[0]}"


def benchmark_database(
    kind: str, options: argparse.Namespace, workdir: Path
) -> tuple[list[PhaseResult], str]:
    directory = workdir / kind
    directory.mkdir()
    url, name = fresh_database(kind, directory)
    try:
        version = database_version(url, kind)
        seeded = seed(url, directory / "keys", directory)
        print(
            f"{kind}: seeded {len(seeded.niks)} citizens with PINs and one agency "
            f"in {seeded.seconds:.1f} s (not measured)",
            flush=True,
        )
        results = []
        with serving(url, directory / "keys", options.workers, directory / "server.log") as server:
            for phase in (FULL_LOGIN, SSO):
                result = run_phase(
                    kind, phase, server, seeded, options.concurrency, options.seconds
                )
                results.append(result)
                print(
                    f"{kind} {phase}: {result.flows} flows, {len(result.errors)} errors",
                    flush=True,
                )
        if any(result.errors for result in results):
            print(f"--- {kind} server log ({server.log}) ---")
            print(server.log.read_text()[-20_000:])
        return results, version
    finally:
        drop_database(name)


# --- the report --------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}" if seconds >= 0.0095 else f"{seconds * 1000:.1f}"


def print_result(result: PhaseResult) -> None:
    per_flow = 1000 / (result.flows or 1)
    cpu = result.cpu
    print(
        f"\n{result.database} {result.phase}: {result.flows} flows in {result.seconds:.1f} s, "
        f"{result.rate:.1f} flows/s, {len(result.errors)} errors"
    )
    print(
        f"  CPU per flow: server {cpu.server * per_flow:.0f} ms, PostgreSQL "
        f"{cpu.database * per_flow:.0f} ms, load generator {cpu.load * per_flow:.0f} ms, "
        f"kernel and other processes {cpu.other * per_flow:.0f} ms; "
        f"machine busy {result.share(cpu.machine):.0%}"
    )
    if result.connections:
        print(
            f"  PostgreSQL connections opened by the server: {result.connections} "
            f"({result.connections / (result.flows or 1):.1f} per flow)"
        )
    if result.disturbed:
        print(
            f"  WARNING: {result.share(cpu.other):.0%} of the machine went to the kernel and other "
            "processes; with the server competing for the cores, these figures understate it"
        )
    print(f"  {'step':<12}{'count':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    for step in STEPS:
        values = result.samples[step]
        if values:
            print(
                f"  {step:<12}{len(values):>7}{ms(percentile(values, 0.5)):>9}"
                f"{ms(percentile(values, 0.95)):>9}{ms(percentile(values, 0.99)):>9}"
            )
    for error in sorted(set(result.errors))[:20]:
        print(f"  ERROR ({result.errors.count(error)}x): {error}")


def floor_problems(result: PhaseResult, *, limits: bool) -> list[str]:
    """Why ``result`` misses a floor: failures always, latency and rate if ``limits``."""
    problems = []
    if result.errors:
        problems.append(f"{len(result.errors)} flows failed")
    if result.flows == 0:
        return [*problems, "no flow completed"]
    if not limits:
        return problems
    p95 = percentile(result.samples["flow"], 0.95) * 1000
    p95_floor, rate_floor = (
        (FULL_LOGIN_FLOW_P95_FLOOR_MS, FULL_LOGIN_RATE_FLOOR)
        if result.phase == FULL_LOGIN
        else (SSO_FLOW_P95_FLOOR_MS, SSO_RATE_FLOOR)
    )
    if p95 > p95_floor:
        problems.append(f"flow p95 {p95:.0f} ms, needs < {p95_floor:.0f} ms")
    if result.rate < rate_floor:
        problems.append(f"{result.rate:.1f} flows/s, needs >= {rate_floor:.0f}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--databases", default="sqlite,postgresql")
    options = parser.parse_args()
    if not 1 <= options.concurrency <= CITIZENS:
        parser.error(f"--concurrency must be between 1 and {CITIZENS}")

    hashes = pin_hash_seconds()
    results: list[PhaseResult] = []
    versions: list[str] = []
    with tempfile.TemporaryDirectory(prefix="digital-id-bench-") as tmp:
        for kind in options.databases.split(","):
            database_results, version = benchmark_database(kind, options, Path(tmp))
            results += database_results
            versions.append(version)

    print()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.platform()}; {', '.join(versions)}"
    )
    fields = Settings.model_fields
    print(
        f"server: digital-id serve --workers {options.workers}; load: {options.concurrency} "
        f"virtual citizens on the same machine, {options.seconds:.0f} s per phase"
    )
    print(
        f"one PIN verification in-process (argon2id {fields['pin_argon2_memory_kib'].default} KiB, "
        f"t={fields['pin_argon2_time_cost'].default}, p=1): median {ms(statistics.median(hashes))} ms, "
        f"min {ms(min(hashes))} ms over {len(hashes)}: the main cost of the login step, which "
        "verifies one (a single sign-on verifies none)"
    )
    for result in results:
        print_result(result)

    check_floors = (options.concurrency, options.workers) == (DEFAULT_CONCURRENCY, DEFAULT_WORKERS)
    failed = False
    print()
    for result in results:
        problems = floor_problems(result, limits=check_floors)
        if problems:
            failed = True
            print(f"FLOOR MISSED, {result.database} {result.phase}: {'; '.join(problems)}")
            if result.disturbed:
                print("  (other processes took part of the machine: run again when it is quiet)")
    if not check_floors:
        print(
            f"latency and rate floors apply at --concurrency {DEFAULT_CONCURRENCY} "
            f"--workers {DEFAULT_WORKERS} only; not checked"
        )
    print(
        "floor:",
        "MISSED"
        if failed
        else (
            f"met (no failed flow; full login p95 < {FULL_LOGIN_FLOW_P95_FLOOR_MS:.0f} ms and "
            f">= {FULL_LOGIN_RATE_FLOOR:.0f}/s; single sign-on p95 < {SSO_FLOW_P95_FLOOR_MS:.0f} ms "
            f"and >= {SSO_RATE_FLOOR:.0f}/s)"
        ),
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
