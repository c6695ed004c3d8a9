"""Load benchmark: the server's throughput and latency per endpoint, against the machine's limits.

    .venv/bin/python -m benchmarks.load_benchmark [--seconds 10] [--only login,userinfo]
                                                  [--databases postgresql,sqlite]
                                                  [--connections 16]

First it measures the machine's own ceilings, in separate processes on this machine: argon2id
PIN verifications per second at the production parameters, RS256 and ES256 signatures per
second (a whole access token, as the server signs it), each on 1 and 2 processes, and
single-row PostgreSQL insert transactions per second on 1 and 4 connections.

Then, for each database, a fresh database and key store (seeded as ``login_benchmark`` seeds
them: citizens with PINs at the production argon2id parameters, an agency), three more
clients (an agency with offline access, a machine client with ``client_secret_basic`` and one
with ``private_key_jwt`` and an ES256 key), and ``digital-id serve`` on a free port: 2 workers
on PostgreSQL, 1 on SQLite. Each scenario runs twice, ``--seconds`` each:

- "peak": closed loop, ``--connections`` connections sending back to back: the most it serves;
- "half": open loop at half the peak rate (requests sent on a fixed schedule whether or not
  earlier ones have been answered), for the latency a server sees when it is not saturated.

Scenarios: ``discovery`` (the provider metadata), ``jwks`` (the JWK Set), ``client_secret_basic`` and
``private_key_jwt`` (client credentials grants; every assertion pre-signed with its own jti),
``dpop`` (``client_secret_basic`` with a DPoP proof per request, each pre-signed with its own
jti and the server's nonce: the token comes back bound to the key),
``login`` (a new browser each time: authorize, login page, NIK and PIN, consent when first
asked, code, token, UserInfo), ``passkey`` (the same with a passkey in place of NIK and PIN:
no argon2, the server's cost of the WebAuthn options and of checking an assertion; each
citizen's passkey enrolled through the real ceremony first, unmeasured), ``userinfo`` (access tokens from the logins) and ``refresh``
(each request presents the newest refresh token of its family, taken from the previous
answer). The HTTP scenarios are driven by ``wrk`` (Debian: ``apt-get install wrk``), which
costs the server far less CPU than a Python client would; the login, a multi-step flow with
HTML forms, by Python threads (``login_benchmark``'s virtual citizens).

Prints a table (scenario, database, run, requests/s, p50/p95/p99, errors, CPU per request of
the server, PostgreSQL and the load generator, how busy the machine was, each worker's share
of the workers' CPU), each worker's peak memory, the ceilings and each scenario's share of
its ceiling, and the issue's floors met or missed. Exits 1 if a request failed, or if in any
run one worker of several took more than 75 % of the workers' CPU (the run is named): the
workers must share the load. The floors are for reading and fail nothing, with ``uptime``'s
load shown so a busy machine is visible.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import itertools
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import psycopg
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy import make_url
from sqlalchemy.orm import Session

from benchmarks.import_benchmark import drop_database, fresh_database, percentile
from benchmarks.login_benchmark import (
    PIN,
    Agency,
    Citizen,
    CpuSnapshot,
    CpuTimes,
    FlowError,
    Seeded,
    Server,
    database_sessions,
    database_version,
    production_hasher,
    register_agency,
    run_phase,
    seed,
    serving,
)
from digital_id.accounts import passkeys
from digital_id.accounts.lookup import existing_account
from digital_id.accounts.pins import PinHasher
from digital_id.audit.trail import EventContext
from digital_id.db.engine import create_engine_for
from digital_id.db.types import utc_now
from digital_id.keys.store import KeyStore
from digital_id.registry.service import find_by_nik
from tests.passkey_authenticator import SoftPasskey

SCENARIOS = (
    "discovery",
    "jwks",
    "client_secret_basic",
    "private_key_jwt",
    "dpop",
    "login",
    "passkey",
    "userinfo",
    "refresh",
)
WORKERS = {"postgresql": 2, "sqlite": 1}
OFFLINE_SCOPE = "openid profile offline_access"
MACHINE_SCOPE = "pajak.read"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Assertions are signed before a run and each is used once: enough for this rate, per second.
# A run faster than this replays some (the server refuses them: counted as errors).
ASSERTION_POOL_RATE = 5_000
LOGIN_CONCURRENCY = 8  # virtual citizens in the closed loop (the login benchmark's default)
OPEN_LOOP_BROWSERS = 32  # threads that may be mid-flow at once in the open loop
CEILING_SECONDS = 2.0
WRK_TIMEOUT = "10s"
# The floors on a 2-core machine, server and load generator together (for reading).
FLOOR_LOGIN_SHARE_OF_ARGON2 = 0.45
FLOOR_RATES = {
    "client_secret_basic": 3_000.0,
    "private_key_jwt": 2_000.0,
    # Issue 16: part 3's client_credentials floor holds with the proof's verification counted.
    "dpop": 3_000.0,
    "refresh": 1_200.0,
    "userinfo": 2_500.0,
    "discovery": 20_000.0,
    "jwks": 20_000.0,
}
FLOOR_HALF_P99_S = 0.050
FLOOR_WORKER_MB = 200.0
# One worker of several taking more than this share of the workers' CPU fails the run: the
# load was not shared. Runs in which the workers used less CPU than the minimum are not judged.
MAX_WORKER_SHARE = 0.75
MIN_JUDGED_CPU_SECONDS = 0.2

# One wrk script for every HTTP scenario; the Python side passes the scenario, a file of
# tokens or assertions, and the open loop's rate. In the open loop ``delay`` holds each
# request until its slot on a fixed schedule (LuaJIT's ffi reads the monotonic clock: Lua's
# own clock is CPU time); a request that cannot go at its slot (every connection busy) goes
# as soon as one frees, and is counted as late.
_WRK_SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } dgid_timespec;
int clock_gettime(int clock, dgid_timespec *ts);
]]
local clock = ffi.new("dgid_timespec")
local function now()
  ffi.C.clock_gettime(1, clock)
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) * 1e-9
end

local threads = {}
function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

local scenario, pool, head, tail, position, interval, next_slot, headers
late = 0
function init(args)
  scenario = args[1]
  local count = tonumber(args[3])
  interval = tonumber(args[4]) > 0 and 1 / tonumber(args[4]) or 0
  pool, head, tail, position = {}, 1, 0, 0
  if args[2] ~= "-" then
    local i = 0
    for line in io.lines(args[2]) do
      if i % count == index then
        tail = tail + 1
        pool[tail] = line
      end
      i = i + 1
    end
  end
  headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
  if args[5] ~= "-" then headers["Authorization"] = "Basic " .. args[5] end
end

function request()
  if scenario == "discovery" then
    return wrk.format("GET", "/.well-known/openid-configuration")
  elseif scenario == "jwks" then
    return wrk.format("GET", "/jwks")
  elseif scenario == "client_secret_basic" then
    return wrk.format("POST", "/token", headers,
      "grant_type=client_credentials&scope=MACHINE_SCOPE")
  elseif scenario == "private_key_jwt" then
    position = position % tail + 1
    return wrk.format("POST", "/token", headers,
      "grant_type=client_credentials&scope=MACHINE_SCOPE&client_assertion_type=ASSERTION_TYPE"
      .. "&client_assertion=" .. pool[position])
  elseif scenario == "dpop" then
    position = position % tail + 1
    return wrk.format("POST", "/token", {
        ["Content-Type"] = headers["Content-Type"], ["Authorization"] = headers["Authorization"],
        ["DPoP"] = pool[position]},
      "grant_type=client_credentials&scope=MACHINE_SCOPE")
  elseif scenario == "userinfo" then
    position = position % tail + 1
    return wrk.format("GET", "/userinfo", {["Authorization"] = "Bearer " .. pool[position]})
  elseif scenario == "refresh" then
    local token = "none-left"
    if head <= tail then
      token = pool[head]
      pool[head] = nil
      head = head + 1
    end
    return wrk.format("POST", "/token", headers,
      "grant_type=refresh_token&refresh_token=" .. token)
  end
end

function done(summary, latency, requests)
  local late_total = 0
  for _, thread in ipairs(threads) do late_total = late_total + (thread:get("late") or 0) end
  local e = summary.errors
  io.write(string.format(
    'WRK-RESULT {"requests":%d,"duration_us":%d,"p50":%d,"p95":%d,"p99":%d,"max":%d,'
    .. '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"late":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout,
    late_total))
end
"""
# Only the refresh scenario reads answers (the next token of the family); wrk parses a body
# for Lua only when a ``response`` function exists.
_WRK_RESPONSE = r"""
function response(status, headers, body)
  if status == 200 then
    local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if token then
      tail = tail + 1
      pool[tail] = token
    end
  end
end
"""
_WRK_DELAY = r"""
function delay()
  local t = now()
  if next_slot == nil then next_slot = t end
  next_slot = next_slot + interval
  local wait = next_slot - t
  if wait < 0 then
    late = late + 1
    return 0
  end
  return math.floor(wait * 1000)
end
"""


