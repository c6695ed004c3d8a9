"""docs/integrating/apache: the recipe's own files, loaded by a real ``apache2 -X`` with Debian's
mod_auth_openidc, against the provider on a real port; a citizen's browser logs in through it,
and presses Deny."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.interop.conftest import RECIPES, Browser, require, which
from tests.web.conftest import Agency, Provider, free_port

MODULES = Path("/usr/lib/apache2/modules")
APACHE = RECIPES / "apache"
AGENCY_PAGE = "Masuk dengan Digital ID tidak selesai"


@pytest.fixture
def apache2() -> str:
    binary = which("apache2")
    require(
        binary is not None and (MODULES / "mod_auth_openidc.so").exists(),
        "apache2 and mod_auth_openidc are not installed (apt-get install -y "
        "--no-install-recommends apache2 libapache2-mod-auth-openidc)",
    )
    assert binary is not None
    return binary


class Apache:
    """One ``apache2 -X`` serving the recipe on a port of its own."""

    def __init__(self, binary: str, issuer: str, workaround: bool) -> None:
        self.binary = binary
        self.issuer = issuer
        self.workaround = workaround
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.redirect_uri = f"{self.url}/protected/redirect_uri"
        # Apache run as root serves as www-data, which must read what it serves; a pytest
        # tmp_path is private to its user.
        self.root = Path(tempfile.mkdtemp(prefix="digital-id-apache-"))
        self.root.chmod(0o755)

    def start(self, agency: Agency) -> None:
        (self.root / "htdocs" / "protected").mkdir(parents=True)
        (self.root / "htdocs" / "protected" / "index.html").write_text("<p>Agency home</p>\n")
        shutil.copy(APACHE / "error.html", self.root / "error.html")
        for path in self.root.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        config = self.root / "httpd.conf"
        config.write_text(self._harness())
        environment = {
            **os.environ,
            "DIGITAL_ID_ISSUER": self.issuer,
            "AGENCY_CLIENT_ID": agency.client_id,
            "AGENCY_CLIENT_SECRET": agency.secret or "",
            "AGENCY_CRYPTO_PASSPHRASE": secrets.token_urlsafe(32),
            "AGENCY_ERROR_TEMPLATE": str(self.root / "error.html"),
        }
        with (self.root / "stderr.log").open("w") as stderr:
            self.process = subprocess.Popen(
                [self.binary, "-X", "-f", str(config)],
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + 20
        while True:
            assert self.process.poll() is None, f"apache2 stopped:\n{self.log()}"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert time.monotonic() < deadline, f"apache2 did not start:\n{self.log()}"
            time.sleep(0.1)

    def _harness(self) -> str:
        """The server around the recipe: what any Debian site already has, and nothing of
        Digital ID's, which is all in the recipe's files."""
        modules = [
            ("mpm_prefork", "mod_mpm_prefork.so"),
            ("authn_core", "mod_authn_core.so"),
            ("authz_core", "mod_authz_core.so"),
            ("authz_user", "mod_authz_user.so"),
            ("dir", "mod_dir.so"),
            ("mime", "mod_mime.so"),
            ("rewrite", "mod_rewrite.so"),
            ("auth_openidc", "mod_auth_openidc.so"),
        ]
        lines = [f"LoadModule {name}_module {MODULES / file}" for name, file in modules]
        if os.geteuid() == 0:
            lines += ["User www-data", "Group www-data"]
        lines += [
            f"ServerName 127.0.0.1:{self.port}",
            f"Listen 127.0.0.1:{self.port}",
            f"PidFile {self.root / 'httpd.pid'}",
            f"ErrorLog {self.root / 'error.log'}",
            "LogLevel warn auth_openidc:info",
            "TypesConfig /etc/mime.types",
            f"DocumentRoot {self.root / 'htdocs'}",
            "DirectoryIndex index.html",
            f"Include {APACHE / 'digital-id.conf'}",
        ]
        if self.workaround:
            lines.append(f"Include {APACHE / 'deny-workaround.conf'}")
        # Lets the test read the claims the module holds for the session.
        lines.append("OIDCInfoHook userinfo id_token")
        return "\n".join(lines) + "\n"

    def log(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")[-4000:]
            for path in (self.root / "stderr.log", self.root / "error.log")
            if path.exists()
        )

    def stop(self) -> None:
        if getattr(self, "process", None) is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def apache_for(
    binary: str, provider: Provider, issuer: str, *, workaround: bool = True
) -> Iterator[tuple[Apache, Agency]]:
    server = Apache(binary, issuer, workaround)
    agency = provider.agency(
        "client_secret_basic", redirect_uris=[server.redirect_uri], scope="openid profile"
    )
    try:
        server.start(agency)
        yield server, agency
    finally:
        server.stop()


def test_a_citizen_logs_in_through_the_recipe_and_apache_holds_their_claims(
    apache2, provider, issuer, browser: Browser
):
    citizen = provider.citizen()
    with apache_for(apache2, provider, issuer) as (apache, _):
        login = browser.http.get(f"{apache.url}/protected/")
        assert str(login.url).startswith(f"{issuer}/authorize?"), apache.log()
        assert "code_challenge_method=S256" in str(login.url)
        consent = browser.log_in(login, citizen["nik"])
        home = browser.decide(consent, "approve")

        assert home.status_code == 200, apache.log()
        assert str(home.url) == f"{apache.url}/protected/"
        assert "Agency home" in home.text
        session = browser.http.get(f"{apache.redirect_uri}?info=json")
        assert session.status_code == 200, apache.log()
        claims = session.json()
        assert claims["id_token"]["iss"] == issuer
        assert claims["userinfo"]["name"] == citizen["full_name"]
        assert claims["userinfo"]["sub"] == claims["id_token"]["sub"]


def test_deny_lands_on_the_agencys_error_page_with_the_workaround(
    apache2, provider, issuer, browser: Browser
):
    citizen = provider.citizen()
    with apache_for(apache2, provider, issuer) as (apache, _):
        consent = browser.log_in(browser.http.get(f"{apache.url}/protected/"), citizen["nik"])
        answer = browser.decide(consent, "deny")

        # The provider's redirect carried iss (RFC 9207); the recipe's rewrite dropped it.
        (redirect,) = answer.history
        assert "error=access_denied" in redirect.headers["location"]
        assert "iss=" in redirect.headers["location"]
        assert str(answer.url).startswith(apache.redirect_uri)
        assert AGENCY_PAGE in answer.text, apache.log()
        assert "OpenID Connect Provider error: access_denied" in answer.text
        assert "target_link_uri" not in answer.text


def test_without_the_workaround_debians_module_misroutes_deny(
    apache2, provider, issuer, browser: Browser
):
    """Why the workaround is in the recipe: this fails the day Debian's module reads `error`
    first, and the workaround can go."""
    citizen = provider.citizen()
    with apache_for(apache2, provider, issuer, workaround=False) as (apache, _):
        consent = browser.log_in(browser.http.get(f"{apache.url}/protected/"), citizen["nik"])
        answer = browser.decide(consent, "deny")

        # The module took the answer for a login started at the provider (OpenID Connect
        # Core 4), and tells the citizen so, in words meant for its administrator.
        assert "access_denied" not in answer.text, apache.log()
        assert "target_link_uri" in answer.text
