"""A server's PostgreSQL connections: a sized pool, and bounds an outage cannot exceed."""

from __future__ import annotations

import os
import resource
import time

import pytest
from sqlalchemy import Engine, make_url, text

from digital_id.config import load_settings
from digital_id.db.engine import ServerPool, create_engine_for


def require_postgresql(url: str) -> None:
    if url.startswith("sqlite"):
        pytest.skip("the server pool's bounds are PostgreSQL's; SQLite uses SQLAlchemy's pool")


def _pool(**overrides: object) -> ServerPool:
    return ServerPool.from_settings(load_settings(**overrides))


def test_a_server_pool_is_sized_and_its_statements_are_bounded(database_url):
    require_postgresql(database_url)
    engine = create_engine_for(
        database_url,
        pool=_pool(database_pool_size=7, database_statement_timeout_seconds=2.5),
    )
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar_one() == "2500ms"
            libpq = connection.connection.driver_connection.info.get_parameters()  # type: ignore[union-attr]
            assert libpq["connect_timeout"] == "3"
        assert engine.pool.size() == 7  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_what_the_operator_put_in_the_url_wins(database_url):
    require_postgresql(database_url)
    url = make_url(database_url).update_query_dict({"options": "-c statement_timeout=7s"})
    engine = create_engine_for(url.render_as_string(hide_password=False), pool=_pool())
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar_one() == "7s"
    finally:
        engine.dispose()


def test_a_statement_timeout_of_zero_sends_none(database_url):
    require_postgresql(database_url)
    engine = create_engine_for(database_url, pool=_pool(database_statement_timeout_seconds=0))
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar_one() == "0"
    finally:
        engine.dispose()


def test_a_pooled_connection_the_server_closed_is_replaced_on_checkout(database_url):
    require_postgresql(database_url)
    engine = create_engine_for(database_url, pool=_pool(database_pool_size=1))
    admin = create_engine_for(database_url)
    try:
        with engine.connect() as connection:
            first = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        _wait_until_gone(admin, first)
        with engine.connect() as connection:  # no error: the pool opened a new connection
            second = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert second != first
    finally:
        engine.dispose()
        admin.dispose()


def test_a_live_pooled_connection_past_descriptor_1024_is_kept(database_url):
    """A busy worker holds more than 1,024 descriptors; its pooled connections must still be
    checked, not refused and reopened on every checkout."""
    require_postgresql(database_url)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1100:
        pytest.skip(f"this process may open only {hard} descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1100), hard))
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1030)]
    engine = create_engine_for(database_url, pool=_pool(database_pool_size=1))
    try:
        with engine.connect() as connection:
            first = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
            socket = connection.connection.dbapi_connection.pgconn.socket  # type: ignore[union-attr]
        assert socket > 1024
        with engine.connect() as connection:
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() == first
    finally:
        engine.dispose()
        for descriptor in filler:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _wait_until_gone(admin: Engine, pid: int) -> None:
    for _ in range(100):
        with admin.connect() as connection:
            alive = connection.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            ).scalar_one()
        if not alive:
            return
        time.sleep(0.02)
    raise AssertionError("the terminated backend did not go")
