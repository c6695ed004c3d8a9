"""Audit trail benchmark: chained appends per second on PostgreSQL, by concurrent writers.

    .venv/bin/python -m benchmarks.audit_benchmark [--seconds 5] [--writers 1,4,16] [--batch 1]

Each writer is a process of its own with its own connection, appending transactions of
``--batch`` events (nothing else in them) with durable commits, for ``--seconds``. Two
designs side by side, in a fresh database each:

- ``chains``: the trail as it is, each process appending to chains of its own;
- ``one chain``: every writer forced onto one shared chain (a pool limited to one chain,
  the same chain in every process), which is the single-chain trail this one replaced;
- ``group commit``: the writers as a server's requests whose only change is their event
  (a ``client_credentials`` token): threads in at most two processes (as two workers), each
  process's events group-committed by its ``audit.group_commit.GroupCommitter``, every
  writer's commit returning only once its events are;
- ``bare``: no trail, each transaction inserting ``--batch`` one-column rows into a table
  without indexes: this machine's own ceiling of durable commits, for reading the others.

Prints events/s for each and the writers' own CPU per event (the rest of the time is
PostgreSQL's, the lock waits and the commits), then the floor: 16 writers on chains against
the single chain's ceiling (its best rate over the writer counts run), at least 10x, and
the same for the group commit. At the end of every run the whole trail must verify. Exits
non-zero only on errors.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from benchmarks.import_benchmark import drop_database, fresh_database
from digital_id.audit import trail, verification
from digital_id.audit.chains import pool_for, take_chain
from digital_id.audit.group_commit import GroupCommitter
from digital_id.db.engine import create_engine_for
from digital_id.db.types import utc_now

RATIO_FLOOR = 10.0


@dataclass(frozen=True)
class Run:
    design: str
    writers: int
    events: int
    seconds: float
    cpu: float  # the writers' CPU seconds, all together

    @property
    def cpu_per_event(self) -> float:
        """Milliseconds of the writers' CPU per event."""
        return 1000 * self.cpu / self.events if self.events else 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


BARE_TABLE = "audit_benchmark_bare"
BARE_INSERT = text(f"INSERT INTO {BARE_TABLE} SELECT generate_series(1, :rows)")


def writer(
    url: str, shared_chain: int | None, batch: int, seconds: float, ready: Queue, go: Event,
    bare: bool = False,
) -> None:  # fmt: skip
    """Connect, say so, wait for the start, append for ``seconds``; report events committed
    (with ``bare``, rows inserted) and the CPU it took."""
    engine = create_engine_for(url)
    if shared_chain is not None:
        pool = pool_for(engine)
        pool.limit = 1
        pool.adopt(shared_chain)
        pool.checkin(shared_chain)
    appended, cpu = 0, 0.0
    with Session(engine) as session:
        session.connection()  # connect before the clock starts
        session.rollback()
        ready.put(None)
        go.wait()
        started, stop = time.process_time(), time.perf_counter() + seconds
        while time.perf_counter() < stop:
            with session.begin():
                if bare:
                    session.execute(BARE_INSERT, {"rows": batch})
                for _ in range(0 if bare else batch):
                    trail.record(session, "bench:event", subject="citizen:1", details={"n": 1})
            appended += batch
        cpu = time.process_time() - started
    engine.dispose()
    ready.put((appended, cpu))


