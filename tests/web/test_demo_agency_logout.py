"""The demo agency's "Log out", end to end against the real provider over HTTP.

A citizen logs in to two demo agencies with one Digital ID session, then presses Log out at
the first: the browser goes through the provider's end_session_endpoint (RP-Initiated
Logout 1.0) and back to the agency's /logged-out, the provider session ends, and the
provider's back-channel logouts (Back-Channel Logout 1.0) reach both agencies, so the second
agency's page shows the citizen logged out too.
"""

from __future__ import annotations

import html
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx
import pytest
from fastapi import FastAPI

from digital_id.app import create_app
from digital_id.web.services import SESSION_COOKIE
from examples.agency_app import AgencyConfig
from examples.agency_app import create_app as create_agency_app
from examples.agency_app.keys import generate_client_key, public_jwks
from tests.web.conftest import PIN, Provider, free_port, hidden, pkce_pair, query_of, serving

BACK_CHANNEL_WAIT_SECONDS = 5.0
# Browsers drop cookies over 4096 bytes; the agency's cookie now carries the ID token too.
COOKIE_LIMIT = 4096


@pytest.fixture
def issuer_port() -> int:
    return free_port()


@pytest.fixture
def settings(settings, issuer_port):
    """The shared settings with the live server's URL as the issuer. Every app on this
    database runs a logout courier, and the ``provider`` fixture's in-process app is one of
    them: with one issuer, whichever courier sends a logout token signs the same ``iss``."""
    return settings.model_copy(update={"issuer": f"http://127.0.0.1:{issuer_port}"})


@pytest.fixture
def issuer(provider: Provider, issuer_port: int) -> Iterator[str]:
    with serving(create_app(provider.settings), issuer_port) as url:
        assert url == provider.settings.issuer
        yield url


@dataclass
class DemoAgency:
    url: str
    client_id: str
    app: FastAPI

    def ended_sids(self) -> set[str]:
        ended: set[str] = self.app.state.agency.ended_sessions.ended_sids()
        return ended


@pytest.fixture
def agencies(provider: Provider, issuer: str) -> Iterator[tuple[DemoAgency, DemoAgency]]:
    """Two demo agencies, registered as ``examples.demo`` registers them, each served."""
    with ExitStack() as stack:
        served = []
        # Two hosts, as in examples.demo: two sectors, so each agency sees its own `sub`.
        for name, host in (
            ("Kantor Pajak Daerah (demo)", "127.0.0.1"),
            ("Layanan Bantuan Sosial (demo)", "localhost"),
        ):
            port = free_port()
            url = f"http://{host}:{port}"
            private_jwk = generate_client_key()
            registered = provider.agency(
                "private_key_jwt",
                jwks=public_jwks(private_jwk),
                redirect_uris=[f"{url}/callback"],
                post_logout_redirect_uris=[f"{url}/logged-out"],
                backchannel_logout_uri=f"{url}/backchannel-logout",
            )
            config = AgencyConfig(
                name=name,
                issuer=issuer,
                client_id=registered.client_id,
                private_jwk=private_jwk,
                base_url=url,
                scope="openid profile",
                session_secret=secrets.token_urlsafe(32),
            )
            assert config.post_logout_redirect_uri == f"{url}/logged-out"
            assert config.backchannel_logout_uri == f"{url}/backchannel-logout"
            app = create_agency_app(config)
            stack.enter_context(serving(app, port))
            served.append(DemoAgency(url, registered.client_id, app))
        yield served[0], served[1]


