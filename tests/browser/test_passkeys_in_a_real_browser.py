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
from sqlalchemy.orm import Session

from digital_id.accounts.activation import set_pin
from digital_id.accounts.pins import PinHasher
from digital_id.app import create_app
from digital_id.clients import service as clients
from digital_id.config import load_settings
from digital_id.registry.importer import CitizenImporter
from digital_id.registry.records import RecordValidator
from digital_id.registry.regions import load_regions
from digital_id.registry.register_files import RejectReport
from examples.agency_app import AgencyConfig
from examples.agency_app import create_app as create_agency_app
from examples.agency_app.keys import generate_client_key, public_jwks
from tests.browser.test_login_in_a_real_browser import ARTIFACTS, PIN, browser, pytestmark
from tests.conftest import TEST_PASSPHRASE
from tests.factories import citizen_row
from tests.web.conftest import free_port, serving

__all__ = ["browser", "pytestmark"]


@pytest.fixture
def demo(database_url, engine, keys_dir, key_store, tmp_path):
    """Digital ID on http://localhost (passkeys need a domain name, never an IP address) and
    one demo agency; a citizen with a PIN."""
    provider_port, agency_port = free_port(), free_port()
    issuer = f"http://localhost:{provider_port}"
    agency_url = f"http://127.0.0.1:{agency_port}"
    settings = load_settings(
        database_url=database_url,
        keys_dir=keys_dir,
        keys_passphrase=TEST_PASSPHRASE,
        issuer=issuer,
        pin_argon2_memory_kib=64,
        pin_argon2_time_cost=1,
    )
    key_store.generate("RS256", size=2048)
    key_store.generate("ES256")
    row = citizen_row(birth_date=date(1988, 2, 14), sex="P")
    CitizenImporter(engine).run(
        iter([(2, row)]), RecordValidator(load_regions()), RejectReport(tmp_path / "r.csv")
    )
    private_jwk = generate_client_key("RS256")
    with Session(engine) as session, session.begin():
        set_pin(session, PinHasher(key_store.secret("pin_pepper"), memory_kib=64, time_cost=1),
                nik=row["nik"], pin=PIN)  # fmt: skip
        client_id = clients.register(
            session,
            {
                "client_name#id": "Badan Pendapatan Daerah",
                "client_name#en": "Regional Tax Office",
                "redirect_uris": [f"{agency_url}/callback"],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": public_jwks(private_jwk),
                "scope": "openid profile",
            },
            production=False,
            active_algorithms={"RS256"},
        ).client.client_id
    agency = create_agency_app(
        AgencyConfig(
            name="Badan Pendapatan Daerah (demo)",
            issuer=issuer,
            client_id=client_id,
            private_jwk=private_jwk,
            base_url=agency_url,
            scope="openid profile",
            session_secret="a-test-session-secret-of-some-length",
        )
    )
    with serving(create_app(settings), provider_port), serving(agency, agency_port):
        yield {"issuer": issuer, "agency": agency_url, "citizen": row}


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
