"""Import benchmark: generate synthetic citizens, import them into SQLite and PostgreSQL.

    .venv/bin/python -m benchmarks.import_benchmark [--count 1000000] [--databases sqlite,postgresql]

Each phase runs in its own child process, through the same service call as ``digital-id
registry import`` (on PostgreSQL a large file is validated by a pool of worker processes).
Peak memory is that of all the phase's processes together: the child's and its workers'
resident sets summed, sampled every 50 ms (and never below the child's own ru_maxrss).
Prints rows/s, per-batch commit latency percentiles and peak memory, and checks the floors:
on PostgreSQL at least 100,000 rows/s, elsewhere a million rows in under 60 s, and peak
memory under 500 MB. Exits 1 if a floor is missed. Every child has a time limit, so the whole
run is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url, text

from digital_id.db.engine import create_engine_for
from digital_id.db.migrate import upgrade

IMPORT_SECONDS_FLOOR_PER_MILLION = 60.0
POSTGRESQL_ROWS_PER_SECOND_FLOOR = 100_000
MEMORY_SAMPLE_S = 0.05
PEAK_MEMORY_FLOOR_MB = 500.0
CHILD_TIME_LIMIT_S = 600
POSTGRES_ADMIN_URL = os.environ.get(
    "DIGITAL_ID_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

# The child that imports: the same service code the CLI runs, minus the progress bar,
# reporting its batch timings as JSON on stdout.
_IMPORT_CHILD = """
import json, os, sys, time
from pathlib import Path
from sqlalchemy import event
from digital_id.db.engine import create_engine_for
from digital_id.registry.importer import CitizenImporter
from digital_id.registry.register_files import RegisterFile, RejectReport
from digital_id.registry.records import RecordValidator
from digital_id.registry.regions import load_regions

url, path, batch_size = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
engine = create_engine_for(url)
backends = []

@event.listens_for(engine, "connect")
def remember_backend(dbapi_connection, _record):
    if engine.dialect.name == "postgresql":
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backends.append(cursor.fetchone()[0])

def backend_cpu_seconds():
    # Readable only when PostgreSQL runs on this machine: utime + stime from /proc.
    try:
        fields = [Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split() for pid in backends]
    except OSError:
        return None
    return sum(int(f[11]) + int(f[12]) for f in fields) / os.sysconf("SC_CLK_TCK") if fields else None

started = time.perf_counter()
report = RejectReport(path.with_name(path.name + ".rejected.csv"))
with RegisterFile(path) as source:
    summary = CitizenImporter(engine, batch_size=batch_size).import_file(
        source, RecordValidator(load_regions()), report
    )
report.close()
elapsed = time.perf_counter() - started
print(json.dumps({"elapsed": elapsed, "database_cpu_seconds": backend_cpu_seconds(), "inserted": summary.inserted, "updated": summary.updated,
                  "unchanged": summary.unchanged, "rejected": summary.rejected,
                  "batch_seconds": summary.batch_seconds}))
