"""``digital-id keys``: what an operator types and sees."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from digital_id.cli import app
from digital_id.keys import KeyStore
from tests.conftest import TEST_PASSPHRASE

runner = CliRunner()


@pytest.fixture
def keys_env(monkeypatch, tmp_path, keys_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGITAL_ID_KEYS_DIR", str(keys_dir))
    monkeypatch.setenv("DIGITAL_ID_KEYS_PASSPHRASE", TEST_PASSPHRASE)
    monkeypatch.setenv("DIGITAL_ID_JWKS_CACHE_SECONDS", "3600")
    return KeyStore(keys_dir, TEST_PASSPHRASE)


def invoke(*args: str):
    return runner.invoke(app, ["keys", *args], catch_exceptions=False)


def test_generate_list_rotate_with_force_prune(keys_env):
    first = invoke("generate", "--alg", "ES256")
    assert first.exit_code == 0
    assert "it is active (the first ES256 key)" in first.output
    second = invoke("generate", "--alg", "ES256")
    assert "as next" in second.output

    listing = invoke("list")
    assert listing.exit_code == 0
    assert "active" in listing.output
    assert "next" in listing.output

    refused = invoke("rotate")
    assert refused.exit_code == 1
    assert "less than the JWKS cache lifetime" in refused.output
    assert [r.state.value for r in keys_env.records()] == ["active", "next"]

    forced = invoke("rotate", "--force")
    assert forced.exit_code == 0
    assert "is now active" in forced.output
    assert sorted(r.state.value for r in keys_env.records()) == ["active", "retired"]

    assert "Nothing to prune" in invoke("prune").output


def test_retire_active_key_is_refused_with_advice(keys_env):
    record = keys_env.generate("ES256")
    # A thumbprint kid begins with "-" one time in 64: "--" ends the options, as the help says.
    result = invoke("retire", "--", record.kid)
    assert result.exit_code == 1
    assert "Use `digital-id keys rotate --alg ES256` instead" in result.output


def test_revoke_needs_yes(keys_env):
    record = keys_env.generate("ES256")
    refused = invoke("revoke", "--", record.kid)
    assert refused.exit_code == 2
    assert "--yes" in refused.output
    assert [r.kid for r in keys_env.records()] == [record.kid]

    done = invoke("revoke", "--yes", "--", record.kid)
    assert done.exit_code == 0
    assert f"Revoked ES256 key {record.kid}" in done.output
    assert record.kid not in {r.kid for r in keys_env.records()}


def test_wrong_passphrase_is_one_clear_line(keys_env, monkeypatch):
    keys_env.generate("ES256")
    monkeypatch.setenv("DIGITAL_ID_KEYS_PASSPHRASE", "some-other-passphrase-entirely")
    result = invoke("list")
    assert result.exit_code == 1
    assert "DIGITAL_ID_KEYS_PASSPHRASE does not open the key store" in result.output
    assert "Traceback" not in result.output


def test_development_passphrase_is_announced_loudly(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGITAL_ID_KEYS_PASSPHRASE", raising=False)
    result = invoke("list")
    assert "published development passphrase" in result.output


def test_unsupported_algorithm_is_a_usage_error(keys_env):
    result = invoke("generate", "--alg", "HS256")
    assert result.exit_code == 2
    assert "unsupported algorithm 'HS256'" in result.output


def test_key_changes_are_noted_in_the_audit_trail(keys_env, cli_env, engine, monkeypatch, keys_dir):
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from digital_id.audit.models import AuditEvent

    monkeypatch.setenv("DIGITAL_ID_KEYS_DIR", str(keys_dir))
    assert invoke("generate", "--alg", "ES256").exit_code == 0
    with Session(engine) as session:
        event = session.scalars(select(AuditEvent)).one()
    assert event.tag == "keys:generated"
    assert event.actor == "operator"
    assert event.details["alg"] == "ES256"


def test_without_a_database_the_key_change_still_happens_with_a_warning(keys_env):
    result = invoke("generate", "--alg", "ES256")
    assert result.exit_code == 0
    assert "not recorded in the audit trail" in result.output
    assert [r.alg for r in keys_env.records()] == ["ES256"]


def test_init_prepares_a_store_a_server_only_reads(keys_env, keys_dir):
    first = invoke("init")
    assert first.exit_code == 0, first.output
    assert "Servers may mount it read-only" in first.output
    written = {path.name: path.stat().st_mtime_ns for path in keys_dir.iterdir()}

    # What a server does at start-up (app.py's lifespan) finds everything and writes nothing.
    server_view = KeyStore(keys_dir, TEST_PASSPHRASE)
    for name in ("pin_pepper", "pairwise_subject", "csrf", "totp", "recognised_browser"):
        assert len(server_view.secret(name)) == 32
    server_view.snapshot().signing_key("RS256")  # ID tokens
    server_view.snapshot().signing_key("ES256")  # access tokens, by default
    assert invoke("init").exit_code == 0  # and again: nothing changes
    assert {path.name: path.stat().st_mtime_ns for path in keys_dir.iterdir()} == written


def test_a_production_server_refuses_to_start_without_its_access_token_key(
    engine, cli_env, keys_env, monkeypatch
):
    keys_env.generate("RS256", size=2048)  # ID tokens' key only: access tokens need ES256
    monkeypatch.setenv("DIGITAL_ID_ENV", "production")
    monkeypatch.setenv("DIGITAL_ID_ISSUER", "https://id.example")
    result = runner.invoke(app, ["serve", "--port", "0"])
    assert result.exit_code == 1
    assert "no active ES256 signing key" in result.output
    assert [r.alg for r in keys_env.records()] == ["RS256"]  # production generates nothing
