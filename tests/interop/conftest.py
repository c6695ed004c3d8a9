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
from urllib.parse import urljoin

import httpx
import pytest

from digital_id.app import create_app
from tests.web import conftest as web
from tests.web.conftest import PIN, Provider, free_port, hidden, serving

# The live provider of tests/web, and the settings it is made from, as fixtures here too.
provider = web.provider
settings = web.settings

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
def issuer(provider: Provider) -> Iterator[str]:
    """A live provider whose issuer is its own URL, so what discovery names can be reached. It
    shares ``provider``'s database and keys: citizens and agencies arranged there exist here."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serving(create_app(provider.settings.model_copy(update={"issuer": url})), port):
        yield url


class Browser:
    """A citizen's browser: one cookie jar for every site, redirects followed, forms filled in
    by hand as a person would (each with its CSRF token)."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def log_in(self, page: httpx.Response, nik: str) -> httpx.Response:
        assert page.status_code == 200, page.text[:2000]
        return self.submit(page, "/authorize/login", nik=nik, pin=PIN)

    def decide(self, page: httpx.Response, decision: str) -> httpx.Response:
        assert page.status_code == 200, page.text[:2000]
        return self.submit(
            page,
            "/authorize/consent",
            login_proof=hidden(page.text, "login_proof"),
            decision=decision,
        )

    def submit(self, page: httpx.Response, action: str, **fields: str) -> httpx.Response:
        assert all(f'name="{name}"' in page.text for name in fields), page.text[:2000]
        return self.http.post(
            urljoin(str(page.url), action),
            data={
                "csrf_token": hidden(page.text, "csrf_token"),
                "authorization_request": hidden(page.text, "authorization_request"),
                **fields,
            },
        )


@pytest.fixture
def browser() -> Iterator[Browser]:
    with httpx.Client(timeout=30, follow_redirects=True) as http:
        yield Browser(http)
