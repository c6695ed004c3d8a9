"""``digital-id citizens activate``."""

import re

import pytest
from typer.testing import CliRunner

from digital_id.cli import app
from tests.conftest import TEST_PASSPHRASE
from tests.factories import citizen_rows, write_csv

runner = CliRunner()


@pytest.fixture
def nik(engine, cli_env, keys_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("DIGITAL_ID_KEYS_DIR", str(keys_dir))
    monkeypatch.setenv("DIGITAL_ID_KEYS_PASSPHRASE", TEST_PASSPHRASE)
    monkeypatch.setenv("DIGITAL_ID_PIN_ARGON2_MEMORY_KIB", "64")
    monkeypatch.setenv("DIGITAL_ID_PIN_ARGON2_TIME_COST", "1")
    rows = citizen_rows(1)
    assert (
        runner.invoke(
            app, ["registry", "import", str(write_csv(tmp_path / "c.csv", rows))]
        ).exit_code
        == 0
    )
    return rows[0]["nik"]


def test_activate_prints_a_code_once_with_the_nik_masked(nik):
    result = runner.invoke(app, ["citizens", "activate", nik])
    assert result.exit_code == 0, result.output
    assert re.search(
        r"Activation code for \*{12}\d{4}: [0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", result.output
    )
    assert nik not in result.output


def test_development_pin_is_set_directly(nik):
    result = runner.invoke(app, ["citizens", "activate", nik, "--pin", "246810"])
    assert result.exit_code == 0, result.output
    assert "can now log in" in result.output


def test_a_pin_breaking_a_rule_is_refused(nik):
    result = runner.invoke(app, ["citizens", "activate", nik, "--pin", "123456"])
    assert result.exit_code == 2
    assert "--pin: the PIN must not be a straight run" in result.output


def test_unknown_nik_is_reported_masked(nik):
    result = runner.invoke(app, ["citizens", "activate", "3273052010909999"])
    assert result.exit_code == 1
    assert "NIK ************9999: no citizen with that NIK in the register" in result.output


def test_pin_option_is_refused_in_production(nik, monkeypatch):
    monkeypatch.setenv("DIGITAL_ID_ENV", "production")
    monkeypatch.setenv("DIGITAL_ID_ISSUER", "https://id.example.go.id")
    monkeypatch.setenv("DIGITAL_ID_PIN_ARGON2_MEMORY_KIB", "19456")
    monkeypatch.setenv("DIGITAL_ID_PIN_ARGON2_TIME_COST", "2")
    result = runner.invoke(app, ["citizens", "activate", nik, "--pin", "246810"])
    assert result.exit_code == 2
    assert "refused in production" in result.output


def test_show_tells_an_operator_the_account_state_without_the_nik(nik):
    assert runner.invoke(app, ["citizens", "activate", nik, "--pin", "246810"]).exit_code == 0
    result = runner.invoke(app, ["citizens", "show", nik])
    assert result.exit_code == 0, result.output
    assert "register status" in result.output
    assert "active" in result.output
    assert "agencies with access" in result.output
    assert nik not in result.output


def test_unlock_block_and_unblock_are_recorded(nik, engine):
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from digital_id.accounts.models import CitizenAccount
    from digital_id.audit.models import AuditEvent

    assert runner.invoke(app, ["citizens", "activate", nik, "--pin", "246810"]).exit_code == 0
    with engine.begin() as connection:
        connection.execute(CitizenAccount.__table__.update().values(failed_attempts=3))
    assert runner.invoke(app, ["citizens", "unlock", nik]).exit_code == 0
    assert runner.invoke(app, ["citizens", "block", nik]).exit_code == 0
    with Session(engine) as session:
        account = session.scalars(select(CitizenAccount)).one()
        assert account.failed_attempts == 0
        assert account.blocked_at is not None
    assert runner.invoke(app, ["citizens", "unblock", nik]).exit_code == 0
    with Session(engine) as session:
        assert session.scalars(select(CitizenAccount)).one().blocked_at is None
        tags = session.scalars(select(AuditEvent.tag).order_by(AuditEvent.sequence)).all()
    assert tags[-3:] == ["citizen:unlocked", "citizen:blocked", "citizen:unblocked"]
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0


def test_operator_actions_on_an_unknown_nik_fail_in_one_line(nik):
    result = runner.invoke(app, ["citizens", "block", "3273052010909999"])
    assert result.exit_code == 1
    assert "no citizen" in result.output


def test_reset_otp_removes_the_authenticator_and_is_recorded_as_the_operators(nik, engine):
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from digital_id.accounts.models import CitizenAccount
    from digital_id.audit.models import AuditEvent

    assert runner.invoke(app, ["citizens", "activate", nik, "--pin", "246810"]).exit_code == 0
    with engine.begin() as connection:
        connection.execute(
            CitizenAccount.__table__.update().values(
                totp_secret="sealed", totp_last_step=7, otp_failed_attempts=4
            )
        )
    result = runner.invoke(app, ["citizens", "reset-otp", nik])
    assert result.exit_code == 0, result.output
    assert nik not in result.output
    with Session(engine) as session:
        account = session.scalars(select(CitizenAccount)).one()
        assert (account.totp_secret, account.totp_last_step, account.otp_failed_attempts) == (
            None,
            None,
            0,
        )
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.sequence.desc())).first()
    assert event is not None
    assert (event.tag, event.actor) == ("citizen:otp_reset", "operator")
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0


def test_reset_otp_on_an_unknown_nik_fails_in_one_line(nik):
    result = runner.invoke(app, ["citizens", "reset-otp", "3273052010909999"])
    assert result.exit_code == 1
    assert "no citizen" in result.output
