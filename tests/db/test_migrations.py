"""The schema comes from Alembic, and operators can run it safely."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from typer.testing import CliRunner

from digital_id.app import create_app
from digital_id.cli import app
from digital_id.config import load_settings
from digital_id.db import migrate
from digital_id.db.engine import create_engine_for
from digital_id.schema import metadata


def test_models_and_migrations_describe_the_same_schema(engine):
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_upgrade_is_safe_to_run_twice(empty_database_url):
    engine = create_engine_for(empty_database_url)
    migrate.upgrade(engine)
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert "citizens" in inspect(engine).get_table_names()
    engine.dispose()


def test_downgrade_to_base_and_back(empty_database_url):
    engine = create_engine_for(empty_database_url)
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    assert "citizens" not in inspect(engine).get_table_names()
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()


def test_two_processes_can_upgrade_at_once(empty_database_url):
    command = [sys.executable, "-m", "digital_id", "db", "upgrade"]
    env = {"DIGITAL_ID_DATABASE_URL": empty_database_url, "PATH": "/usr/bin:/bin"}
    processes = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], outputs
    assert sum("migrated from empty" in output for output in outputs) == 1
    engine = create_engine_for(empty_database_url)
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()


def test_cli_upgrade_reports_what_it_did(empty_database_url, monkeypatch):
    monkeypatch.setenv("DIGITAL_ID_DATABASE_URL", empty_database_url)
    runner = CliRunner()
    first = runner.invoke(app, ["db", "upgrade"])
    second = runner.invoke(app, ["db", "upgrade"])
    current = runner.invoke(app, ["db", "current"])
    assert first.exit_code == second.exit_code == current.exit_code == 0
    assert f"migrated from empty to {migrate.head_revision()}" in first.output
    assert "nothing to do" in second.output
    assert "up to date" in current.output


def test_server_refuses_to_start_on_an_unmigrated_database(empty_database_url, monkeypatch):
    monkeypatch.setenv("DIGITAL_ID_DATABASE_URL", empty_database_url)
    result = CliRunner().invoke(app, ["serve", "--port", "0"])
    assert result.exit_code == 1
    assert (
        result.output.strip()
        == "error: the database has not been migrated; run `digital-id db upgrade` first"
    )


def test_app_refuses_to_start_on_an_unmigrated_database(empty_database_url):
    from fastapi.testclient import TestClient

    application = create_app(load_settings(database_url=empty_database_url))
    with (
        pytest.raises(migrate.SchemaNotCurrentError, match="digital-id db upgrade"),
        TestClient(application),
    ):
        pass


def test_a_schema_behind_the_code_names_both_revisions(empty_database_url, monkeypatch):
    engine = create_engine_for(empty_database_url)
    migrate.upgrade(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'older'")
    with pytest.raises(migrate.SchemaNotCurrentError) as error:
        migrate.ensure_current(engine)
    engine.dispose()
    assert "at revision older" in str(error.value)
    assert migrate.head_revision() in str(error.value)