def grouped_writer(
    url: str, threads: int, batch: int, seconds: float, ready: Queue, go: Event
) -> None:
    """A server process's ``threads`` requests, each committing transactions of ``batch``
    events and nothing else, through the process's group committer."""
    engine = create_engine_for(url)
    committer = GroupCommitter(engine)
    committer.start()
    counts = [0] * threads

    def request(index: int, stop: float) -> None:
        with Session(engine) as session:
            while time.perf_counter() < stop:
                with session.begin():
                    for _ in range(batch):
                        trail.record(session, "bench:event", subject="citizen:1", details={"n": 1})
                counts[index] += batch

    with engine.connect():  # connect before the clock starts
        pass
    ready.put(None)
    go.wait()
    started, stop = time.process_time(), time.perf_counter() + seconds
    workers = [threading.Thread(target=request, args=(n, stop)) for n in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    cpu = time.process_time() - started
    committer.stop()
    engine.dispose()
    ready.put((sum(counts), cpu))


def run(design: str, writers: int, seconds: float, batch: int) -> Run:
    url, name = fresh_database("postgresql", Path.cwd())  # the directory is SQLite's only
    try:
        shared_chain = None
        if design == "one chain":
            engine = create_engine_for(url)
            with engine.begin() as connection:
                shared_chain = take_chain(connection, utc_now()).id
            engine.dispose()
        if design == "bare":
            engine = create_engine_for(url)
            with engine.begin() as connection:
                connection.execute(text(f"CREATE TABLE {BARE_TABLE} (n integer)"))
            engine.dispose()
        context = multiprocessing.get_context("spawn")
        ready, go = context.Queue(), context.Event()
        if design == "group commit":
            shares = [writers // 2 + writers % 2, writers // 2] if writers > 1 else [1]
            processes = [
                context.Process(target=grouped_writer, args=(url, n, batch, seconds, ready, go))
                for n in shares
            ]
        else:
            processes = [
                context.Process(
                    target=writer,
                    args=(url, shared_chain, batch, seconds, ready, go, design == "bare"),
                )
                for _ in range(writers)
            ]
        for process in processes:
            process.start()
        for _ in processes:
            ready.get(timeout=120)
        go.set()
        reports = [ready.get(timeout=seconds + 120) for _ in processes]
        appended, cpu = sum(n for n, _ in reports), sum(c for _, c in reports)
        for process in processes:
            process.join(timeout=60)
            if process.exitcode != 0:
                raise SystemExit(f"{design}, {writers} writers: a writer failed")
        if design == "bare":
            return Run(design, writers, appended, seconds, cpu)
        engine = create_engine_for(url)
        with Session(engine) as session:
            result = verification.verify(session)
        engine.dispose()
        if not result.intact or result.count != appended:
            raise SystemExit(f"{design}, {writers} writers: the trail does not verify: {result}")
        return Run(design, writers, appended, seconds, cpu)
    finally:
        drop_database(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per run (default 5)")
    parser.add_argument("--writers", default="1,4,16", help="writer counts (default 1,4,16)")
    parser.add_argument("--batch", type=int, default=1, help="events per transaction")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.writers.split(",")]
    print(f"audit appends on PostgreSQL, {args.batch} event(s) per transaction, "
          f"{args.seconds:g} s per run, {os.cpu_count()} cores")  # fmt: skip
    print(f"{'writers':>8} {'bare commits':>14} {'one chain':>14} {'chains':>14} "
          f"{'group commit':>14}   writers' CPU/event (one chain / chains / group)")  # fmt: skip
    runs: dict[int, tuple[Run, Run, Run]] = {}
    for writers in counts:
        bare = run("bare", writers, args.seconds, args.batch)
        single = run("one chain", writers, args.seconds, args.batch)
        chained = run("chains", writers, args.seconds, args.batch)
        grouped = run("group commit", writers, args.seconds, args.batch)
        runs[writers] = single, chained, grouped
        print(f"{writers:>8} {bare.rate:>9,.0f} ev/s {single.rate:>9,.0f} ev/s "
              f"{chained.rate:>9,.0f} ev/s {grouped.rate:>9,.0f} ev/s"
              f"   {single.cpu_per_event:.2f} / {chained.cpu_per_event:.2f} / "
              f"{grouped.cpu_per_event:.2f} ms", flush=True)  # fmt: skip
    if 16 in runs:
        ceiling = max(single.rate for single, _, _ in runs.values())
        for label, rate in (("chains", runs[16][1].rate), ("group commit", runs[16][2].rate)):
            ratio = rate / ceiling if ceiling else 0.0
            verdict = "meets" if ratio >= RATIO_FLOOR else "misses"
            print(
                f"floor: 16 writers, {label}: {rate:,.0f} ev/s against the one chain's "
                f"ceiling {ceiling:,.0f} ev/s (best of {args.writers} writers) = {ratio:.1f}x; "
                f"{verdict} the {RATIO_FLOOR:g}x floor ({RATIO_FLOOR * ceiling:,.0f} ev/s)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