@dataclass
class Run:
    """One scenario on one database, closed loop ("peak") or open loop ("half")."""

    database: str
    scenario: str
    mode: str
    requests: int = 0
    seconds: float = 0.0
    latencies: tuple[float, float, float] = (0.0, 0.0, 0.0)  # p50, p95, p99 in seconds
    errors: int = 0
    cpu: CpuTimes = field(default_factory=lambda: CpuTimes(0.0, 0.0, 0.0, 0.0))
    offered: float = 0.0  # the open loop's schedule, requests/s
    late: int = 0  # open loop: requests that could not go at their slot
    connections: int = 0  # PostgreSQL connections the server opened during the run
    notes: list[str] = field(default_factory=list)
    worker_cpu: dict[int, float] = field(default_factory=dict)  # CPU seconds by worker pid

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def worker_shares(self) -> dict[int, float]:
        total = sum(self.worker_cpu.values())
        return {pid: used / total for pid, used in self.worker_cpu.items()} if total else {}

    @property
    def imbalanced(self) -> bool:
        """One worker of several took more than ``MAX_WORKER_SHARE`` of the workers' CPU."""
        judged = sum(self.worker_cpu.values()) >= MIN_JUDGED_CPU_SECONDS
        shares = self.worker_shares()
        return len(shares) > 1 and judged and max(shares.values()) > MAX_WORKER_SHARE

    def share(self, cpu_seconds: float) -> float:
        capacity = self.seconds * (os.cpu_count() or 1)
        return cpu_seconds / capacity if capacity else 0.0


@dataclass
class Clients:
    offline: Agency  # logs citizens in with offline access (refresh tokens)
    machine_basic: Agency
    machine_jwt: Agency
    machine_key: ECKey


