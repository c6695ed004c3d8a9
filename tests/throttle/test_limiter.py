"""Rate limits counted in the database: shared by every worker, exact under parallel hits,
keyed so no IP address or NIK is stored."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from digital_id.config import ConfigError, load_settings
from digital_id.db.engine import create_engine_for
from digital_id.throttle.limiter import (
    Limit,
    Limits,
    RateLimitedError,
    RateLimiter,
    purge_ended,
)
from digital_id.throttle.models import RateLimitWindow

SECRET = b"s" * 32
NIK = "3171012009900001"
PER_MINUTE = Limit("login:nik", 3, 60)


def hit(session: Session, limiter: RateLimiter, clock, *charges) -> None:
    limiter.charge(session, charges or [(PER_MINUTE, NIK)], now=clock())
    session.commit()


def stored_hits(session: Session) -> int:
    return session.scalar(select(func.coalesce(func.sum(RateLimitWindow.hits), 0))) or 0


def test_hits_up_to_the_limit_pass_and_the_next_is_refused(session, clock):
    limiter = RateLimiter(SECRET)
    for _ in range(3):
        hit(session, limiter, clock)
    with pytest.raises(RateLimitedError) as refused:
        hit(session, limiter, clock)
    assert refused.value.scope == "login:nik"


def test_the_refusal_says_how_many_seconds_until_the_window_frees(session, clock):
    limiter = RateLimiter(SECRET)
    for _ in range(3):
        hit(session, limiter, clock)
    clock.advance(seconds=15.2)
    with pytest.raises(RateLimitedError) as refused:
        hit(session, limiter, clock)
    assert refused.value.retry_after == 45  # the window ends at 08:01:00; rounded up


def test_a_new_window_starts_with_a_fresh_budget(session, clock):
    limiter = RateLimiter(SECRET)
    for _ in range(3):
        hit(session, limiter, clock)
    clock.advance(seconds=59)
    with pytest.raises(RateLimitedError):
        hit(session, limiter, clock)
    clock.advance(seconds=1)
    for _ in range(3):
        hit(session, limiter, clock)


def test_each_subject_has_its_own_budget(session, clock):
    limiter = RateLimiter(SECRET)
    for _ in range(3):
        hit(session, limiter, clock, (PER_MINUTE, NIK))
    hit(session, limiter, clock, (PER_MINUTE, "3171012009900002"))
    with pytest.raises(RateLimitedError):
        hit(session, limiter, clock, (PER_MINUTE, NIK))


def test_a_refused_hit_rolled_back_leaves_the_count_as_it_was(session, clock):
    limiter = RateLimiter(SECRET)
    for _ in range(3):
        hit(session, limiter, clock)
    with pytest.raises(RateLimitedError):
        limiter.charge(session, [(PER_MINUTE, NIK)], now=clock())
    session.rollback()
    assert stored_hits(session) == 3


def test_counts_are_shared_by_workers_on_the_same_database(database_url, engine, clock):
    # Two workers: each its own engine (its own connections) and its own limiter (its own
    # memory), the same database and secret.
    workers = [create_engine_for(database_url) for _ in range(2)]
    limiters = [RateLimiter(SECRET) for _ in workers]
    try:
        for turn in range(3):
            with Session(workers[turn % 2]) as session:
                hit(session, limiters[turn % 2], clock)
        for worker, limiter in zip(workers, limiters, strict=True):
            with Session(worker) as session, pytest.raises(RateLimitedError):
                hit(session, limiter, clock)
    finally:
        for worker in workers:
            worker.dispose()


def test_parallel_hits_are_all_counted(database_url, engine, clock):
    threads, hits_each = 8, 25
    limit = Limit("token:client", 10_000, 60)
    worker = create_engine_for(database_url, pool_size=threads, max_overflow=0)
    limiter = RateLimiter(SECRET)
    failures: list[BaseException] = []

    def knock() -> None:
        try:
            with Session(worker) as session:
                for _ in range(hits_each):
                    hit(session, limiter, clock, (limit, "client-a"))
        except BaseException as exc:  # reported below, with the count
            failures.append(exc)

    try:
        running = [threading.Thread(target=knock) for _ in range(threads)]
        for thread in running:
            thread.start()
        for thread in running:
            thread.join(60)
        with Session(worker) as session:
            assert (failures, stored_hits(session)) == ([], threads * hits_each)
    finally:
        worker.dispose()


def test_an_address_and_a_nik_are_charged_together_and_the_later_window_decides(session, clock):
    limiter = RateLimiter(SECRET)
    per_ip = Limit("login:ip", 1, 60)
    per_nik = Limit("login:nik", 1, 300)
    hit(session, limiter, clock, (per_ip, "203.0.113.7"), (per_nik, NIK))
    assert stored_hits(session) == 2
    with pytest.raises(RateLimitedError) as refused:
        hit(session, limiter, clock, (per_ip, "203.0.113.7"), (per_nik, NIK))
    assert (refused.value.scope, refused.value.retry_after) == ("login:nik", 300)


def test_a_limit_of_zero_is_off(session, clock):
    limiter = RateLimiter(SECRET)
    off = Limit("login:ip", 0, 60)
    for _ in range(5):
        hit(session, limiter, clock, (off, "203.0.113.7"))
    assert stored_hits(session) == 0


def test_neither_the_address_nor_the_nik_is_stored(session, clock):
    limiter = RateLimiter(SECRET)
    hit(session, limiter, clock, (Limit("login:ip", 5, 60), "203.0.113.7"), (PER_MINUTE, NIK))
    rows = session.scalars(select(RateLimitWindow)).all()
    stored = " ".join(f"{row.subject_key} {row.scope}" for row in rows)
    assert "203.0.113.7" not in stored
    assert NIK not in stored
    assert NIK[-6:] not in stored
    # Keyed: another deployment's secret gives other keys, so a key cannot be tested offline.
    assert RateLimiter(b"t" * 32).subject_key(PER_MINUTE, NIK) != rows[0].subject_key
    assert {row.subject_key for row in rows} == {
        limiter.subject_key(Limit("login:ip", 5, 60), "203.0.113.7"),
        limiter.subject_key(PER_MINUTE, NIK),
    }


def test_a_charge_leaves_ended_windows_to_the_purge(session, clock):
    limiter = RateLimiter(SECRET)
    hit(session, limiter, clock, (PER_MINUTE, NIK))
    hit(session, limiter, clock, (PER_MINUTE, "3171012009900002"))
    clock.advance(minutes=1)
    hit(session, limiter, clock, (PER_MINUTE, NIK))
    assert session.scalar(select(func.count()).select_from(RateLimitWindow)) == 3
    assert purge_ended(session, clock()) == 2
    windows = session.scalars(select(RateLimitWindow.window_ends_at)).all()
    assert windows == [PER_MINUTE.window_end(clock())]


def test_a_subject_the_database_refused_is_turned_away_without_another_statement(
    session, engine, clock
):
    limiter = RateLimiter(SECRET)
    for _ in range(3):
        hit(session, limiter, clock)
    with pytest.raises(RateLimitedError):
        hit(session, limiter, clock)
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        with pytest.raises(RateLimitedError) as refused:
            limiter.refuse_remembered([(PER_MINUTE, NIK)], now=clock())
        with pytest.raises(RateLimitedError):
            hit(session, limiter, clock)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements == []
    assert refused.value.retry_after == 60
    clock.advance(minutes=1)
    limiter.refuse_remembered([(PER_MINUTE, NIK)], now=clock())  # a new window: forgotten


def test_limits_come_from_the_settings():
    limits = Limits.from_settings(
        load_settings(rate_limit_login_per_nik=4, rate_limit_login_per_nik_seconds=120)
    )
    assert limits.login_per_nik == Limit("login:nik", 4, 120)
    defaults = Limits.from_settings(load_settings())
    # A carrier's NAT puts many citizens behind one address: per address stays generous.
    assert defaults.login_per_ip.hits >= 100 * defaults.login_per_nik.hits // 10
    assert defaults.token_per_client.hits >= 1000


def test_a_negative_limit_or_an_empty_window_is_refused_at_start_up():
    with pytest.raises(ConfigError, match="DIGITAL_ID_RATE_LIMIT_LOGIN_PER_NIK"):
        load_settings(rate_limit_login_per_nik=-1)
    with pytest.raises(ConfigError, match="DIGITAL_ID_RATE_LIMIT_TOKEN_PER_CLIENT_SECONDS"):
        load_settings(rate_limit_token_per_client_seconds=0)
