"""The deployment guide, the Dockerfile and the settings tell the same story."""

from __future__ import annotations

import re
from pathlib import Path

from digital_id.config import Settings

ROOT = Path(__file__).resolve().parent.parent
GUIDE = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _variables(text: str) -> set[str]:
    return set(re.findall(r"\bDIGITAL_ID_[A-Z0-9_]+[A-Z0-9]\b", text))


def test_every_variable_the_guide_and_the_image_name_is_a_setting():
    known = {f"DIGITAL_ID_{name.upper()}" for name in Settings.model_fields}
    assert _variables(GUIDE) - known == set()
    assert _variables(DOCKERFILE) - known == set()


def test_every_setting_is_in_the_readme_table():
    documented = set(re.findall(r"^\| `(DIGITAL_ID_[A-Z0-9_]+)`", README, re.MULTILINE))
    assert {f"DIGITAL_ID_{name.upper()}" for name in Settings.model_fields} - documented == set()


def test_the_image_runs_what_the_guide_says():
    keys_dir = re.search(r"DIGITAL_ID_KEYS_DIR=(\S+)", DOCKERFILE)
    assert keys_dir is not None
    assert f"`{keys_dir.group(1)}`" in GUIDE
    assert re.search(r"^USER (?!root)\S+", DOCKERFILE, re.MULTILINE)
    assert "/healthz" in DOCKERFILE
    command = re.search(r"^CMD \[(.*)\]$", DOCKERFILE, re.MULTILINE)
    assert command is not None
    assert '"--workers"' in command.group(1)
    assert "serve --host 0.0.0.0 --port 8000 --workers" in GUIDE


def test_the_image_defaults_to_production():
    assert re.search(r"^\s+DIGITAL_ID_ENV=production\b", DOCKERFILE, re.MULTILINE)
    assert "DIGITAL_ID_ENV=development" not in re.sub(r"^#.*$", "", DOCKERFILE, flags=re.MULTILINE)