@dataclass
class Tokens:
    """What the logins left behind, for UserInfo and refresh."""

    access: list[str] = field(default_factory=list)
    refresh: list[str] = field(default_factory=list)
    # The seeded citizens' passkeys, by NIK, for the passkey scenario.
    passkeys: dict[str, SoftPasskey] = field(default_factory=dict)

    def add(self, responses: list[dict[str, Any]]) -> None:
        self.access += [r["access_token"] for r in responses]
        self.refresh += [r["refresh_token"] for r in responses if "refresh_token" in r]


# --- the machine's ceilings ------------------------------------------------------------------


@dataclass(frozen=True)
class Ceiling:
    what: str
    processes: int
    per_second: float


def _argon2_worker(start_at: float, seconds: float) -> int:
    with tempfile.TemporaryDirectory(prefix="digital-id-bench-keys-") as tmp:
        hasher: PinHasher = production_hasher(
            KeyStore(Path(tmp), "ceiling-" + secrets.token_hex(8))
        )
    stored = hasher.hash(PIN)
    return _count_until(start_at, seconds, lambda: hasher.verify(stored, PIN))


def _signing_worker(alg: str, start_at: float, seconds: float) -> int:
    key = (
        RSAKey.generate_key(2048, parameters={"alg": alg, "kid": "k"})
        if alg == "RS256"
        else ECKey.generate_key("P-256", parameters={"alg": alg, "kid": "k"})
    )
    header = {"alg": alg, "kid": "k", "typ": "at+jwt"}
    claims = {
        "iss": "https://id.example.go.id",
        "sub": secrets.token_urlsafe(32),
        "aud": "agency",
        "client_id": "agency",
        "iat": int(time.time()),
        "exp": int(time.time()) + 300,
        "jti": secrets.token_urlsafe(24),
        "scope": "openid profile",
    }
    return _count_until(start_at, seconds, lambda: jwt.encode(header, claims, key))


def _insert_worker(conninfo: str, start_at: float, seconds: float) -> int:
    with psycopg.connect(conninfo, autocommit=True) as connection:
        statement = "INSERT INTO bench_ceiling (payload) VALUES (%s)"
        payload = secrets.token_hex(32)
        return _count_until(start_at, seconds, lambda: connection.execute(statement, (payload,)))


def _count_until(start_at: float, seconds: float, work: Callable[[], object]) -> int:
    # Every process starts and stops on the same wall clock, so their windows overlap.
    time.sleep(max(0.0, start_at - time.time()))
    deadline = start_at + seconds
    done = 0
    while time.time() < deadline:
        work()
        done += 1
    return done


def in_processes(processes: int, worker: Callable[..., int], *args: Any) -> float:
    """Operations per second over ``processes`` processes running ``worker`` at once."""
    with concurrent.futures.ProcessPoolExecutor(max_workers=processes) as pool:
        start_at = time.time() + 1.0  # after every process has started and set up
        futures = [pool.submit(worker, *args, start_at, CEILING_SECONDS) for _ in range(processes)]
        return sum(future.result() for future in futures) / CEILING_SECONDS


def cpu_ceilings() -> list[Ceiling]:
    ceilings = []
    for processes in (1, 2):
        rate = in_processes(processes, _argon2_worker)
        ceilings.append(Ceiling("argon2id verifications", processes, rate))
    for alg in ("RS256", "ES256"):
        for processes in (1, 2):
            rate = in_processes(processes, _signing_worker, alg)
            ceilings.append(Ceiling(f"{alg} signatures", processes, rate))
    return ceilings


def insert_ceilings(url: str) -> list[Ceiling]:
    """Autocommitted single-row inserts into a scratch table of the benchmark's database."""
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE bench_ceiling (id bigserial PRIMARY KEY, "
            "at timestamptz NOT NULL DEFAULT now(), payload text NOT NULL)"
        )
    try:
        return [
            Ceiling(
                "PostgreSQL single-row insert transactions",
                connections,
                in_processes(connections, _insert_worker, conninfo),
            )
            for connections in (1, 4)
        ]
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute("DROP TABLE bench_ceiling")


def ceiling(ceilings: list[Ceiling], what: str, processes: int) -> float | None:
    return next(
        (c.per_second for c in ceilings if c.what == what and c.processes == processes), None
    )


# --- seeding (not measured) ------------------------------------------------------------------


def register_clients(url: str) -> Clients:
    key = ECKey.generate_key("P-256", parameters={"alg": "ES256"}, auto_kid=True)
    engine = create_engine_for(url)
    machine = {"grant_types": ["client_credentials"], "redirect_uris": [], "scope": MACHINE_SCOPE}
    with Session(engine) as session, session.begin():
        clients = Clients(
            offline=register_agency(
                session,
                grant_types=["authorization_code", "refresh_token"],
                scope="openid profile nik address offline_access",
            ),
            machine_basic=register_agency(session, **machine),
            machine_jwt=register_agency(
                session,
                **machine,
                token_endpoint_auth_method="private_key_jwt",
                jwks=KeySet([key]).as_dict(private=False),
            ),
            machine_key=key,
        )
    engine.dispose()
    return clients


def signed_assertions(clients: Clients, audience: str, count: int) -> list[str]:
    """Client assertions for ``private_key_jwt``, each with its own jti, valid for 280 s (the
    server takes none valid for longer than 300 s)."""
    key = clients.machine_key
    header = {"alg": "ES256", "kid": key.kid}
    now = int(time.time())
    client_id = clients.machine_jwt.client_id
    return [
        jwt.encode(
            header,
            {
                "iss": client_id,
                "sub": client_id,
                "aud": audience,
                "iat": now,
                "exp": now + 280,
                "jti": secrets.token_urlsafe(16),
            },
            key,
        )
        for _ in range(count)
    ]


