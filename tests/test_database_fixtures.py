"""The PostgreSQL half of the suite is skipped on a laptop without it, and fails in CI."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STORAGE_TEST = "tests/db/test_migrations.py::test_models_and_migrations_describe_the_same_schema"


def run_storage_test(ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["DIGITAL_ID_TEST_POSTGRES_URL"] = "postgresql+psycopg://postgres@127.0.0.1:1/postgres"
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", STORAGE_TEST],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_without_postgresql_the_postgresql_half_is_skipped_with_the_reason():
    result = run_storage_test(ci=False)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 1 skipped" in result.stdout
    assert (
        "PostgreSQL not reachable at postgresql+psycopg://postgres@127.0.0.1:1/postgres"
        in result.stdout
    )


def test_in_ci_a_missing_postgresql_fails_the_run():
    result = run_storage_test(ci=True)
    assert result.returncode == 1, result.stdout
    assert "CI requires PostgreSQL" in result.stdout
