"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL, migrated by Alembic.

PostgreSQL is found at DIGITAL_ID_TEST_POSTGRES_URL (default: the local server as user
postgres). Without it the PostgreSQL half is skipped with the reason, unless CI is set:
then its absence fails the run, so CI can never pass on SQLite alone.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, make_url, text
from sqlalchemy.orm import Session

from digital_id.db.engine import create_engine_for
from digital_id.db.migrate import upgrade
from digital_id.schema import metadata

POSTGRES_ADMIN_URL = os.environ.get(
    "DIGITAL_ID_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
DATABASES = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    # Keeps every log record of the run and fails it if one holds a secret (tests/log_scan.py).
    config.pluginmanager.import_plugin("tests.log_scan")


def _postgres_unavailable_reason() -> str | None:
    engine = create_engine_for(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return f"PostgreSQL not reachable at {make_url(POSTGRES_ADMIN_URL).render_as_string()}: {exc.__class__.__name__}"
    finally:
        engine.dispose()
    return None


class DatabaseFactory:
    """Creates empty databases of one kind and drops them when the session ends."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind = kind
        self.directory = directory
        self._created: list[str] = []

    def new_url(self) -> str:
        name = f"digital_id_test_{os.getpid()}_{secrets.token_hex(4)}"
        if self.kind == "sqlite":
            return f"sqlite:///{self.directory / name}.sqlite3"
        admin = create_engine_for(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        self._created.append(name)
        return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if not self._created:
            return
        admin = create_engine_for(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            for name in self._created:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session", params=DATABASES)
def databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DatabaseFactory]:
    kind = request.param
    if kind == "postgresql":
        reason = _postgres_unavailable_reason()
        if reason is not None:
            if os.environ.get("CI"):
                pytest.fail(f"{reason}; CI requires PostgreSQL", pytrace=False)
            pytest.skip(reason)
    factory = DatabaseFactory(kind, tmp_path_factory.mktemp(kind))
    yield factory
    factory.drop_all()


@pytest.fixture(scope="session")
def database_url(databases: DatabaseFactory) -> str:
    """A database migrated to head by the real Alembic migrations, shared by the session."""
    url = databases.new_url()
    engine = create_engine_for(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def _session_engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine_for(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(_session_engine: Engine) -> Iterator[Engine]:
    """The migrated database, emptied after each test so tests cannot see each other's rows."""
    yield _session_engine
    with _session_engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


@pytest.fixture
def empty_database_url(databases: DatabaseFactory) -> str:
    """A brand-new database with no schema at all."""
    return databases.new_url()


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Environment for running the CLI against the test database, in this process or a child."""
    env = {
        "DIGITAL_ID_DATABASE_URL": database_url,
        "DIGITAL_ID_KEYS_DIR": str(tmp_path / "keys"),
        "DIGITAL_ID_ENV": "development",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # so no developer's .env leaks in
    return {**os.environ, **env}


TEST_PASSPHRASE = "a-test-passphrase-of-some-length"


class FakeClock:
    """A settable clock for lifecycle rules measured in hours."""

    def __init__(self) -> None:
        from datetime import UTC, datetime

        self.now = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)

    def __call__(self):
        return self.now

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def key_store(keys_dir: Path, clock: FakeClock):
    from digital_id.keys import KeyStore

    return KeyStore(keys_dir, TEST_PASSPHRASE, clock=clock)