def dpop_proofs(clients: Clients, token_url: str, count: int) -> list[str]:
    """DPoP proofs for the token endpoint (RFC 9449), one key, each with its own jti and the
    server's current nonce (learnt as a client learns it: from the refusal of a proof without
    one), good for 60 s from now."""
    key = ECKey.generate_key("P-256")
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}

    def proof(**extra: str) -> str:
        claims = {"jti": secrets.token_urlsafe(16), "htm": "POST", "htu": token_url}
        return jwt.encode(header, {**claims, "iat": int(time.time()), **extra}, key)

    refused = httpx.post(
        token_url,
        data={"grant_type": "client_credentials", "scope": MACHINE_SCOPE},
        auth=(clients.machine_basic.client_id, clients.machine_basic.secret or ""),
        headers={"DPoP": proof()},
    )
    nonce = refused.headers["dpop-nonce"]
    return [proof(nonce=nonce) for _ in range(count)]


def basic_credentials(agency: Agency) -> str:
    return base64.b64encode(f"{agency.client_id}:{agency.secret}".encode()).decode()


# --- running the load ------------------------------------------------------------------------


@contextmanager
def measured(run: Run, server: Server) -> Iterator[None]:
    """The run's wall time and CPU: the server's, PostgreSQL's, this process's and wrk's."""
    sessions = database_sessions(server.database)
    cpu = CpuSnapshot.take(server)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    yield
    run.seconds = run.seconds or time.perf_counter() - started
    run.connections = database_sessions(server.database) - sessions
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = cpu.until(CpuSnapshot.take(server))
    wrk = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    run.cpu = replace(used, load=used.load + wrk)


def run_wrk(
    run: Run,
    server: Server,
    workdir: Path,
    *,
    connections: int,
    seconds: float,
    pool: list[str] | None = None,
    basic: str | None = None,
) -> None:
    script = workdir / f"{run.scenario}-{run.mode}.lua"
    text = _WRK_SCRIPT.replace("MACHINE_SCOPE", MACHINE_SCOPE).replace(
        "ASSERTION_TYPE", ASSERTION_TYPE.replace(":", "%3A")
    )
    if run.scenario == "refresh":
        text += _WRK_RESPONSE
    if run.offered:
        text += _WRK_DELAY
    script.write_text(text)
    pool_file = "-"
    if pool is not None:
        pool_path = workdir / f"{run.scenario}-{run.mode}.pool"
        pool_path.write_text("\n".join(pool) + "\n")
        pool_file = str(pool_path)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--timeout", WRK_TIMEOUT]
    command += ["-s", str(script), server.url, "--", run.scenario, pool_file, "1"]
    command += [f"{run.offered:.3f}", basic or "-"]
    with measured(run, server):
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
    line = next((x for x in finished.stdout.splitlines() if x.startswith("WRK-RESULT ")), None)
    if finished.returncode != 0 or line is None:
        run.errors += 1
        run.notes.append(f"wrk failed: {(finished.stdout + finished.stderr)[-500:]}")
        return
    result = json.loads(line.removeprefix("WRK-RESULT "))
    run.requests = result["requests"]
    run.seconds = result["duration_us"] / 1e6
    run.latencies = (result["p50"] / 1e6, result["p95"] / 1e6, result["p99"] / 1e6)
    run.errors += sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    run.late = result["late"]


def run_logins(run: Run, server: Server, seeded: Seeded, tokens: Tokens, *, seconds: float) -> None:
    """Complete logins by Python virtual citizens: closed loop (the login benchmark's phase)
    or, with ``run.offered``, started on a fixed schedule, latency counted from the slot."""
    if not run.offered:
        phase = run_phase(
            run.database, "full login", server, seeded, LOGIN_CONCURRENCY, seconds, OFFLINE_SCOPE
        )
        run.requests, run.seconds, run.cpu = phase.flows, phase.seconds, phase.cpu
        run.connections = phase.connections
        flows = phase.samples["flow"]
        run.errors = len(phase.errors)
        run.notes += sorted(set(phase.errors))[:5]
        run.notes.append(f"{len(phase.samples['consent'])} of {phase.flows} flows asked consent")
        tokens.add(phase.tokens)
    else:
        flows, errors, responses = [], [], []
        lock = threading.Lock()
        niks = itertools.cycle(seeded.niks)
        local = threading.local()

        def flow(slot: float, nik: str) -> None:
            if not hasattr(local, "citizen"):
                local.citizen = Citizen(server.url, seeded.agency, OFFLINE_SCOPE)
            citizen: Citizen = local.citizen
            try:
                with citizen.client() as browser:
                    citizen.full_login(browser, nik)
            except (FlowError, httpx.HTTPError) as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                return
            with lock:
                flows.append(time.perf_counter() - slot)
                responses.append(citizen.tokens.pop())

        count = int(run.offered * seconds)
        with (
            measured(run, server),
            concurrent.futures.ThreadPoolExecutor(OPEN_LOOP_BROWSERS) as executor,
        ):
            started = time.perf_counter()
            for i in range(count):
                slot = started + i / run.offered
                time.sleep(max(0.0, slot - time.perf_counter()))
                if time.perf_counter() - slot > 0.01:
                    run.late += 1
                executor.submit(flow, slot, next(niks))
        run.seconds = time.perf_counter() - started
        run.requests, run.errors = len(flows), len(errors)
        run.notes += sorted(set(errors))[:5]
        tokens.add(responses)
    run.latencies = tuple(percentile(flows, q) for q in (0.5, 0.95, 0.99))  # type: ignore[assignment]


