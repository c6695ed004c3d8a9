"""Every page a citizen sees passes an automated WCAG 2.2 AA check (axe-core, from npm,
injected by Playwright into Debian's Chromium) with no violation, in both languages, at
320 px wide (where nothing may be wider than the screen): login (and its failure), "for
whom?" and consent (a parent's, for their child), activation, the one-time code, the portal
(with its children in care), the kiosk login's pages and the error page."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from digital_id.app import create_app
from digital_id.registry.importer import CitizenImporter
from digital_id.registry.records import RecordValidator
from digital_id.registry.regions import load_regions
from digital_id.registry.register_files import RejectReport
from tests.browser.conftest import (
    PIN,
    citizen_with_pin,
    needs_chromium,
    provider_settings,
    registered,
)
from tests.factories import citizen_row
from tests.web.conftest import free_port, pkce_pair, serving

pytestmark = needs_chromium

AXE = (
    Path(__file__).resolve().parents[1]
    / "interop"
    / "node"
    / "node_modules"
    / "axe-core"
    / "axe.min.js"
)
WCAG_22_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture
def site(database_url, engine, keys_dir, key_store, tmp_path):
    if not AXE.exists():
        pytest.fail(f"axe-core is not installed: cd {AXE.parents[2]} && npm ci")
    port = free_port()
    issuer = f"http://localhost:{port}"
    settings = provider_settings(database_url, keys_dir, key_store, issuer)
    kk_number = "3273010101159999"
    citizen = citizen_with_pin(
        engine, key_store, tmp_path, kk_number=kk_number, family_relationship="KEPALA KELUARGA"
    )
    # Their child, whom the agency below lets them act for.
    CitizenImporter(engine).run(
        iter([(2, citizen_row(birth_date=date.today() - timedelta(days=9 * 365), kk_number=kk_number,
                              family_relationship="ANAK", marital_status="BELUM KAWIN",
                              full_name="ADI SANTOSO"))]),
        RecordValidator(load_regions()),
        RejectReport(tmp_path / "child.csv"),
    )  # fmt: skip
    agency = registered(
        engine,
        {
            "client_name#id": "Badan Pendapatan Daerah",
            "client_name#en": "Regional Tax Office",
            "redirect_uris": ["https://pajak.example.go.id/callback"],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "openid profile nik address",
            "accepts_delegation": True,
            "agreement": {
                "number": "470/1234/DUKCAPIL/PKS/2026",
                "signed": "2026-01-15",
                "expires": (date.today() + timedelta(days=365)).isoformat(),
                "legal_basis": "public_task",
                "purpose#id": "Verifikasi identitas wajib pajak daerah",
                "purpose#en": "Verifying the identity of regional taxpayers",
            },
        },
    )
    with serving(create_app(settings), port):
        yield {"issuer": issuer, "agency": agency, "citizen": citizen, "engine": engine}


def violations(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})",
        WCAG_22_AA,
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + json.dumps([node["target"] for node in v["nodes"]][:3])
        for v in result["violations"]
    ]


def check(page, name: str, found: dict[str, list[str]]) -> None:
    found[name] = violations(page)
    width = page.evaluate("document.documentElement.scrollWidth")
    if width > 320:
        wide = page.evaluate(
            """() => [...document.querySelectorAll('main *')]
                .filter(e => e.getBoundingClientRect().right > 320)
                .slice(0, 3).map(e => e.tagName + '.' + e.className + ': '
                + e.textContent.slice(0, 40))"""
        )
        found[name].append(f"the page is {width} px wide at 320 px: {wide}")


@pytest.mark.parametrize("language", ["id", "en"])
def test_every_citizen_page_passes_wcag_22_aa_at_320_px(site, browser, language):
    from tests.web.test_device_authorization_grant import PLACE

    context = browser.new_context(
        locale="id-ID" if language == "id" else "en-US",
        viewport={"width": 320, "height": 640},
        bypass_csp=True,  # axe is injected as a script of the page's own
    )
    page = context.new_page()
    issuer, found = site["issuer"], {}
    _, challenge = pkce_pair()
    authorize = (
        f"{issuer}/authorize?response_type=code&client_id={site['agency']}"
        "&redirect_uri=https%3A%2F%2Fpajak.example.go.id%2Fcallback&scope=openid+profile"
        f"&state=s&nonce=n&code_challenge={challenge}&code_challenge_method=S256"
    )
    try:
        page.goto(issuer + "/authorize?client_id=nobody")
        check(page, "error", found)
        page.goto(issuer + "/activate")
        check(page, "activation", found)
        page.goto(authorize)
        check(page, "login", found)
        page.fill("#nik", site["citizen"]["nik"])
        page.fill("#pin", "135792")
        page.click("button[type=submit] >> nth=0")
        page.wait_for_selector("[role=alert]")
        check(page, "login failed", found)
        page.fill("#nik", site["citizen"]["nik"])
        page.fill("#pin", PIN)
        page.click("button[type=submit] >> nth=0")
        page.wait_for_selector("input[name=acting_for]")
        check(page, "for whom", found)
        page.check("input[name=acting_for] >> nth=1")
        page.click("button[type=submit]")
        page.wait_for_selector("button[value=approve]")
        assert "ADI SANTOSO" in page.content()
        check(page, "consent", found)
        # The agency is not reachable from here: its redirect is answered by the test.
        page.route("https://pajak.example.go.id/**", lambda route: route.fulfill(body="ok"))
        page.click("button[value=approve]")
        page.wait_for_url("https://pajak.example.go.id/**")
        page.goto(issuer + "/account")
        page.wait_for_selector("#children")
        check(page, "portal", found)
        page.goto(issuer + "/account/otp/enrol")
        check(page, "one-time code", found)
        page.goto(issuer + "/device")
        check(page, "device code", found)
        page.fill("#user_code", "BBBB-BBBB")
        page.click("button[type=submit]")
        page.wait_for_selector("[role=alert]")
        check(page, "device code refused", found)
    finally:
        context.close()
    assert PLACE  # the kiosk's consent page is the consent page above, with a place
    assert {name: problems for name, problems in found.items() if problems} == {}
