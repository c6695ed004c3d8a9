"""What the provider leaves on disk: the SQLite database, PIN hashes and all, and its WAL
files readable by their owner only, after a live server has written to them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from sqlalchemy import make_url


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
