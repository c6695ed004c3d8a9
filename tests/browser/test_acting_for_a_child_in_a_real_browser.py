"""A parent logs in to the demo agency (authlib's client) for their child in a real browser
(Playwright + Debian's Chromium), on both databases: asked for whom, they choose the child,
consent on the child's behalf, and the agency's verified ID token carries the child's claims
with ``act`` naming the parent."""

from __future__ import annotations

import shutil
from datetime import date

import pytest

from digital_id.registry.importer import CitizenImporter
from digital_id.registry.records import RecordValidator
from digital_id.registry.regions import load_regions
from digital_id.registry.register_files import RejectReport
from tests.browser.conftest import ARTIFACTS, PIN, needs_chromium, running_demo
from tests.factories import citizen_row

pytestmark = needs_chromium

KK_NUMBER = "3273010101158888"


@pytest.fixture
def demo(database_url, engine, keys_dir, key_store, tmp_path):
    with running_demo(
        database_url,
        engine,
        keys_dir,
        key_store,
        tmp_path,
        scope="openid profile",
        accepts_delegation=True,
        kk_number=KK_NUMBER,
        family_relationship="KEPALA KELUARGA",
    ) as demo:
        child = citizen_row(
            birth_date=date(2016, 8, 17),
            kk_number=KK_NUMBER,
            family_relationship="ANAK",
            marital_status="BELUM KAWIN",
            full_name="ADI SANTOSO",
            sex="L",
        )
        CitizenImporter(engine).run(
            iter([(2, child)]), RecordValidator(load_regions()), RejectReport(tmp_path / "c.csv")
        )
        yield demo


def test_a_parent_logs_in_to_the_demo_agency_for_their_child(demo, browser, request):
    shots = ARTIFACTS / request.node.callspec.id
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    context = browser.new_context(locale="id-ID", viewport={"width": 360, "height": 740})
    page = context.new_page()
    try:
        page.goto(demo["agency"] + "/")
        page.click("text=Log in with Digital ID")
        page.wait_for_selector("#pin")
        page.fill("#nik", demo["citizen"]["nik"])
        page.fill("#pin", PIN)
        page.click("button[type=submit]")

        page.wait_for_selector("input[name=acting_for]")
        assert page.locator("h1").inner_text() == "Untuk siapa Anda menggunakan layanan ini?"
        page.screenshot(path=str(shots / "1-for-whom.png"), full_page=True)
        page.check("text=ADI SANTOSO")
        page.click("button[type=submit]")

        page.wait_for_selector("button[value=approve]")
        assert "atas nama anak Anda, ADI SANTOSO" in page.content()
        page.screenshot(path=str(shots / "2-consent-for-the-child.png"), full_page=True)
        page.click("button[value=approve]")

        page.wait_for_url(demo["agency"] + "/")
        body = page.content()
        assert "Signed in with Digital ID" in body
        assert "ADI SANTOSO" in body
        assert "<code>act</code>" in body
        assert demo["citizen"]["full_name"] not in body  # the parent's own data is not sent
        page.screenshot(path=str(shots / "3-agency-signed-in-for-the-child.png"), full_page=True)
    finally:
        context.close()
