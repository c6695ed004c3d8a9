"""The token path's rate limits: counted in each process's memory, synchronised with the
fleet in rounds, within the stated tolerance (``digital_id.throttle.fleet``): one process
alone never passes more than the limit; W processes together at most the limit plus what
W - 1 of them pass between two rounds; a refused window is remembered; and an outage or a
stuck round never holds up counting, nor loses a hit."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, func, make_url, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from digital_id.db.engine import create_engine_for
from digital_id.db.migrate import upgrade
from digital_id.db.types import utc_now
from digital_id.throttle import fleet
from digital_id.throttle.fleet import FleetLimiter, FleetSync
from digital_id.throttle.limiter import Limit, RateLimitedError, RateLimiter, purge_ended
from digital_id.throttle.models import RateLimitWindow
from tests.conftest import POSTGRES_ADMIN_URL

SECRET = b"s" * 32
CLIENT = "agency-pajak"
# Where the background thread runs rounds, on the real clock: windows too long to end midway.
LONG = 10**6


def limiter_on(engine: Engine) -> FleetLimiter:
    return FleetLimiter(RateLimiter(SECRET), engine)


def passes(limiter: FleetLimiter, limit: Limit, clock, subject: str = CLIENT) -> bool:
    try:
        limiter.count([(limit, subject)], now=clock())
    except RateLimitedError:
        return False
    return True


def stored_hits(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.coalesce(func.sum(RateLimitWindow.hits), 0))) or 0


@contextlib.contextmanager
def workers(database_url: str, count: int) -> Iterator[list[FleetLimiter]]:
    """``count`` server processes: each its own engine (connections) and limiter (memory)."""
    engines = [create_engine_for(database_url) for _ in range(count)]
    try:
        yield [limiter_on(engine) for engine in engines]
    finally:
        for engine in engines:
            engine.dispose()


def test_one_process_never_passes_more_than_the_limit(engine):
    limit, clock = Limit("token:client", 50, LONG), utc_now
    limiter = limiter_on(engine)
    sync = FleetSync(limiter, interval=0.005)
    passed: list[bool] = []

    def knock() -> None:
        for _ in range(40):
            passed.append(passes(limiter, limit, clock))

    sync.start()
    try:
        threads = [threading.Thread(target=knock) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        sync.stop()
    assert passed.count(True) == 50
    assert stored_hits(engine) == 50  # the last round, at stop, sent the rest


def test_processes_synchronising_at_once_lose_no_hit_and_never_deadlock(
    database_url, engine, caplog
):
    # Three processes, each with its rounds in the background and two request threads, on
    # the same twenty clients: their rounds upsert the same rows at the same moments.
    processes, clients, limit, clock = 3, 20, Limit("token:client", 30, LONG), utc_now
    passed = [0] * clients
    tally = threading.Lock()

    def knock(limiter: FleetLimiter) -> None:
        for turn in range(400):
            if passes(limiter, limit, clock, f"client-{turn % clients}"):
                with tally:
                    passed[turn % clients] += 1

    with workers(database_url, processes) as limiters:
        syncs = [FleetSync(limiter, interval=0.01) for limiter in limiters]
        for sync in syncs:
            sync.start()
        try:
            threads = [threading.Thread(target=knock, args=(w,)) for w in limiters * 2]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        finally:
            for sync in syncs:
                sync.stop()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # no round failed
    assert all(limit.hits <= hits <= processes * limit.hits for hits in passed)
    assert stored_hits(engine) == sum(passed)


@pytest.mark.parametrize("seed", range(12))
def test_processes_together_pass_at_most_the_limit_plus_what_the_others_pass_in_one_round(
    database_url, engine, clock, seed
):
    processes, limit, most_between_rounds = 3, Limit("token:client", 8, 60), 3
    schedule = random.Random(seed)
    with workers(database_url, processes) as limiters:
        since_round = [0] * processes
        passed = 0
        for _ in range(120):
            worker = schedule.randrange(processes)
            if since_round[worker] < most_between_rounds and schedule.random() < 0.7:
                if passes(limiters[worker], limit, clock):
                    passed += 1
                    since_round[worker] += 1
            else:
                limiters[worker].synchronise(clock())
                since_round[worker] = 0
        assert limit.hits <= passed <= limit.hits + (processes - 1) * most_between_rounds
        for worker in limiters:
            worker.synchronise(clock())
        assert stored_hits(engine) == passed  # nothing counted was lost
        # Once every process has sent and learnt the total, every process refuses.
        assert not any(passes(worker, limit, clock) for worker in limiters)


def test_the_tolerance_is_reached_when_each_process_spends_one_round_unaware(
    database_url, engine, clock
):
    limit = Limit("token:client", 4, 60)
    with workers(database_url, 3) as (first, second, third):
        assert [passes(first, limit, clock) for _ in range(2)] == [True, True]
        first.synchronise(clock())
        assert [passes(first, limit, clock) for _ in range(3)] == [True, True, False]
        # The others have not yet counted this client: each passes what it counts in a round.
        assert [passes(second, limit, clock) for _ in range(2)] == [True, True]
        assert [passes(third, limit, clock) for _ in range(2)] == [True, True]
        for worker in (first, second, third):
            worker.synchronise(clock())
            assert not passes(worker, limit, clock)
    assert stored_hits(engine) == 4 + 2 * 2


def test_processes_that_cannot_synchronise_each_stop_at_the_limit(database_url, engine, clock):
    limit = Limit("token:client", 5, 60)
    with workers(database_url, 2) as limiters:
        assert [sum(passes(w, limit, clock) for _ in range(9)) for w in limiters] == [5, 5]


def test_a_refused_window_is_remembered_without_a_statement_until_it_ends(engine, clock):
    limit = Limit("token:client_auth_failed:ip", 2, 60)
    limiter = limiter_on(engine)
    limiter.refuse_remembered([(limit, "203.0.113.7")], now=clock())  # nothing refused yet
    assert [passes(limiter, limit, clock, "203.0.113.7") for _ in range(3)] == [True, True, False]
    limiter.synchronise(clock())
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        clock.advance(seconds=15.2)
        with pytest.raises(RateLimitedError) as refused:
            limiter.refuse_remembered([(limit, "203.0.113.7")], now=clock())
        assert not passes(limiter, limit, clock, "203.0.113.7")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements == []
    assert (refused.value.scope, refused.value.retry_after) == (limit.scope, 45)
    clock.advance(seconds=45)  # a new window: forgotten, with a fresh budget
    limiter.refuse_remembered([(limit, "203.0.113.7")], now=clock())
    assert passes(limiter, limit, clock, "203.0.113.7")


def test_a_window_the_fleet_spent_is_refused_once_a_round_has_learnt_it(
    database_url, engine, clock
):
    limit = Limit("token:client", 3, 60)
    with workers(database_url, 2) as (busy, idle):
        assert passes(idle, limit, clock)
        assert [passes(busy, limit, clock) for _ in range(2)] == [True, True]
        busy.synchronise(clock())
        idle.synchronise(clock())  # learns the fleet's 3
        assert not passes(idle, limit, clock)


def test_charges_together_are_all_counted_or_none(engine, clock):
    tight, loose = Limit("token:client", 1, 60), Limit("token:client_auth_failed:ip", 9, 60)
    limiter = limiter_on(engine)
    limiter.count([(tight, CLIENT), (loose, "203.0.113.7")], now=clock())
    with pytest.raises(RateLimitedError):
        limiter.count([(tight, CLIENT), (loose, "203.0.113.7")], now=clock())
    limiter.synchronise(clock())
    assert stored_hits(engine) == 2


def test_neither_the_address_nor_the_client_id_is_stored(engine, clock):
    limiter, keys = limiter_on(engine), RateLimiter(SECRET)
    per_client, per_address = Limit("token:client", 9, 60), Limit("token:ip", 9, 60)
    limiter.count([(per_client, CLIENT), (per_address, "203.0.113.7")], now=clock())
    limiter.synchronise(clock())
    with Session(engine) as session:
        rows = session.scalars(select(RateLimitWindow)).all()
    assert {(row.subject_key, row.window_ends_at, row.hits) for row in rows} == {
        (keys.subject_key(per_client, CLIENT), per_client.window_end(clock()), 1),
        (keys.subject_key(per_address, "203.0.113.7"), per_address.window_end(clock()), 1),
    }


def test_a_round_leaves_ended_windows_to_the_purge(engine, clock):
    limit = Limit("token:client", 9, 60)
    limiter = limiter_on(engine)
    passes(limiter, limit, clock)
    limiter.synchronise(clock())
    clock.advance(minutes=1)
    passes(limiter, limit, clock)
    limiter.synchronise(clock())
    with Session(engine) as session, session.begin():
        assert len(session.scalars(select(RateLimitWindow)).all()) == 2
        assert purge_ended(session, clock()) == 1
        windows = session.scalars(select(RateLimitWindow.window_ends_at)).all()
    assert windows == [limit.window_end(clock())]


def test_past_the_windows_it_may_hold_a_process_forgets_those_with_nothing_to_send(
    engine, clock, monkeypatch
):
    monkeypatch.setattr(fleet, "HELD_WINDOWS", 2)
    limit = Limit("token:client_auth_failed:ip", 2, 60)
    limiter = limiter_on(engine)
    assert [passes(limiter, limit, clock, "spent") for _ in range(3)] == [True, True, False]
    for address in ("192.0.2.1", "192.0.2.2"):
        passes(limiter, limit, clock, address)
    limiter.synchronise(clock())  # four windows held, each sent
    passes(limiter, limit, clock, "192.0.2.3")
    limiter.synchronise(clock())  # over two: the sent ones never refused are forgotten
    with pytest.raises(RateLimitedError):  # the refused one is kept
        limiter.refuse_remembered([(limit, "spent")], now=clock())
    assert passes(limiter, limit, clock, "192.0.2.1")  # forgotten: its 1 not in memory,
    assert passes(limiter, limit, clock, "192.0.2.1")  # so one round's hits more pass
    limiter.synchronise(clock())  # learnt again
    assert not passes(limiter, limit, clock, "192.0.2.1")
    assert stored_hits(engine) == 2 + 1 + 1 + 1 + 2


# --- the database away, or a round stuck behind a lock -------------------------------------


@contextlib.contextmanager
def outage(url: str) -> Iterator[None]:
    """The database refuses every new connection, and those it had are gone, until the end
    of the block. PostgreSQL: the database stops allowing connections; SQLite: its file is
    replaced by a directory no connection can open."""
    if url.startswith("sqlite"):
        path = Path(make_url(url).database or "")
        away = path.with_suffix(".away")
        os.replace(path, away)
        path.mkdir()
        try:
            yield
        finally:
            path.rmdir()
            os.replace(away, path)
        return
    name = make_url(url).database
    admin = create_engine_for(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
        try:
            yield
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
    finally:
        admin.dispose()


def wait_until(condition, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_sync_survives_an_outage_counting_goes_on_and_no_hit_is_lost(
    empty_database_url, caplog
):
    limit, clock = Limit("token:client", 1_000, LONG), utc_now
    own = create_engine_for(empty_database_url)
    upgrade(own)
    own.dispose()
    # A new connection for every round, so each round meets the outage afresh.
    engine = create_engine_for(empty_database_url, poolclass=NullPool)
    limiter = limiter_on(engine)
    sync = FleetSync(limiter, interval=0.02)
    sync.start()
    try:
        assert all(passes(limiter, limit, clock) for _ in range(5))
        wait_until(lambda: stored_hits(engine) == 5)
        with (
            caplog.at_level(logging.WARNING, "digital_id.throttle.fleet"),
            outage(empty_database_url),
        ):
            started = time.monotonic()
            assert all(passes(limiter, limit, clock) for _ in range(200))
            assert time.monotonic() - started < 1  # counted in memory, never waiting on it
            with pytest.raises(OperationalError):
                limiter.synchronise(clock())
            time.sleep(0.2)  # several failed rounds
        warnings = [
            r
            for r in caplog.records
            if r.name == "digital_id.throttle.fleet" and r.levelno >= logging.WARNING
        ]
        assert len(warnings) == 1  # one line for the outage, not one per round
        wait_until(lambda: stored_hits(engine) == 205)
    finally:
        sync.stop()
        engine.dispose()
        shutil.rmtree(Path(make_url(empty_database_url).database or "x").with_suffix(".away"), True)


def test_a_round_stuck_behind_a_lock_never_holds_up_counting(database_url, engine, clock):
    limit = Limit("token:client", 1_000, 60)
    limiter = limiter_on(engine)
    passes(limiter, limit, clock)
    holder = create_engine_for(database_url)
    try:
        with holder.connect() as connection:
            # Another transaction holds the counters: every round must wait for it.
            if connection.dialect.name == "sqlite":
                connection.connection.driver_connection.isolation_level = None  # type: ignore[union-attr]
                connection.exec_driver_sql("BEGIN EXCLUSIVE")
                release = functools.partial(connection.exec_driver_sql, "ROLLBACK")
            else:
                release = connection.begin().rollback
                connection.execute(text("LOCK TABLE rate_limit_windows IN EXCLUSIVE MODE"))
            stuck = threading.Thread(target=limiter.synchronise, args=(clock(),))
            stuck.start()
            time.sleep(0.3)
            assert stuck.is_alive()  # waiting for the lock
            started = time.monotonic()
            assert all(passes(limiter, limit, clock) for _ in range(500))
            assert time.monotonic() - started < 1
            release()
        stuck.join(30)
    finally:
        holder.dispose()
    limiter.synchronise(clock())
    assert stored_hits(engine) == 501


def test_stopping_the_sync_sends_what_was_counted_and_ends_its_thread(engine):
    limit, clock = Limit("token:client", 9, LONG), utc_now
    limiter = limiter_on(engine)
    sync = FleetSync(limiter, interval=60)
    sync.start()
    for _ in range(3):
        passes(limiter, limit, clock)
    sync.stop()
    assert stored_hits(engine) == 3
    assert not any(thread.name == "rate-limit-sync" for thread in threading.enumerate())
