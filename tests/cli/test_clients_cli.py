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
