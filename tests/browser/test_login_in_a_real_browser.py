"""A citizen logs in to the demo agency in a real browser (Playwright + Debian's Chromium),
in both languages, on both databases. Screenshots of every page are kept as test artifacts
under ``test-artifacts/screenshots/``."""

from __future__ import annotations

import shutil

import pytest

from tests.browser.conftest import ARTIFACTS, PIN, needs_chromium, running_demo

pytestmark = needs_chromium


@pytest.fixture
def demo(database_url, engine, keys_dir, key_store, tmp_path):
    """Digital ID and one demo agency, each a real HTTP server; a citizen with a PIN."""
    with running_demo(database_url, engine, keys_dir, key_store, tmp_path, sex="P") as demo:
        yield demo


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
