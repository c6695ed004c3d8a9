"""Schema migrations: locate the Alembic scripts, upgrade under a lock, check the schema is current."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

# Any constant will do, as long as nothing else in the database uses it:
# the bytes of "digitalid" folded into a signed 64-bit integer.
_MIGRATION_LOCK_KEY = int.from_bytes(b"digitlid", "big") - 2**63


class SchemaNotCurrentError(Exception):
    """The database schema is not the one this code expects."""


def migrations_dir() -> Path:
    """The Alembic script directory: inside the installed wheel, or at the repository root."""
    package_root = Path(__file__).resolve().parent.parent
    for candidate in (package_root / "migrations", package_root.parent.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("Alembic migrations not found beside the package or the repository")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate to ``revision``; safe to run twice and from several processes at once.

    Returns the revisions before and after, both read while holding the lock.

    PostgreSQL serialises concurrent upgrades on a transaction-scoped advisory lock, so a
    second process waits, then finds nothing left to do. SQLite has one writer per file; a
    lock file beside the database does the same job there.
    """
    with _migration_lock(engine) as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        command.upgrade(alembic_config(connection), revision)
        return before, MigrationContext.configure(connection).get_current_revision()


def downgrade(engine: Engine, revision: str) -> None:
    with _migration_lock(engine) as connection:
        command.downgrade(alembic_config(connection), revision)


def ensure_current(engine: Engine) -> None:
    """Raise with a one-line instruction when the schema is behind (or ahead of) this code."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    if current is None:
        raise SchemaNotCurrentError(
            "the database has not been migrated; run `digital-id db upgrade` first"
        )
    raise SchemaNotCurrentError(
        f"the database schema is at revision {current} but this version of Digital ID needs "
        f"{head}; run `digital-id db upgrade`"
    )


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the migration lock until it commits."""
    with _lock_file(engine), engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
        yield connection


@contextmanager
def _lock_file(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
