"""Passkeys in a real browser (Playwright + Debian's Chromium) with Chromium's virtual
authenticator (Chrome DevTools Protocol ``WebAuthn.addVirtualAuthenticator``), on both
databases: the citizen enrols a passkey in the portal from a substantial session, logs out,
and logs in to the demo agency with the passkey alone; the agency's verified ID token says
``acr`` substantial and ``amr`` hwk + user."""

from __future__ import annotations

import re
import shutil
from datetime import date

import pyotp
import pytest

from tests.browser.conftest import ARTIFACTS, PIN, needs_chromium, running_demo

pytestmark = needs_chromium


@pytest.fixture
def demo(database_url, engine, keys_dir, key_store, tmp_path):
    """Digital ID on http://localhost (passkeys need a domain name, never an IP address) and
    one demo agency; a citizen with a PIN."""
    with running_demo(
        database_url, engine, keys_dir, key_store, tmp_path, provider_host="localhost",
        scope="openid profile", birth_date=date(1988, 2, 14), sex="P",
    ) as demo:  # fmt: skip
        yield demo


def test_a_passkey_enrolled_in_the_portal_logs_in_to_an_agency_alone(demo, browser, request):
    shots = ARTIFACTS / f"passkey-{request.node.callspec.id}"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    context = browser.new_context(locale="id-ID", viewport={"width": 360, "height": 740})
    page = context.new_page()
    devtools = context.new_cdp_session(page)
    devtools.send("WebAuthn.enable")
    authenticator = devtools.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )["authenticatorId"]
    try:
        # The portal: PIN, then an authenticator app's code, so the session is substantial.
        page.goto(demo["issuer"] + "/account")
        page.fill("#nik", demo["citizen"]["nik"])
        page.fill("#pin", PIN)
        page.click("button[type=submit] >> nth=0")
        page.goto(demo["issuer"] + "/account/otp/enrol")
        secret = re.sub(r"\s", "", page.locator("code.secret").inner_text())
        page.fill("#otp", pyotp.TOTP(secret).now())
        page.click("button[type=submit] >> nth=0")
        page.wait_for_url(re.compile(r".*/account(#security)?$"))

        page.fill("#passkey-name", "Ponsel uji")
        page.screenshot(path=str(shots / "1-portal-security.png"), full_page=True)
        page.click("button[data-passkey=enrol]")
        page.wait_for_selector("text=Ponsel uji")
        credentials = devtools.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
        assert len(credentials["credentials"]) == 1
        assert credentials["credentials"][0]["isResidentCredential"]
        page.screenshot(path=str(shots / "2-passkey-enrolled.png"), full_page=True)

        context.clear_cookies()  # logged out of Digital ID

        page.goto(demo["agency"] + "/")
        page.click("text=Log in with Digital ID")
        page.wait_for_selector("button[data-passkey=login]")
        page.screenshot(path=str(shots / "3-login-with-passkey.png"), full_page=True)
        page.click("button[data-passkey=login]")  # no NIK typed: a discoverable credential

        page.wait_for_selector("button[value=approve]")
        page.click("button[value=approve]")
        page.wait_for_url(demo["agency"] + "/")
        body = page.content()
        assert "Signed in with Digital ID" in body
        assert "urn:digital-id:loa:substantial" in body
        assert "hwk" in body
        assert demo["citizen"]["full_name"] in body
        page.screenshot(path=str(shots / "4-agency-signed-in.png"), full_page=True)
    finally:
        context.close()