def enrolled_passkeys(url: str, server: Server, seeded: Seeded) -> dict[str, SoftPasskey]:
    """A passkey for each seeded citizen, enrolled through the real ceremony (options, the
    software authenticator's answer, verification), straight on the database: unmeasured."""
    rp = passkeys.relying_party(server.url)
    devices: dict[str, SoftPasskey] = {}
    engine = create_engine_for(url)
    with Session(engine) as session, session.begin():
        for nik in seeded.niks[: LOGIN_CONCURRENCY * 8]:
            citizen = find_by_nik(session, nik)
            account = existing_account(session, citizen)
            if citizen is None or account is None:
                continue
            device = SoftPasskey(rp_id=rp.rp_id, origin=rp.origin)
            options = passkeys.enrolment_options(session, rp, citizen, account, utc_now())
            passkeys.enrol(
                session, rp, citizen.id, device.create(options), name="benchmark",
                now=utc_now(), events=EventContext(),
            )  # fmt: skip
            devices[nik] = device
    engine.dispose()
    return devices


def run_passkey_logins(
    run: Run, server: Server, seeded: Seeded, tokens: Tokens, *, seconds: float
) -> None:
    """Logins with a passkey alone, by Python virtual citizens: closed loop, each of
    ``LOGIN_CONCURRENCY`` threads with passkeys of its own (an authenticator's counter must
    grow, so one passkey is never used twice at once), or open loop at ``run.offered``, each
    passkey taken by one flow at a time."""
    devices = tokens.passkeys
    free: list[str] = list(devices)
    flows: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    local = threading.local()

    def flow(slot: float) -> None:
        if not hasattr(local, "citizen"):
            local.citizen = Citizen(server.url, seeded.agency, OFFLINE_SCOPE)
        citizen: Citizen = local.citizen
        with lock:
            nik = free.pop()
        try:
            with citizen.client() as browser:
                citizen.passkey_login(browser, devices[nik])
        except (FlowError, httpx.HTTPError) as exc:
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
            return
        finally:
            with lock:
                free.insert(0, nik)
        with lock:
            flows.append(time.perf_counter() - slot)
            tokens.add([citizen.tokens.pop()])

    with (
        measured(run, server),
        concurrent.futures.ThreadPoolExecutor(
            OPEN_LOOP_BROWSERS if run.offered else LOGIN_CONCURRENCY
        ) as executor,
    ):
        started = time.perf_counter()
        if run.offered:
            for i in range(int(run.offered * seconds)):
                slot = started + i / run.offered
                time.sleep(max(0.0, slot - time.perf_counter()))
                if time.perf_counter() - slot > 0.01:
                    run.late += 1
                executor.submit(flow, slot)
        else:

            def loop() -> None:
                while time.perf_counter() - started < seconds:
                    flow(time.perf_counter())

            for _ in range(LOGIN_CONCURRENCY):
                executor.submit(loop)
    run.seconds = time.perf_counter() - started
    run.requests, run.errors = len(flows), len(errors)
    run.notes += sorted(set(errors))[:5]
    run.latencies = tuple(percentile(flows, q) for q in (0.5, 0.95, 0.99))  # type: ignore[assignment]


def run_scenario(
    scenario: str,
    mode: str,
    database: str,
    server: Server,
    seeded: Seeded,
    clients: Clients,
    tokens: Tokens,
    workdir: Path,
    options: argparse.Namespace,
    offered: float = 0.0,
) -> Run:
    run = Run(database, scenario, mode, offered=offered)
    before = {pid: cpu_seconds(pid) for pid in worker_pids(server)}
    with profiled(run, server, options):
        _run_scenario(run, server, seeded, clients, tokens, workdir, options)
    after = {pid: cpu_seconds(pid) for pid in worker_pids(server)}
    # A worker that ended during the run is missing from ``after``; its replacement counts
    # from zero.
    run.worker_cpu = {pid: used - before.get(pid, 0.0) for pid, used in after.items()}
    return run


def _run_scenario(
    run: Run,
    server: Server,
    seeded: Seeded,
    clients: Clients,
    tokens: Tokens,
    workdir: Path,
    options: argparse.Namespace,
) -> Run:
    scenario, offered, seconds = run.scenario, run.offered, options.seconds
    wrk = {"connections": options.connections, "seconds": seconds, "server": server}
    if scenario == "login":
        run_logins(run, server, seeded, tokens, seconds=seconds)
    elif scenario == "passkey":
        run_passkey_logins(run, server, seeded, tokens, seconds=seconds)
    elif scenario in ("discovery", "jwks"):
        run_wrk(run, workdir=workdir, **wrk)
    elif scenario == "client_secret_basic":
        run_wrk(run, workdir=workdir, basic=basic_credentials(clients.machine_basic), **wrk)
    elif scenario == "private_key_jwt":
        count = int((offered * 1.1 if offered else ASSERTION_POOL_RATE) * seconds) + 100
        pool = signed_assertions(clients, server.url, count)  # the issuer
        run_wrk(run, workdir=workdir, pool=pool, **wrk)
    elif scenario == "dpop":
        count = int((offered * 1.1 if offered else ASSERTION_POOL_RATE) * seconds) + 100
        pool = dpop_proofs(clients, server.url + "/token", count)
        basic = basic_credentials(clients.machine_basic)
        run_wrk(run, workdir=workdir, pool=pool, basic=basic, **wrk)
    elif scenario == "userinfo":
        run_wrk(run, workdir=workdir, pool=tokens.access, **wrk)
    elif scenario == "refresh":
        # Each family's newest token, once; wrk hands each answer's new token on.
        pool, tokens.refresh = tokens.refresh, []
        run_wrk(run, workdir=workdir, pool=pool, basic=basic_credentials(clients.offline), **wrk)
        if run.errors:
            run.notes.append("a failed refresh loses its family for the rest of the run")
        # The families' newest tokens are inside wrk now: the next run needs new ones.
    else:
        raise ValueError(f"no driver for the scenario {scenario}")
    return run


