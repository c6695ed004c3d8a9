"""``digital-id clients``: what an operator types and sees."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from digital_id.cli import app
from digital_id.keys import KeyStore
from tests.conftest import TEST_PASSPHRASE

runner = CliRunner()
REGISTRATION = {
    "client_name#id": "Layanan Pajak",
    "client_name#en": "Tax Service",
    "redirect_uris": ["https://pajak.example.go.id/callback"],
}


@pytest.fixture
def operator(engine, cli_env, keys_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("DIGITAL_ID_KEYS_DIR", str(keys_dir))
    monkeypatch.setenv("DIGITAL_ID_KEYS_PASSPHRASE", TEST_PASSPHRASE)
    KeyStore(keys_dir, TEST_PASSPHRASE).generate("RS256", size=2048)
    return tmp_path


def invoke(*args: str):
    return runner.invoke(app, ["clients", *args], catch_exceptions=False)


def write(path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def printed_json(output: str) -> dict:
    return json.loads(output[output.index("{") : output.rindex("}") + 1])


def test_add_show_list_update_disable_enable_rotate(operator):
    added = invoke("add", "--file", write(operator / "reg.json", REGISTRATION))
    assert added.exit_code == 0, added.output
    document = printed_json(added.output)
    client_id, secret = document["client_id"], document["client_secret"]
    assert "shown once" in added.output

    shown = invoke("show", client_id)
    assert shown.exit_code == 0
    assert "client_secret" not in printed_json(shown.output)
    assert secret not in shown.output

    listing = invoke("list")
    assert client_id in listing.output

    changed = {**REGISTRATION, "scope": "openid profile"}
    updated = invoke("update", client_id, "--file", write(operator / "reg2.json", changed))
    assert updated.exit_code == 0
    assert printed_json(updated.output)["scope"] == "openid profile"

    assert "is disabled" in invoke("disable", client_id).output
    assert printed_json(invoke("show", client_id).output)["enabled"] is False
    assert "is enabled" in invoke("enable", client_id).output

    rotated = invoke("rotate-secret", client_id)
    assert rotated.exit_code == 0
    assert printed_json(rotated.output)["client_secret"] != secret


def test_invalid_metadata_names_the_field_and_changes_nothing(operator):
    bad = {**REGISTRATION, "redirect_uris": ["https://a.example/cb", "https://a.example/cb#frag"]}
    result = invoke("add", "--file", write(operator / "bad.json", bad))
    assert result.exit_code == 2
    assert (
        "redirect_uris[1]: fragments are not allowed (invalid_redirect_uri); nothing was changed"
        in result.output
    )
    assert "No clients registered" in invoke("list").output


def test_a_signing_algorithm_without_an_active_key_is_refused(operator):
    data = {**REGISTRATION, "id_token_signed_response_alg": "PS256"}
    result = invoke("add", "--file", write(operator / "ps.json", data))
    assert result.exit_code == 2
    assert "run `digital-id keys generate --alg PS256` first" in result.output


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), ("{nope", "not a JSON document"), ("[]", "must be a JSON object")],
)
def test_unreadable_registration_files_are_one_line_errors(operator, content, message):
    path = operator / "reg.json"
    if content is not None:
        path.write_text(content)
    result = invoke("add", "--file", str(path))
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_unknown_client_id_is_an_error(operator):
    result = invoke("show", "dgid_missing")
    assert result.exit_code == 1
    assert "no client with client_id dgid_missing" in result.output


def test_suspend_reinstate_and_list_agreements_ending_soon(operator):
    from datetime import date, timedelta

    def with_agreement(days: int) -> dict:
        return {
            **REGISTRATION,
            "agreement": {
                "number": f"PKS/{days}",
                "signed": "2026-01-01",
                "expires": (date.today() + timedelta(days=days)).isoformat(),
                "legal_basis": "public_task",
                "purpose#id": "Pelayanan pajak",
                "purpose#en": "Tax services",
            },
        }

    soon = printed_json(
        invoke("add", "--file", write(operator / "a.json", with_agreement(10))).output
    )["client_id"]
    invoke("add", "--file", write(operator / "b.json", with_agreement(200)))
    listing = invoke("list", "--expiring", "30d", "--json")
    assert listing.exit_code == 0, listing.output
    listed = json.loads(listing.output)
    assert [item["client_id"] for item in listed] == [soon]
    assert listed[0]["agreement"] == "PKS/10"
    assert invoke("list", "--expiring", "soon").exit_code == 2

    assert invoke("suspend", soon, "--reason", " ").exit_code == 2
    suspended = invoke("suspend", soon, "--reason", "audit finding")
    assert suspended.exit_code == 0, suspended.output
    assert json.loads(invoke("list", "--json").output)[0]["suspended"] is True
    assert invoke("reinstate", soon).exit_code == 0
    assert json.loads(invoke("list", "--json").output)[0]["suspended"] is False


def test_report_counts_releases_by_month_and_claim_and_distinct_citizens(operator, engine):
    import csv
    import io
    from datetime import UTC, datetime

    from sqlalchemy.orm import Session

    from digital_id.audit import trail

    client_id = printed_json(
        invoke("add", "--file", write(operator / "r.json", REGISTRATION)).output
    )["client_id"]
    releases = [
        (datetime(2026, 7, 10, tzinfo=UTC), "citizen:1", ["name", "birth_date"]),
        (datetime(2026, 7, 11, tzinfo=UTC), "citizen:2", ["name"]),
        (datetime(2026, 8, 1, tzinfo=UTC), "citizen:1", ["name"]),
        # 31 July 20:00 UTC is 1 August 03:00 WIB: an August release.
        (datetime(2026, 7, 31, 20, tzinfo=UTC), "citizen:3", ["address"]),
        (datetime(2026, 1, 5, tzinfo=UTC), "citizen:4", ["name"]),  # before --since
    ]
    with Session(engine) as session, session.begin():
        for when, subject, claims in releases:
            trail.record(
                session, "claims:released", actor="client", client_id=client_id,
                subject=subject, details={"claims": claims}, now=when,
            )  # fmt: skip
    as_csv = invoke("report", client_id, "--since", "2026-07-01")
    assert as_csv.exit_code == 0, as_csv.output
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert rows == [
        {"month": "2026-07", "claim": "birth_date", "releases": "1", "citizens": "1"},
        {"month": "2026-07", "claim": "name", "releases": "2", "citizens": "2"},
        {"month": "2026-08", "claim": "address", "releases": "1", "citizens": "1"},
        {"month": "2026-08", "claim": "name", "releases": "1", "citizens": "1"},
        {"month": "total", "claim": "*", "releases": "4", "citizens": "3"},
    ]
    as_json = json.loads(
        invoke("report", client_id, "--since", "2026-07-01", "--format", "json").output
    )
    assert as_json["releases"] == 4
    assert as_json["distinct_citizens"] == 3
    assert invoke("report", client_id, "--since", "July").exit_code == 2
    assert invoke("report", client_id, "--since", "2026-07-01", "--format", "xml").exit_code == 2