class Browser:
    """One cookie jar for the provider and both agencies; redirects followed by hand."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def follow(self, response: httpx.Response) -> httpx.Response:
        assert response.status_code in (302, 303), response.text[:2000]
        return self.http.get(urljoin(str(response.url), response.headers["location"]))

    def log_in(self, agency: DemoAgency, nik: str) -> dict[str, str]:
        """Log in at ``agency`` (with NIK and PIN unless Digital ID remembers the browser,
        then consent); the ID token claims its page shows."""
        page = self.follow(self.http.get(f"{agency.url}/login"))
        if 'name="pin"' in page.text:
            page = self._submit(page, "/authorize/login", nik=nik, pin=PIN)
        if 'name="decision"' in page.text:
            login_proof = hidden(page.text, "login_proof")
            page = self._submit(
                page, "/authorize/consent", login_proof=login_proof, decision="approve"
            )
        callback = self.follow(page)
        assert str(callback.url).startswith(f"{agency.url}/callback?")
        home = self.follow(callback)
        assert "Signed in with Digital ID" in home.text, home.text[:2000]
        rows = re.findall(
            r'<th scope="row"><code>(\w+)</code></th><td><pre>([^<]*)</pre>', home.text
        )
        return {name: html.unescape(value) for name, value in rows}

    def is_logged_in(self, agency: DemoAgency) -> bool:
        page = self.http.get(f"{agency.url}/").text
        assert ("Signed in with Digital ID" in page) != ('href="/login"' in page)
        return "Signed in with Digital ID" in page

    def _submit(self, page: httpx.Response, action: str, **fields: str) -> httpx.Response:
        return self.http.post(
            urljoin(str(page.url), action),
            data={
                "csrf_token": hidden(page.text, "csrf_token"),
                "authorization_request": hidden(page.text, "authorization_request"),
                **fields,
            },
        )


def provider_session_answer(issuer: str, agency: DemoAgency, session_cookie: str) -> dict[str, str]:
    """What the provider answers a prompt=none authorization request for ``agency`` from a
    browser holding ``session_cookie``: a code while that session lives, else an error."""
    _verifier, challenge = pkce_pair()
    query = {
        "response_type": "code",
        "client_id": agency.client_id,
        "redirect_uri": f"{agency.url}/callback",
        "scope": "openid profile",
        "state": secrets.token_urlsafe(12),
        "nonce": secrets.token_urlsafe(12),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "prompt": "none",
    }
    with httpx.Client(cookies={SESSION_COOKIE: session_cookie}, timeout=30) as other:
        response = other.get(f"{issuer}/authorize?{urlencode(query)}")
    assert response.status_code in (302, 303), response.text[:2000]
    assert response.headers["location"].startswith(f"{agency.url}/callback?")
    return query_of(response.headers["location"])


def wait_until(condition: Any, seconds: float = BACK_CHANNEL_WAIT_SECONDS) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_log_out_at_one_agency_ends_digital_id_and_the_other_agency(provider, issuer, agencies):
    tax, aid = agencies
    citizen = provider.citizen()
    with httpx.Client(timeout=30) as http:
        browser = Browser(http)
        tax_claims = browser.log_in(tax, citizen["nik"])
        aid_claims = browser.log_in(aid, citizen["nik"])  # single sign-on: consent only
        provider_session = http.cookies[SESSION_COOKIE]
        assert tax_claims["sid"] == aid_claims["sid"]
        assert tax_claims["sub"] != aid_claims["sub"]
        assert "code" in provider_session_answer(issuer, tax, provider_session)
        assert all(len(cookie.value or "") < COOKIE_LIMIT for cookie in http.cookies.jar)

        end_session = browser.follow(http.post(f"{tax.url}/logout"))
        assert str(end_session.request.url).startswith(f"{issuer}/logout?")
        after = query_of(str(end_session.request.url))
        assert after["client_id"] == tax.client_id
        assert after["post_logout_redirect_uri"] == f"{tax.url}/logged-out"
        assert {"id_token_hint", "state"} <= after.keys()
        logged_out = browser.follow(end_session)

        assert str(logged_out.url).startswith(f"{tax.url}/logged-out?state=")
        assert logged_out.status_code == 200
        assert (
            "You are logged out of Kantor Pajak Daerah (demo) and of Digital ID" in logged_out.text
        )
        assert provider_session_answer(issuer, tax, provider_session)["error"] == ("login_required")
        assert not browser.is_logged_in(tax)
        assert wait_until(lambda: not browser.is_logged_in(aid)), "no back-channel logout at aid"
        assert wait_until(lambda: tax.ended_sids() == {tax_claims["sid"]})
        assert aid.ended_sids() == {aid_claims["sid"]}
        assert SESSION_COOKIE not in http.cookies


def test_a_local_logout_leaves_digital_id_and_the_other_agency_logged_in(
    provider, issuer, agencies
):
    tax, aid = agencies
    citizen = provider.citizen()
    with httpx.Client(timeout=30) as http:
        browser = Browser(http)
        browser.log_in(tax, citizen["nik"])
        browser.log_in(aid, citizen["nik"])

        local = http.post(f"{tax.url}/logout/local")

        assert local.status_code == 303
        assert local.headers["location"] == "/"
        assert not browser.is_logged_in(tax)
        assert "code" in provider_session_answer(issuer, tax, http.cookies[SESSION_COOKIE])
        time.sleep(0.5)  # two courier polls: nothing is on its way
        assert browser.is_logged_in(aid)
        assert tax.ended_sids() == aid.ended_sids() == set()