@contextmanager
def profiled(run: Run, server: Server, options: argparse.Namespace) -> Iterator[None]:
    """With ``--profile``, py-spy samples every server process through a peak run."""
    if options.profile is None or run.mode != "peak":
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    output = options.profile / f"{run.database}-{run.scenario}.txt"
    command = [spy, "record", "--pid", str(server.process.pid), "--subprocesses"]
    command += ["--format", "raw", "--rate", "100", "--nonblocking", "--gil", "-o", str(output)]
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        recorder.wait(30)
    if output.exists():
        run.notes += [f"profile {output}:", *profile_summary(output)]


def profile_summary(path: Path, top: int = 12) -> list[str]:
    """The frames the server spent its samples in: by itself (leaf) and with callees
    (inclusive), from py-spy's collapsed stacks; only the thread holding the GIL is sampled
    (``--gil``), so the shares are of the server's Python CPU, not of threads waiting."""
    leaf: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")[1:]  # the first is the process
        total += count
        if frames:
            leaf[frames[-1]] = leaf.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    lines = [f"  {total} samples; by itself:"]
    for frame, count in sorted(leaf.items(), key=lambda x: -x[1])[:top]:
        lines.append(f"    {count / total:5.1%} {frame}")
    lines.append("  with callees, this project's frames:")
    ours = [(f, c) for f, c in inclusive.items() if "digital_id" in f]
    for frame, count in sorted(ours, key=lambda x: -x[1])[:top]:
        lines.append(f"    {count / total:5.1%} {frame}")
    return lines


