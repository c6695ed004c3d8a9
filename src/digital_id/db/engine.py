"""Engines and sessions, built from settings and passed in; nothing connects at import time."""

from __future__ import annotations

import contextlib
import os
import select
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from digital_id.config import Settings


def normalise_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whichever spelling the operator gave."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


# Without a bound, connecting to an unreachable host (not a refused port: a partition, a dead
# virtual IP) waits for the kernel's TCP timeout, minutes; every request would hang with it.
DEFAULT_CONNECT_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class ServerPool:
    """How one server process talks to PostgreSQL under load and through an outage.

    ``size`` connections stay open; ``overflow`` more are opened for a burst and closed when
    returned (so a pool too small for the worker's concurrency opens and closes a connection
    on nearly every request). A request waits at most ``timeout`` seconds for a connection,
    ``connect_timeout`` for a new one, ``statement_timeout`` for a statement (0: no limit);
    connections older than ``recycle`` seconds are replaced (a firewall or PgBouncer may have
    dropped them). ``prepared_statements=False`` is for PgBouncer before 1.21 in transaction
    mode, which cannot carry server-side prepared statements between transactions.
    """

    size: int
    overflow: int
    timeout: float
    connect_timeout: int
    statement_timeout: float
    recycle: int
    prepared_statements: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerPool:
        return cls(
            size=settings.database_pool_size,
            overflow=settings.database_max_overflow,
            timeout=settings.database_pool_timeout_seconds,
            connect_timeout=settings.database_connect_timeout_seconds,
            statement_timeout=settings.database_statement_timeout_seconds,
            recycle=settings.database_pool_recycle_seconds,
            prepared_statements=settings.database_prepared_statements,
        )


def create_engine_for(url: str, *, pool: ServerPool | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url``; with ``pool``, sized (and on PostgreSQL bounded) for a server
    process whose threads each hold a connection per request; the CLI's one-off commands use
    the defaults, and an in-memory SQLite database has no pool to size."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            _owner_only(Path(database))
            if pool is not None:  # a file has SQLAlchemy's QueuePool; sized like PostgreSQL's
                kwargs |= {"pool_size": pool.size, "max_overflow": pool.overflow}
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    options: dict[str, Any] = {}
    if pool is not None:
        options = {
            "pool_size": pool.size,
            "max_overflow": pool.overflow,
            "pool_timeout": pool.timeout,
            "pool_recycle": pool.recycle,
        }
    engine = create_engine(
        url, connect_args=_postgres_connect_args(parsed.query, pool), **options, **kwargs
    )
    # A connection that died with the server (restart, failover) is replaced on checkout, so
    # the same process serves again as soon as the database is back; without a round trip
    # (``pool_pre_ping`` would cost one per request). One that dies unnoticed fails its
    # statement instead, and SQLAlchemy then replaces every connection pooled before it.
    event.listen(engine, "checkout", _replace_if_server_closed)
    return engine


def _replace_if_server_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Refuse (so the pool opens a new one) a pooled connection the server has closed.

    An idle connection in the pool has nothing to read: its socket turns readable only when
    the server sent something unasked, which for an idle session is the goodbye of a
    shutdown, a crash or a terminated backend (its FATAL message, then end of file). Asking
    the kernel with a zero timeout costs no round trip; psycopg has no such check of its own,
    and SQLAlchemy's pre-ping is a query."""
    if dbapi_connection.closed or dbapi_connection.broken:
        raise DisconnectionError("the connection is closed")
    # poll, not select: select refuses descriptors past 1,024, which a busy worker reaches.
    poller = select.poll()
    try:
        poller.register(dbapi_connection.pgconn.socket, select.POLLIN)
        events = poller.poll(0)
    except (OSError, ValueError, psycopg.Error) as exc:
        raise DisconnectionError("the connection's socket is gone") from exc
    if events:
        raise DisconnectionError("the server closed the connection")


def _postgres_connect_args(query: Any, pool: ServerPool | None) -> dict[str, Any]:
    """libpq and psycopg parameters, never overriding what the operator put in the URL."""
    arguments: dict[str, Any] = {}
    if "connect_timeout" not in query:
        arguments["connect_timeout"] = (
            pool.connect_timeout if pool is not None else DEFAULT_CONNECT_TIMEOUT_SECONDS
        )
    if pool is None:
        return arguments
    if pool.statement_timeout > 0 and "options" not in query:
        arguments["options"] = f"-c statement_timeout={int(pool.statement_timeout * 1000)}"
    if not pool.prepared_statements:
        arguments["prepare_threshold"] = None
    return arguments


def database_unavailable(exc: BaseException) -> bool:
    """A failure of the connection or of the server (shut down, restarting, failing over, a
    statement cancelled by its timeout, the pool exhausted), not of the statement itself:
    the same request can succeed once the database is back."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    return isinstance(exc, PoolTimeoutError | psycopg.OperationalError | psycopg.InterfaceError)


def _owner_only(database: Path) -> None:
    """The database file readable by its owner alone (0600), created so before SQLite opens
    it: SQLite gives the -wal and -shm files it makes the database file's mode, and the
    default umask would leave the register, PIN hashes included, readable by every local
    user. Files left more open by an earlier version are narrowed.

    An existing file is never opened here: closing any descriptor of a database file drops
    every POSIX lock this process holds on it, so another connection's locks would silently
    vanish and the database could be corrupted (SQLite's "How To Corrupt" 2.2)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(database, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        if path.exists() and path.stat().st_mode & 0o077:
            path.chmod(0o600)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (the server) run while a writer (an import) commits batches;
    # synchronous=NORMAL is durable across process crashes in WAL mode.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def dialect_insert(dialect: str) -> Callable[[Any], postgresql.Insert | sqlite.Insert]:
    """The dialect's own ``insert`` construct, which has ``ON CONFLICT`` (both PostgreSQL's
    and SQLite's spell it the same way): SQLAlchemy's generic ``insert`` has none."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert
