"""A citizen logs in to the demo agency in a real browser (Playwright + Debian's Chromium),
in both languages, on both databases. Screenshots of every page are kept as test artifacts
under ``test-artifacts/screenshots/``."""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

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
from tests.conftest import TEST_PASSPHRASE
from tests.factories import citizen_row
from tests.web.conftest import free_port, serving

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PIN = "246810"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="Debian's Chromium is not installed (apt-get install -y chromium); CI installs it",
)


@pytest.fixture
def demo(database_url, engine, keys_dir, key_store, tmp_path):
    """Digital ID and one demo agency, each a real HTTP server; a citizen with a PIN."""
    provider_port, agency_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{provider_port}"
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
    key_store.generate("ES256")  # access tokens
    row = citizen_row(birth_date=date(1985, 4, 12), sex="P")
    CitizenImporter(engine).run(
        iter([(2, row)]), RecordValidator(load_regions()), RejectReport(tmp_path / "r.csv")
    )
    hasher = PinHasher(key_store.secret("pin_pepper"), memory_kib=64, time_cost=1)
    private_jwk = generate_client_key("RS256")
    with Session(engine) as session, session.begin():
        set_pin(session, hasher, nik=row["nik"], pin=PIN)
        client_id = clients.register(
            session,
            {
                "client_name#id": "Badan Pendapatan Daerah",
                "client_name#en": "Regional Tax Office",
                "redirect_uris": [f"{agency_url}/callback"],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": public_jwks(private_jwk),
                "scope": "openid profile nik address",
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
            scope="openid profile nik address",
            session_secret="a-test-session-secret-of-some-length",
        )
    )
    with serving(create_app(settings), provider_port), serving(agency, agency_port):
        yield {"agency": agency_url, "agency_issuer": issuer, "citizen": row}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


TEXTS = {
    "id": {
        "login": "Masuk",
        "consent": "Izin berbagi data",
        "claim": "Nama lengkap",
        "approve": "Setujui",
    },
    "en": {
        "login": "Log in",
        "consent": "Share your data",
        "claim": "Full name",
        "approve": "Approve",
    },
}


@pytest.mark.parametrize("language", ["id", "en"])
def test_a_citizen_logs_in_to_the_demo_agency_in_a_real_browser(demo, browser, language, request):
    texts = TEXTS[language]
    shots = ARTIFACTS / request.node.callspec.id
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    context = browser.new_context(
        locale="id-ID" if language == "id" else "en-US", viewport={"width": 360, "height": 740}
    )
    page = context.new_page()
    try:
        page.goto(demo["agency"] + "/")
        page.screenshot(path=str(shots / "1-agency.png"), full_page=True)
        page.click("text=Log in with Digital ID")

        page.wait_for_selector("#pin")
        assert page.locator("html").get_attribute("lang") == language
        assert page.locator("h1").inner_text() == texts["login"]
        page.fill("#nik", demo["citizen"]["nik"])
        page.fill("#pin", PIN)
        page.screenshot(path=str(shots / "2-login.png"), full_page=True)
        page.click("button[type=submit]")

        page.wait_for_selector("button[value=approve]")
        assert page.locator("h1").inner_text() == texts["consent"]
        assert texts["claim"] in page.content()
        page.screenshot(path=str(shots / "3-consent.png"), full_page=True)
        page.click(f"button[value=approve] >> text={texts['approve']}")

        page.wait_for_url(demo["agency"] + "/")
        body = page.content()
        assert "Signed in with Digital ID" in body
        assert demo["citizen"]["full_name"] in body
        assert demo["citizen"]["nik"] in body  # the nik scope, released by consent
        page.screenshot(path=str(shots / "4-agency-signed-in.png"), full_page=True)
    finally:
        context.close()


def test_a_wrong_pin_is_announced_in_the_browser(demo, browser, request):
    shots = ARTIFACTS / request.node.callspec.id
    shots.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(locale="id-ID", viewport={"width": 320, "height": 640})
    page = context.new_page()
    try:
        page.goto(demo["agency"] + "/login")
        page.wait_for_selector("#pin")
        page.fill("#nik", demo["citizen"]["nik"])
        page.fill("#pin", "135792")
        page.click("button[type=submit]")
        alert = page.wait_for_selector("[role=alert]")
        assert "NIK atau PIN salah" in alert.inner_text()
        # Usable at 320 px: nothing wider than the screen.
        assert page.evaluate("document.documentElement.scrollWidth") <= 320
        page.screenshot(path=str(shots / "login-error-320px.png"), full_page=True)
    finally:
        context.close()


PORTAL_TEXTS = {
    "id": {
        "title": "Akun saya",
        "revoke": "Cabut izin",
        "confirm": "Ya, cabut izin",
        "none": "Belum ada instansi",
    },
    "en": {
        "title": "My account",
        "revoke": "Withdraw permission",
        "confirm": "Yes, withdraw permission",
        "none": "You have not given any agency",
    },
}


@pytest.mark.parametrize("language", ["id", "en"])
def test_the_citizen_sees_and_withdraws_an_agencys_access_in_the_portal(
    demo, browser, language, request
):
    texts, portal = TEXTS[language], PORTAL_TEXTS[language]
    shots = ARTIFACTS / f"portal-{request.node.callspec.id}"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    context = browser.new_context(
        locale="id-ID" if language == "id" else "en-US", viewport={"width": 360, "height": 740}
    )
    page = context.new_page()
    try:
        page.goto(demo["agency"] + "/login")
        page.wait_for_selector("#pin")
        page.fill("#nik", demo["citizen"]["nik"])
        page.fill("#pin", PIN)
        page.click("button[type=submit]")
        page.click(f"button[value=approve] >> text={texts['approve']}")
        page.wait_for_url(demo["agency"] + "/")

        provider = demo["agency_issuer"]
        page.goto(provider + "/account")
        assert page.locator("h1").inner_text() == portal["title"]
        body = page.content()
        assert "Badan Pendapatan Daerah" in body
        assert demo["citizen"]["full_name"] in body
        page.screenshot(path=str(shots / "1-account.png"), full_page=True)

        page.click(f"text={portal['revoke']}")
        page.wait_for_selector("h1")
        page.screenshot(path=str(shots / "2-confirm.png"), full_page=True)
        page.click(f"text={portal['confirm']}")
        page.wait_for_url(provider + "/account#agencies")
        assert portal["none"] in page.content()
        page.screenshot(path=str(shots / "3-withdrawn.png"), full_page=True)
    finally:
        context.close()
