"""What the fault tests share: a private PostgreSQL cluster a test may stop and start (the
shared server the other tests use must never go down), and checks that the data is whole."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.web.conftest import free_port

PG_ROOT = Path("/usr/lib/postgresql")


def _postgres_bin() -> Path | None:
    found = sorted(PG_ROOT.glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI runs the fault tests", pytrace=False)
    pytest.skip(reason)


@dataclass
class PrivateCluster:
    """A throwaway PostgreSQL cluster, run as the ``postgres`` OS user (PostgreSQL refuses
    root), on its own port and directory."""

    bin: Path
    directory: Path
    port: int
    as_postgres: list[str]

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [
                *self.as_postgres,
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.directory / "data"),
                *args,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=60"
        )
        self._pg_ctl("-o", options, "-l", str(self.directory / "server.log"), "-w", "start")

    def crash(self) -> None:
        """Stop at once, as a crash or a failover would: connections die mid-transaction."""
        self._pg_ctl("-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "stop")


@pytest.fixture
def private_postgres() -> Iterator[PrivateCluster]:
    bin_dir = _postgres_bin()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        _unavailable(f"no PostgreSQL server binaries under {PG_ROOT} to run a private cluster")
    assert bin_dir is not None
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            _unavailable("running as root without runuser: cannot start PostgreSQL as postgres")
        as_postgres = [str(runuser), "-u", "postgres", "--"]
    # Not under pytest's tmp_path: its parents are private to root, and postgres must reach it.
    directory = Path(tempfile.mkdtemp(prefix="digital-id-pg-"))
    try:
        if as_postgres:
            shutil.chown(directory, "postgres", "postgres")
        subprocess.run(
            [
                *as_postgres,
                str(bin_dir / "initdb"),
                "-D",
                str(directory / "data"),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        cluster = PrivateCluster(bin_dir, directory, free_port(), as_postgres)
        cluster.start()
        try:
            yield cluster
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):  # the test stopped it
                cluster.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# --- the data is whole ----------------------------------------------------------------------

HALF_DONE = {
    "an authorization code whose grant has no browser session": """
        SELECT count(*) FROM authorization_codes c
        JOIN authorization_grants g ON g.id = c.grant_id
        LEFT JOIN browser_sessions s ON s.id = g.session_id
        WHERE s.id IS NULL""",
    "an authorization code without its grant": """
        SELECT count(*) FROM authorization_codes c
        LEFT JOIN authorization_grants g ON g.id = c.grant_id WHERE g.id IS NULL""",
    "a grant without the code it was approved for": """
        SELECT count(*) FROM authorization_grants g
        WHERE NOT EXISTS (SELECT 1 FROM authorization_codes c WHERE c.grant_id = g.id)""",
    "a refresh token without its grant": """
        SELECT count(*) FROM refresh_tokens t
        LEFT JOIN authorization_grants g ON g.id = t.grant_id WHERE g.id IS NULL""",
    "a redeemed code whose grant issued no refresh token (offline access was asked)": """
        SELECT count(*) FROM authorization_codes c
        JOIN authorization_grants g ON g.id = c.grant_id
        WHERE c.redeemed_at IS NOT NULL AND g.offline_until IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.grant_id = g.id)""",
    "a browser session without the login the audit trail records for it": """
        SELECT (SELECT count(*) FROM browser_sessions)
             - (SELECT count(*) FROM audit_events WHERE tag = 'auth:login')""",
    "a redeemed code without the token:issued event of its redemption": """
        SELECT (SELECT count(*) FROM authorization_codes WHERE redeemed_at IS NOT NULL)
             - (SELECT count(*) FROM audit_events WHERE tag = 'token:issued'
                AND details->>'grant_type' = 'authorization_code')""",
}


def half_done(engine: Engine) -> dict[str, int]:
    """Every kind of half-finished flow found, with how many; empty when the data is whole."""
    with engine.connect() as connection:
        counts = {
            what: connection.execute(text(sql)).scalar_one() for what, sql in HALF_DONE.items()
        }
    return {what: count for what, count in counts.items() if count}
