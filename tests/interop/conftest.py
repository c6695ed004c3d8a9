"""Relying-party software an agency installs (Apache mod_auth_openidc from Debian, openid-client
from npm), configured by the recipes in docs/integrating/, against a provider served on a real
port.

Without the software the tests are skipped with the reason; with CI set its absence fails the
run instead (.ci/run installs it), so CI can never pass without running them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.web import conftest as web
from tests.web.conftest import Browser

# The live provider of tests/web, the settings it is made from and its issuer on a real port,
# as fixtures here too.
provider = web.provider
settings = web.settings
issuer = web.issuer

RECIPES = Path(__file__).resolve().parents[2] / "docs" / "integrating"


def require(found: bool, reason: str) -> None:
    """Skip for want of ``reason`` on a developer's machine; fail under CI."""
    if found:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI requires it (.ci/run installs it)", pytrace=False)
    pytest.skip(reason)


def which(program: str) -> str | None:
    return shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin:/sbin:/bin")


@pytest.fixture
def browser() -> Iterator[Browser]:
    with httpx.Client(timeout=30, follow_redirects=True) as http:
        yield Browser(http)
