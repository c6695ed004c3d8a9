"""A server's PostgreSQL connections: a sized pool, and bounds an outage cannot exceed."""

from __future__ import annotations

import pytest
from sqlalchemy import make_url, text

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
