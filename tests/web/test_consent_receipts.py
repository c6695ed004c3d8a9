"""Consent receipts: signed, verifiable against the public JWKS, and tamper-evident."""

from __future__ import annotations

import base64
import json

import pytest
from joserfc.jwk import KeySet
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from digital_id.cli import app
from digital_id.consent.models import ConsentReceipt
from digital_id.consent.receipts import InvalidReceiptError, verify
from tests.conftest import TEST_PASSPHRASE
from tests.web.conftest import ISSUER


def receipt_of(provider) -> str:
    with Session(provider.engine) as session:
        return session.scalars(select(ConsentReceipt.token)).one()


def test_consenting_gives_a_receipt_that_verifies_with_the_public_jwks(provider):
    citizen = provider.citizen()
    agency = provider.agency(purpose="Pelaporan pajak daerah")
    tokens = provider.tokens_for(agency, citizen["nik"])
    jwks = KeySet.import_key_set(provider.http.get("/jwks").json())
    receipt = verify(receipt_of(provider), jwks, issuer=ISSUER)
    assert receipt["decision"] == "granted"
    assert receipt["agency"]["client_id"] == agency.client_id
    assert receipt["claims"] == ["birthdate", "gender", "name"]
    assert receipt["purpose"] == "Pelaporan pajak daerah"
    assert receipt["sub"] == provider.verify(tokens["id_token"])["sub"]
    assert citizen["nik"] not in json.dumps(receipt)


def test_an_altered_receipt_fails(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    provider.tokens_for(agency, citizen["nik"])
    header, payload, signature = receipt_of(provider).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["claims"] = ["name"]
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    jwks = KeySet.import_key_set(provider.http.get("/jwks").json())
    with pytest.raises(InvalidReceiptError):
        verify(f"{header}.{forged_payload}.{signature}", jwks)


def test_the_cli_verifies_a_receipt_file(provider, cli_env, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITAL_ID_KEYS_PASSPHRASE", TEST_PASSPHRASE)
    monkeypatch.setenv("DIGITAL_ID_ISSUER", ISSUER)
    citizen = provider.citizen()
    agency = provider.agency()
    provider.tokens_for(agency, citizen["nik"])
    good = tmp_path / "receipt.jwt"
    good.write_text(receipt_of(provider))
    runner = CliRunner()
    result = runner.invoke(app, ["consent", "verify-receipt", str(good)])
    assert result.exit_code == 0, result.output
    assert "Valid receipt" in result.output
    jwks = tmp_path / "jwks.json"
    jwks.write_text(provider.http.get("/jwks").text)
    assert (
        runner.invoke(app, ["consent", "verify-receipt", str(good), "--jwks", str(jwks)]).exit_code
        == 0
    )
    bad = tmp_path / "bad.jwt"
    bad.write_text(receipt_of(provider)[:-4] + "AAAA")
    refused = runner.invoke(app, ["consent", "verify-receipt", str(bad)])
    assert refused.exit_code == 1
    assert "not a valid receipt" in refused.output
