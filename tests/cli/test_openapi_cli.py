"""``digital-id openapi export``: the committed OpenAPI document and its freshness check."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from digital_id import openapi
from digital_id.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["openapi", "export", *args], catch_exceptions=False)


def test_export_writes_a_sorted_document_with_a_final_newline(tmp_path):
    target = tmp_path / "api" / "openapi.json"
    result = invoke("--output", str(target))
    assert result.exit_code == 0, result.output
    text = target.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    assert "/token" in json.loads(text)["paths"]


def test_check_passes_on_a_current_document_and_fails_on_a_stale_one(tmp_path):
    target = tmp_path / "openapi.json"
    assert invoke("--output", str(target), "--check").exit_code == 1  # missing is stale too
    invoke("--output", str(target))
    current = invoke("--output", str(target), "--check")
    assert current.exit_code == 0
    assert "is current" in current.output

    stale = json.loads(target.read_text())
    del stale["paths"]["/token"]
    target.write_text(json.dumps(stale, indent=2, sort_keys=True) + "\n")
    before = target.read_text()
    result = invoke("--output", str(target), "--check")
    assert result.exit_code == 1
    assert "is stale" in result.output
    assert f"{openapi.EXPORT_COMMAND} --output {target}" in result.output
    assert target.read_text() == before, "--check must not write"
