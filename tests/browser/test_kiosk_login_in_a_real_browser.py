"""A citizen logs in at the demo kiosk (the device grant) with a real browser on each side
(Playwright + Debian's Chromium), in both languages, on both databases: the kiosk's screen
shows a QR code and the user code; the phone, a second browser context of its own, opens the
QR code's address, logs in and approves; the kiosk's screen greets the citizen by name."""

from __future__ import annotations

import shutil
from datetime import date

import pytest

from digital_id.app import create_app
from examples.agency_app.keys import generate_client_key, public_jwks
from examples.kiosk_app.app import DEVICE_GRANT, KioskConfig
from examples.kiosk_app.app import create_app as create_kiosk_app
from tests.browser.conftest import (
    ARTIFACTS,
    PIN,
    citizen_with_pin,
    needs_chromium,
    provider_settings,
    registered,
)
from tests.web.conftest import free_port, serving

pytestmark = needs_chromium

PLACE = "MPP Digital Kabupaten Banyuwangi, loket 3"
TEXTS = {
    "id": {"device": "Masuk di loket layanan", "approve": "Setujui", "done": "Selesai"},
    "en": {"device": "Log in at a service counter", "approve": "Approve", "done": "Done"},
}


@pytest.fixture
def kiosk(database_url, engine, keys_dir, key_store, tmp_path):
    provider_port, kiosk_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{provider_port}"
    settings = provider_settings(
        database_url, keys_dir, key_store, issuer, device_poll_interval_seconds=1
    )
    row = citizen_with_pin(engine, key_store, tmp_path, birth_date=date(1979, 8, 17), sex="L")
    private_jwk = generate_client_key("RS256")
    client_id = registered(
        engine,
        {
            "client_name#id": "Anjungan Layanan Pajak",
            "client_name#en": "Tax Service Kiosk",
            "redirect_uris": [],
            "grant_types": [DEVICE_GRANT],
            "device_location": PLACE,
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": public_jwks(private_jwk),
            "scope": "openid profile",
        },
    )
    app = create_kiosk_app(
        KioskConfig(
            name="Anjungan Layanan Pajak (demo)",
            issuer=issuer,
            client_id=client_id,
            private_jwk=private_jwk,
        )
    )
    with serving(create_app(settings), provider_port), serving(app, kiosk_port) as url:
        yield {"kiosk": url, "issuer": issuer, "citizen": row}


@pytest.mark.parametrize("language", ["id", "en"])
def test_a_citizen_logs_in_at_the_kiosk_from_their_own_phone(kiosk, browser, language, request):
    texts = TEXTS[language]
    shots = ARTIFACTS / f"kiosk-{request.node.callspec.id}"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    screen_context = browser.new_context(viewport={"width": 1024, "height": 768})
    phone_context = browser.new_context(
        locale="id-ID" if language == "id" else "en-US", viewport={"width": 360, "height": 740}
    )
    screen, phone = screen_context.new_page(), phone_context.new_page()
    try:
        screen.goto(kiosk["kiosk"] + "/")
        screen.click("button[type=submit]")
        screen.wait_for_selector("#user-code")
        assert screen.locator("figure svg").count() == 1
        user_code = screen.locator("#user-code").inner_text()
        figure = screen.locator("figure").get_attribute("aria-label") or ""
        complete = figure.split(": ", 1)[1]
        assert complete == f"{kiosk['issuer']}/device?user_code={user_code}"
        screen.screenshot(path=str(shots / "1-kiosk.png"), full_page=True)

        phone.goto(complete)  # what the phone's camera opens
        assert phone.locator("h1").inner_text() == texts["device"]
        assert phone.locator("#user_code").input_value() == user_code
        phone.screenshot(path=str(shots / "2-code.png"), full_page=True)
        phone.click("button[type=submit]")

        phone.wait_for_selector("#pin")
        phone.fill("#nik", kiosk["citizen"]["nik"])
        phone.fill("#pin", PIN)
        phone.click("button[type=submit]")

        phone.wait_for_selector("button[value=approve]")
        assert PLACE in phone.content()
        assert phone.evaluate("document.documentElement.scrollWidth") <= 360
        phone.screenshot(path=str(shots / "3-consent.png"), full_page=True)
        phone.click(f"button[value=approve] >> text={texts['approve']}")
        phone.wait_for_selector("[role=status]")
        assert phone.locator("h1").inner_text() == texts["done"]
        phone.screenshot(path=str(shots / "4-done.png"), full_page=True)

        screen.wait_for_function(
            "document.getElementById('status').textContent.startsWith('Selamat datang')",
            timeout=20_000,
        )
        assert kiosk["citizen"]["full_name"] in screen.locator("#status").inner_text()
        screen.screenshot(path=str(shots / "5-kiosk-welcome.png"), full_page=True)
    finally:
        screen_context.close()
        phone_context.close()