def mint_tokens(server: Server, seeded: Seeded, tokens: Tokens, families: int) -> None:
    """Enough logins for ``families`` refresh token families, unmeasured (when the login
    scenario did not run, or its tokens were used up)."""
    citizens = [Citizen(server.url, seeded.agency, OFFLINE_SCOPE) for _ in range(4)]
    niks = iter(seeded.niks * (families // len(seeded.niks) + 1))

    def log_in(citizen: Citizen, count: int) -> None:
        for _ in range(count):
            with citizen.client() as browser:
                citizen.full_login(browser, next(niks))

    per_citizen = families // len(citizens) + 1
    with concurrent.futures.ThreadPoolExecutor(len(citizens)) as executor:
        for future in [executor.submit(log_in, c, per_citizen) for c in citizens]:
            future.result()
    for citizen in citizens:
        tokens.add(citizen.tokens)
        citizen.backend.close()


# --- the server's workers ---------------------------------------------------------------------


def worker_pids(server: Server) -> list[int]:
    """The processes that serve requests: the workers the supervisor started (fresh
    interpreters, ``spawn_main`` in their command line), or with one worker the server's own
    process."""
    pid = server.process.pid
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    workers = []
    for child in children:
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.append(int(child))
        except OSError:  # ended meanwhile
            continue
    return workers or [pid]


def cpu_seconds(pid: int) -> float:
    """User and system CPU the process has used, from /proc/<pid>/stat (0 once it ended)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_memory(server: Server) -> dict[int, tuple[float, float]]:
    """Resident and peak resident MB of each process of the server (the supervisor and its
    workers; with one worker, the one process)."""
    found = {}
    for pid in {server.process.pid, *worker_pids(server)}:
        status = Path(f"/proc/{pid}/status")
        try:
            fields = dict(
                line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
            )
        except OSError:
            continue
        rss = float(fields.get("VmRSS", "0 kB").split()[0]) / 1024
        peak = float(fields.get("VmHWM", "0 kB").split()[0]) / 1024
        found[pid] = (rss, peak)
    return found


# --- one database ------------------------------------------------------------------------------


@dataclass
class DatabaseResult:
    database: str
    version: str
    workers: int
    runs: list[Run]
    memory: dict[int, tuple[float, float]]
    supervisor: int


def benchmark_database(
    kind: str, scenarios: list[str], options: argparse.Namespace, workdir: Path
) -> tuple[DatabaseResult, list[Ceiling]]:
    directory = workdir / kind
    directory.mkdir()
    url, name = fresh_database(kind, directory)
    ceilings: list[Ceiling] = []
    try:
        if kind == "postgresql" and not options.no_ceilings:
            print("ceilings: PostgreSQL inserts ...", flush=True)
            ceilings = insert_ceilings(url)
        version = database_version(url, kind)
        seeded = seed(url, directory / "keys", directory)
        clients = register_clients(url)
        login_seeded = replace(seeded, agency=clients.offline)
        print(f"{kind}: seeded in {seeded.seconds:.1f} s (not measured)", flush=True)
        workers = WORKERS[kind]
        runs: list[Run] = []
        tokens = Tokens()
        log = directory / "server.log"
        with serving(url, directory / "keys", workers, log) as server:
            if "passkey" in scenarios:
                tokens.passkeys = enrolled_passkeys(url, server, login_seeded)
            for scenario in scenarios:
                if scenario in ("userinfo", "refresh") and (
                    len(tokens.refresh) < options.connections * 2 or not tokens.access
                ):
                    mint_tokens(server, login_seeded, tokens, options.connections * 4)
                peak = run_scenario(
                    scenario, "peak", kind, server, login_seeded, clients, tokens, directory,
                    options,
                )  # fmt: skip
                runs.append(peak)
                print(describe_run(peak), flush=True)
                if scenario == "refresh":
                    mint_tokens(server, login_seeded, tokens, options.connections * 4)
                half = run_scenario(
                    scenario, "half", kind, server, login_seeded, clients, tokens, directory,
                    options, offered=max(peak.rate / 2, 1.0),
                )  # fmt: skip
                runs.append(half)
                print(describe_run(half), flush=True)
            memory = server_memory(server)
            supervisor = server.process.pid
        if any(run.errors for run in runs):
            print(f"--- {kind} server log ({log}), last lines ---")
            print(log.read_text()[-5_000:])
        return DatabaseResult(kind, version, workers, runs, memory, supervisor), ceilings
    finally:
        drop_database(name)


# --- the report ------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}" if seconds >= 0.0095 else f"{seconds * 1000:.1f}"


def describe_run(run: Run) -> str:
    p50, p95, p99 = run.latencies
    offered = f" (offered {run.offered:.0f}/s, {run.late} late)" if run.offered else ""
    return (
        f"{run.database} {run.scenario} {run.mode}{offered}: {run.requests} in {run.seconds:.1f} s, "
        f"{run.rate:.0f}/s, p50/p95/p99 {ms(p50)}/{ms(p95)}/{ms(p99)} ms, {run.errors} errors"
        + (f", {run.connections} new PostgreSQL connections" if run.connections else "")
        + f", workers' CPU shares {worker_shares(run)}"
        + (" IMBALANCED" if run.imbalanced else "")
    )


def worker_shares(run: Run) -> str:
    """Each worker's share of the workers' CPU in the run, largest first: ``61/39 %``."""
    shares = sorted(run.worker_shares().values(), reverse=True)
    return "/".join(f"{share:.0%}".rstrip("%") for share in shares) + " %" if shares else "-"


def print_table(results: list[DatabaseResult]) -> None:
    print()
    print(
        "| scenario | db | run | req/s | p50 ms | p95 ms | p99 ms | errors | server CPU/req | "
        "PostgreSQL CPU/req | load gen CPU/req | machine busy | workers' CPU shares |"
    )
    print(
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    for result in results:
        for run in result.runs:
            per = 1000 / (run.requests or 1)
            p50, p95, p99 = run.latencies
            mode = f"half ({run.offered:.0f}/s offered)" if run.offered else "peak"
            print(
                f"| {run.scenario} | {result.database} ({result.workers}w) | {mode} | "
                f"{run.rate:,.0f} | {ms(p50)} | {ms(p95)} | {ms(p99)} | {run.errors} | "
                f"{run.cpu.server * per:.2f} ms | {run.cpu.database * per:.2f} ms | "
                f"{run.cpu.load * per:.2f} ms | {run.share(run.cpu.machine):.0%} | "
                f"{worker_shares(run)} |"
            )
    for result in results:
        for run in result.runs:
            for note in run.notes:
                print(f"  {result.database} {run.scenario} {run.mode}: {note}")


def print_memory(results: list[DatabaseResult]) -> None:
    print()
    for result in results:
        parts = []
        for pid, (rss, peak) in sorted(result.memory.items()):
            role = "supervisor" if pid == result.supervisor and len(result.memory) > 1 else "worker"
            parts.append(f"{role} {pid}: {rss:.0f} MB now, {peak:.0f} MB peak")
        print(f"server memory, {result.database}: " + "; ".join(parts))


def print_ceilings(ceilings: list[Ceiling], results: list[DatabaseResult]) -> None:
    print()
    print("| ceiling | processes / connections | per second |")
    print("| --- | ---: | ---: |")
    for c in ceilings:
        print(f"| {c.what} | {c.processes} | {c.per_second:,.0f} |")
    argon2 = ceiling(ceilings, "argon2id verifications", 2)
    # Access tokens are signed with the server's default, ES256 (DIGITAL_ID_ACCESS_TOKEN_ALGORITHM).
    signatures = ceiling(ceilings, "ES256 signatures", 2)
    inserts = ceiling(ceilings, "PostgreSQL single-row insert transactions", 1)
    print()
    for result in results:
        for run in result.runs:
            if run.mode != "peak":
                continue
            shares = []
            if run.scenario == "login" and argon2:
                shares.append(f"{run.rate / argon2:.0%} of argon2id verifications (2 processes)")
            if (
                run.scenario in ("client_secret_basic", "private_key_jwt", "dpop", "refresh")
                and signatures
            ):
                shares.append(f"{run.rate / signatures:.0%} of ES256 signatures (2 processes)")
            if (
                run.scenario
                in ("client_secret_basic", "private_key_jwt", "dpop", "refresh", "userinfo")
                and inserts
                and result.database == "postgresql"
            ):
                shares.append(
                    f"{run.rate / inserts:.0%} of single-row insert transactions on one "
                    "connection (audited writes take turns on the chain's head row)"
                )
            if shares:
                print(f"{result.database} {run.scenario}: {run.rate:,.0f}/s = " + "; ".join(shares))


def print_floors(ceilings: list[Ceiling], results: list[DatabaseResult]) -> None:
    print()
    argon2 = ceiling(ceilings, "argon2id verifications", 2)
    for result in results:
        peaks = {run.scenario: run for run in result.runs if run.mode == "peak"}
        halves = {run.scenario: run for run in result.runs if run.mode == "half"}
        for scenario, run in peaks.items():
            if scenario == "login":
                if argon2:
                    floor = FLOOR_LOGIN_SHARE_OF_ARGON2 * argon2
                    print(
                        f"floor {result.database} login >= {floor:.0f}/s "
                        f"({FLOOR_LOGIN_SHARE_OF_ARGON2:.0%} of {argon2:.0f} argon2id/s, "
                        f"2 processes): {run.rate:.1f}/s, {verdict(run.rate >= floor)}"
                    )
            elif scenario in FLOOR_RATES:
                floor = FLOOR_RATES[scenario]
                print(
                    f"floor {result.database} {scenario} >= {floor:,.0f}/s: "
                    f"{run.rate:,.0f}/s, {verdict(run.rate >= floor)}"
                )
        for scenario, run in halves.items():
            p99 = run.latencies[2]
            print(
                f"floor {result.database} {scenario} p99 < {ms(FLOOR_HALF_P99_S)} ms at half "
                f"the peak rate ({run.offered:.0f}/s): {ms(p99)} ms, "
                f"{verdict(p99 < FLOOR_HALF_P99_S and not run.errors)}"
            )
        workers = {
            pid: peak
            for pid, (_, peak) in result.memory.items()
            if pid != result.supervisor or len(result.memory) == 1
        }
        for pid, peak_mb in sorted(workers.items()):
            print(
                f"floor {result.database} worker {pid} memory < {FLOOR_WORKER_MB:.0f} MB: "
                f"peak {peak_mb:.0f} MB, {verdict(peak_mb < FLOOR_WORKER_MB)}"
            )


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def imbalanced_runs(results: list[DatabaseResult]) -> list[str]:
    return [
        f"{run.database} {run.scenario} {run.mode}: one worker took "
        f"{max(run.worker_shares().values()):.0%} of the workers' CPU "
        f"(more than {MAX_WORKER_SHARE:.0%})"
        for result in results
        for run in result.runs
        if run.imbalanced
    ]


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` shows them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--databases", default="postgresql,sqlite")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--no-ceilings", action="store_true", help="skip the machine's ceilings")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record each peak run with py-spy (pip install py-spy) into this directory and "
        "print the top frames; costs the server some CPU, so rates are lower",
    )
    options = parser.parse_args()
    scenarios = [s for s in SCENARIOS if s in options.only.split(",")]
    unknown = set(options.only.split(",")) - set(SCENARIOS)
    if unknown or not scenarios:
        parser.error(f"--only takes some of {', '.join(SCENARIOS)}; unknown: {sorted(unknown)}")
    if shutil.which("wrk") is None and set(scenarios) - {"login"}:
        raise SystemExit(
            "wrk is not installed: `apt-get install wrk` (Debian, Ubuntu), or run "
            "`--only login`, which needs only Python"
        )
    if options.profile is not None:
        if shutil.which("py-spy") is None and not Path(sys.executable).with_name("py-spy").exists():
            raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
        options.profile.mkdir(parents=True, exist_ok=True)
    databases = options.databases.split(",")
    runs = len(scenarios) * 2 * len(databases)
    print(
        f"load benchmark: {runs} runs of {options.seconds:.0f} s, plus seeding and ceilings; "
        f"about {runs * options.seconds / 60 + 0.5 * len(databases) + 0.5:.0f} min. "
        f"Load average before: {load_average()}",
        flush=True,
    )
    ceilings: list[Ceiling] = []
    if not options.no_ceilings:
        print("ceilings: argon2id and signatures ...", flush=True)
        ceilings = cpu_ceilings()
    results: list[DatabaseResult] = []
    with tempfile.TemporaryDirectory(prefix="digital-id-load-") as tmp:
        for kind in databases:
            result, found = benchmark_database(kind, scenarios, options, Path(tmp))
            results.append(result)
            ceilings += found

    print()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {platform.platform()}; "
        + ", ".join(f"{r.version} ({r.workers} workers)" for r in results)
    )
    print(f"load average after: {load_average()}")
    print(
        f"load: wrk (1 thread, {options.connections} connections) for HTTP scenarios, "
        f"{LOGIN_CONCURRENCY} Python virtual citizens (closed loop) or up to "
        f"{OPEN_LOOP_BROWSERS} (open loop) for logins; {options.seconds:.0f} s per run"
    )
    print_table(results)
    print_memory(results)
    if ceilings:
        print_ceilings(ceilings, results)
    print_floors(ceilings, results)
    failed = any(run.errors for result in results for run in result.runs)
    if failed:
        print("\nSOME REQUESTS FAILED: see the notes and the server log above")
    imbalanced = imbalanced_runs(results)
    for line in imbalanced:
        print(f"\nWORKERS DID NOT SHARE THE LOAD: {line}")
    return 1 if failed or imbalanced else 0


if __name__ == "__main__":
    raise SystemExit(main())