"""


@dataclass
class Result:
    phase: str
    rows: int
    seconds: float
    peak_mb: float
    cpu_seconds: float  # the child's and its workers'
    batch_seconds: list[float]
    database_cpu_seconds: float | None = None  # the PostgreSQL backend's, when it is local

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and all its descendants, from /proc (Linux)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue  # exited meanwhile
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier += children
    total_kb = 0
    for pid in tree:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total_kb += sum(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
        )
    return total_kb / 1024


def run_child(args: list[str]) -> tuple[str, float, float, float]:
    """Run a child Python process; return its stdout, wall time, the peak RSS in MB of it and
    its own children together, and their CPU seconds (a busy machine inflates wall time,
    much less the CPU each row costs)."""
    with tempfile.TemporaryFile("w+") as stdout:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, *args], stdout=stdout, text=True)
        timer = threading.Timer(CHILD_TIME_LIMIT_S, process.kill)
        timer.start()
        peak_tree = [0.0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(MEMORY_SAMPLE_S):
                peak_tree[0] = max(peak_tree[0], tree_rss_mb(process.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # os.wait4 gives this child's own rusage (RUSAGE_CHILDREN would mix all children).
        _, status, usage = os.wait4(process.pid, 0)
        done.set()
        sampler.join()
        timer.cancel()
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise SystemExit(f"benchmark child failed or exceeded {CHILD_TIME_LIMIT_S} s: {args}")
        stdout.seek(0)
        cpu = usage.ru_utime + usage.ru_stime  # wait4 includes the children it reaped
        return stdout.read(), elapsed, max(usage.ru_maxrss / 1024, peak_tree[0]), cpu


def fresh_database(kind: str, workdir: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        url = f"sqlite:///{workdir / 'benchmark.sqlite3'}"
        name = None
    else:
        name = f"digital_id_bench_{secrets.token_hex(4)}"
        admin = create_engine_for(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    engine = create_engine_for(url)
    upgrade(engine)
    engine.dispose()
    return url, name


def drop_database(name: str | None) -> None:
    if name is None:
        return
    admin = create_engine_for(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=20_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="digital-id-bench-") as tmp:
        workdir = Path(tmp)
        data = workdir / "citizens.csv"
        _, seconds, peak, cpu = run_child(
            ["-m", "digital_id", "registry", "generate", "--count", str(options.count),
             "--seed", str(options.seed), "--out", str(data)]
        )  # fmt: skip
        results.append(Result("generate (CSV)", options.count, seconds, peak, cpu, []))
        print(
            f"generated {options.count:,} rows ({data.stat().st_size / 1e6:.0f} MB) in {seconds:.1f} s",
            flush=True,
        )

        for kind in options.databases.split(","):
            url, name = fresh_database(kind, workdir)
            try:
                for phase in ("import", "re-import (unchanged)"):
                    output, _, peak, cpu = run_child(
                        ["-c", _IMPORT_CHILD, url, str(data), str(options.batch_size)]
                    )
                    report = json.loads(output)
                    results.append(
                        Result(
                            f"{kind} {phase}",
                            options.count,
                            report["elapsed"],
                            peak,
                            cpu,
                            report["batch_seconds"],
                            report["database_cpu_seconds"],
                        )
                    )
                    print(f"{kind} {phase}: {report['elapsed']:.1f} s", flush=True)
            finally:
                drop_database(name)

    print()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}"
    )
    print(
        f"{'phase':<34}{'rows':>10}{'seconds':>9}{'rows/s':>10}{'batch p50':>11}{'p95':>8}{'p99':>8}{'peak MB':>9}"
        f"{'CPU µs/row':>12}{'db µs/row':>11}"
    )
    failed = False
    for result in results:
        print(
            f"{result.phase:<34}{result.rows:>10,}{result.seconds:>9.1f}{result.rate:>10,.0f}"
            f"{percentile(result.batch_seconds, 0.5):>10.2f}s{percentile(result.batch_seconds, 0.95):>7.2f}s"
            f"{percentile(result.batch_seconds, 0.99):>7.2f}s{result.peak_mb:>9.0f}"
            f"{result.cpu_seconds / result.rows * 1e6:>12.1f}"
            + (
                f"{result.database_cpu_seconds / result.rows * 1e6:>11.1f}"
                if result.database_cpu_seconds is not None
                else f"{'-':>11}"
            )
        )
        if result.phase.endswith(" import"):
            if result.phase.startswith("postgresql"):
                fast_enough = result.rate >= POSTGRESQL_ROWS_PER_SECOND_FLOOR
                needs = f">= {POSTGRESQL_ROWS_PER_SECOND_FLOOR:,} rows/s"
            else:
                limit = IMPORT_SECONDS_FLOOR_PER_MILLION * options.count / 1_000_000
                fast_enough = result.seconds <= limit
                needs = f"< {limit:.0f} s"
            if not fast_enough or result.peak_mb > PEAK_MEMORY_FLOOR_MB:
                failed = True
                print(f"  FLOOR MISSED: needs {needs} and < {PEAK_MEMORY_FLOOR_MB:.0f} MB")
    if results[1:]:
        batches = [s for r in results for s in r.batch_seconds]
        print(f"batch commit latency over all imports: mean {statistics.fmean(batches):.2f} s")
    print(
        "peak MB: all the phase's processes together; CPU: the importing process and its"
        " workers; db: the PostgreSQL backend (when local)"
    )
    print(
        "floor:",
        "MISSED"
        if failed
        else f"met (PostgreSQL >= {POSTGRESQL_ROWS_PER_SECOND_FLOOR:,} rows/s, others < 60 s"
        f" per million rows, peak of all processes < {PEAK_MEMORY_FLOOR_MB:.0f} MB)",
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
