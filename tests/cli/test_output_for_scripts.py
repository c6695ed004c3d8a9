"""What the list and show commands print in a narrow terminal: identifiers whole, and ``--json``
for scripts that parses whatever the width, with the same keys every time and no secret."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from digital_id.accounts.models import CitizenAccount
from digital_id.audit.models import AuditEvent
from digital_id.cli import app
from digital_id.clients.models import Client
from digital_id.consent import service as consent
from digital_id.db.types import utc_now
from digital_id.keys import KeyStore
from digital_id.registry.models import Citizen
from tests.conftest import TEST_PASSPHRASE
from tests.factories import citizen_rows, write_csv

NARROW = {"COLUMNS": "60"}
runner = CliRunner()


def run(*args: str, width: dict[str, str] = NARROW) -> Any:
    result = runner.invoke(app, list(args), env=width, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def run_json(*args: str) -> Any:
    return json.loads(runner.invoke(app, [*args, "--json"], env=NARROW).stdout)


@pytest.fixture
def operator(engine, cli_env, keys_dir, monkeypatch, tmp_path) -> KeyStore:
    monkeypatch.setenv("DIGITAL_ID_KEYS_DIR", str(keys_dir))
    monkeypatch.setenv("DIGITAL_ID_KEYS_PASSPHRASE", TEST_PASSPHRASE)
    monkeypatch.setenv("DIGITAL_ID_PIN_ARGON2_MEMORY_KIB", "64")
    monkeypatch.setenv("DIGITAL_ID_PIN_ARGON2_TIME_COST", "1")
    store = KeyStore(keys_dir, TEST_PASSPHRASE)
    store.generate("RS256", size=2048)
    store.generate("ES256")
    return store


@pytest.fixture
def client_id(operator, tmp_path) -> str:
    registration = tmp_path / "reg.json"
    registration.write_text(
        json.dumps(
            {
                "client_name": "Layanan Pajak",
                "redirect_uris": ["https://pajak.example.go.id/callback"],
                "scope": "openid profile",
            }
        )
    )
    added = run("clients", "add", "--file", str(registration))
    document = json.loads(added.stdout[added.stdout.index("{") : added.stdout.rindex("}") + 1])
    return str(document["client_id"])


@pytest.fixture
def nik(operator, client_id, engine, tmp_path) -> str:
    """An activated citizen who let the agency see their profile."""
    row = citizen_rows(1)[0]
    run("registry", "import", str(write_csv(tmp_path / "c.csv", [row])))
    run("citizens", "activate", row["nik"], "--pin", "246810")
    with Session(engine) as session, session.begin():
        citizen = session.scalars(select(Citizen).where(Citizen.nik == row["nik"])).one()
        client = session.scalars(select(Client).where(Client.client_id == client_id)).one()
        consent.grant(
            session,
            citizen_id=citizen.id,
            client_pk=client.id,
            claims=["name", "birthdate"],
            now=utc_now(),
        )
    return str(row["nik"])


def test_keys_list_in_a_narrow_terminal_shows_every_kid_whole(operator):
    listing = run("keys", "list")
    for record in operator.records():
        assert record.kid in listing.stdout
    assert "…" not in listing.stdout


def test_keys_list_in_a_wide_terminal_is_a_table_with_every_kid_whole(operator):
    listing = run("keys", "list", width={"COLUMNS": "200"})
    assert "┃ kid" in listing.stdout
    for record in operator.records():
        assert record.kid in listing.stdout


def test_keys_list_json(operator):
    keys = run_json("keys", "list")
    assert sorted(key["kid"] for key in keys) == sorted(r.kid for r in operator.records())
    assert all(
        set(key)
        == {
            "kid",
            "alg",
            "state",
            "created_at",
            "activated_at",
            "retired_at",
            "removable_after",
        }
        for key in keys
    )
    assert {key["state"] for key in keys} == {"active"}


def test_a_kid_that_begins_with_a_dash_is_revoked_after_double_dash(operator):
    record = operator.generate("ES256")
    while not record.kid.startswith("-"):  # a kid is a thumbprint; about one in 64 begins so
        operator.revoke(record.kid)
        record = operator.generate("ES256")
    run("keys", "revoke", "--yes", "--", record.kid)
    assert record.kid not in {r.kid for r in operator.records()}


def test_clients_list_in_a_narrow_terminal_shows_the_client_id_whole(client_id):
    listing = run("clients", "list")
    assert client_id in listing.stdout
    assert "…" not in listing.stdout


def test_clients_list_and_show_json_never_carry_the_secret(client_id, engine):
    (summary,) = run_json("clients", "list")
    assert summary == {
        "client_id": client_id,
        "client_name": "Layanan Pajak",
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["authorization_code"],
        "enabled": True,
        "created_at": summary["created_at"],
        "agreement": None,
        "agreement_expires": None,
        "suspended": False,
    }
    shown = run_json("clients", "show", client_id)
    assert shown["client_id"] == client_id
    assert shown["redirect_uris"] == ["https://pajak.example.go.id/callback"]
    assert shown["enabled"] is True
    with Session(engine) as session:
        secret_hash = session.scalars(
            select(Client.client_secret_hash).where(Client.client_id == client_id)
        ).one()
    assert secret_hash
    for document in (summary, shown):
        assert not any("secret" in name for name in document)
        assert secret_hash not in json.dumps(document)


def test_citizens_show_json_masks_the_nik_and_holds_no_pin_hash(nik, client_id, engine):
    shown = run_json("citizens", "show", nik)
    assert shown == {
        "nik": "*" * 12 + nik[-4:],
        "register_status": "active",
        "activated_at": shown["activated_at"],
        "activation_pending": False,
        "failed_attempts": 0,
        "locked_until": None,
        "totp_enrolled_at": None,
        "failed_codes": 0,
        "codes_locked_until": None,
        "blocked_at": None,
        "agencies_with_access": [
            {
                "client_id": client_id,
                "client_name": "Layanan Pajak",
                "claims": shown["agencies_with_access"][0]["claims"],
            }
        ],
    }
    assert shown["activated_at"] is not None
    assert set(shown["agencies_with_access"][0]["claims"]) >= {"name", "birthdate"}
    with Session(engine) as session:
        pin_hash = session.scalars(select(CitizenAccount.pin_hash)).one()
    assert pin_hash
    assert pin_hash not in json.dumps(shown)


def test_citizens_show_in_a_narrow_terminal_shows_the_client_id_whole(nik, client_id):
    shown = run("citizens", "show", nik)
    assert client_id in shown.stdout
    assert nik not in shown.stdout


def test_registry_show_json(nik):
    record = run_json("registry", "show", nik)
    assert record["nik"] == nik
    assert record["status"] == "active"
    assert set(record) == {
        "nik",
        "kk_number",
        "full_name",
        "birth_place",
        "birth_date",
        "sex",
        "blood_type",
        "religion",
        "marital_status",
        "occupation",
        "nationality",
        "street",
        "rt",
        "rw",
        "village",
        "district_code",
        "district",
        "regency",
        "province",
        "status",
        "record_version",
        "updated_at",
    }


def test_audit_verify_json(nik):
    verified = run_json("audit", "verify")
    assert verified["intact"] is True
    assert verified["count"] > 0
    assert len(verified["head"]) == 64
    assert verified["broken_at"] is None
    assert verified["problem"] is None


def test_audit_verify_json_reports_a_broken_chain_and_exits_1(nik, engine):
    with Session(engine) as session, session.begin():
        first = session.scalars(select(AuditEvent).order_by(AuditEvent.sequence)).first()
        assert first is not None
        first.tag = "tampered"
    result = runner.invoke(app, ["audit", "verify", "--json"], env=NARROW)
    assert result.exit_code == 1
    verified = json.loads(result.stdout)
    assert verified["intact"] is False
    assert verified["broken_at"] is not None
    assert verified["problem"]
