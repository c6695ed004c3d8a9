"""What the provider leaves on disk: the SQLite database, PIN hashes and all, and its WAL
files readable by their owner only, after a live server has written to them."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import make_url

from digital_id.db.engine import create_engine_for


def test_the_sqlite_database_and_its_wal_are_owner_only(live_provider):
    url = make_url(live_provider.settings.database_url)
    if url.get_backend_name() != "sqlite":
        pytest.skip("a PostgreSQL database's files are the server's")
    citizen = live_provider.citizen()
    live_provider.tokens_for(live_provider.agency(), citizen["nik"])  # the server writes

    database = Path(str(url.database))
    files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
    assert all(path.exists() for path in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_opening_a_database_again_keeps_the_locks_another_connection_holds(tmp_path):
    """Making sure of the file's mode must not open it: closing any descriptor of a database
    file drops every POSIX lock the process holds on it. Another process then believes it is
    the database's last user and, as it closes, checkpoints and deletes the WAL under the
    connections still using it (how the database got corrupted in a test run)."""
    database = tmp_path / "register.db"
    url = f"sqlite:///{database}"
    user = create_engine_for(url).connect()
    user.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
    user.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    user.exec_driver_sql("INSERT INTO t VALUES (1)")
    user.commit()
    create_engine_for(url).dispose()  # another engine on the same file, as a CLI command makes
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('SELECT * FROM t').fetchall(); c.close()",
            database,
        ],
        check=True,
    )
    still_shared = Path(f"{database}-wal").exists()
    user.close()
    assert still_shared, "another process took itself for the last user and removed the WAL"
