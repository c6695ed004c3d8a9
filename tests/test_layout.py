"""The shape of the source tree: small modules that say what they hold."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "digital_id"
MODULES = sorted(SOURCE.rglob("*.py"))
MAX_LINES = 450


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(SOURCE)))
def test_no_module_is_over_450_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(SOURCE)} has {lines} lines"


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(SOURCE)))
def test_every_module_opens_with_what_it_holds(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if not tree.body and path.name == "__init__.py":
        return  # an empty package marker holds nothing to describe
    docstring = ast.get_docstring(tree)
    assert docstring, f"{path.relative_to(SOURCE)} has no module docstring"
