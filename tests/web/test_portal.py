"""The citizen's portal: log in, see data, agencies and history, withdraw access, sessions."""

from __future__ import annotations

import json

from tests.web.conftest import PIN, hidden
from tests.web.test_authorization_endpoint import pkce
from tests.web.test_second_factor import code_at, secret_on


def portal_login(provider, nik, pin=PIN):
    page = provider.http.get("/account")
    assert 'name="pin"' in page.text
    return provider.http.post(
        "/account/login",
        data={"csrf_token": hidden(page.text, "csrf_token"), "nik": nik, "pin": pin},
        follow_redirects=True,
    )


def enrol_in_the_portal(provider, nik) -> str:
    """Log in to the portal and set up an authenticator; its secret. The browser's session
    is at the substantial level afterwards."""
    portal_login(provider, nik)
    enrolment = provider.http.get("/account/otp/enrol")
    secret = secret_on(enrolment)
    done = provider.http.post(
        "/account/otp/enrol",
        data={"csrf_token": hidden(enrolment.text, "csrf_token"), "otp": code_at(secret)},
        follow_redirects=True,
    )
    assert "Autentikator (kode sekali pakai) aktif" in done.text
    return secret


def submit_code(provider, page, code):
    assert 'name="otp"' in page.text, page.text[:2000]
    return provider.http.post(
        "/account/otp",
        data={"csrf_token": hidden(page.text, "csrf_token"), "otp": code},
        follow_redirects=True,
    )


def test_the_portal_asks_for_a_login_then_shows_the_citizens_data(provider):
    citizen = provider.citizen()
    page = portal_login(provider, citizen["nik"])
    assert page.status_code == 200
    assert "Akun saya" in page.text
    assert citizen["full_name"] in page.text
    assert citizen["nik"] in page.text  # their own record, to themselves
    assert "Belum ada instansi" in page.text
    assert page.headers["cache-control"] == "no-store"


def test_a_nonsense_history_page_shows_the_first_page(provider):
    citizen = provider.citizen()
    portal_login(provider, citizen["nik"])
    for page in ("0", "-3", "abc", "²", "5902188043543226368"):
        response = provider.http.get("/account", params={"page": page})
        assert response.status_code == 200, page
        assert citizen["full_name"] in response.text


def test_ids_with_a_nul_character_name_nothing_in_the_portal(provider):
    citizen = provider.citizen()
    portal_login(provider, citizen["nik"])
    assert provider.http.get("/account/receipts/a%00b.jwt").status_code == 404
    confirm = provider.http.get("/account/agencies/a%00b/revoke", follow_redirects=False)
    assert confirm.status_code == 303


def test_a_wrong_pin_in_the_portal_is_the_generic_failure(provider):
    citizen = provider.citizen()
    page = portal_login(provider, citizen["nik"], "135792")
    assert 'role="alert"' in page.text
    assert "Akun saya" not in page.text


def test_agencies_with_access_and_the_access_history(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    tokens = provider.tokens_for(agency, citizen["nik"])
    provider.userinfo(tokens["access_token"])
    page = provider.http.get("/account")  # same browser session as the agency login
    assert "Kantor Pajak Daerah" in page.text
    assert "Nama lengkap" in page.text
    assert "Rendah (PIN)" in page.text  # the history row's level, in words
    assert "urn:digital-id:loa" not in page.text
    data = provider.http.get("/account/data.json")
    assert data.headers["content-disposition"].startswith("attachment")
    body = json.loads(data.text)
    assert body["record"]["nik"] == citizen["nik"]
    assert body["agencies"][0]["client_id"] == agency.client_id
    assert body["access_history"][0]["claims"] == ["birthdate", "gender", "name"]


def test_revoking_from_the_portal_cuts_the_agency_off(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    tokens = provider.tokens_for(agency, citizen["nik"])
    confirm = provider.http.get(f"/account/agencies/{agency.client_id}/revoke")
    assert "Cabut izin" in confirm.text
    done = provider.http.post(
        f"/account/agencies/{agency.client_id}/revoke",
        data={"csrf_token": hidden(confirm.text, "csrf_token")},
        follow_redirects=True,
    )
    assert done.status_code == 200
    assert "Belum ada instansi" in done.text
    assert provider.userinfo(tokens["access_token"]).status_code == 401
    assert 'name="decision"' in provider.authorize(agency, **pkce()).text


def test_a_revoke_without_the_csrf_token_changes_nothing(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    tokens = provider.tokens_for(agency, citizen["nik"])
    refused = provider.http.post(f"/account/agencies/{agency.client_id}/revoke", data={})
    assert refused.status_code == 400
    assert provider.userinfo(tokens["access_token"]).status_code == 200


def test_a_consent_receipt_can_be_downloaded_from_the_portal(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    provider.tokens_for(agency, citizen["nik"])
    page = provider.http.get("/account")
    link = page.text.split('href="/account/receipts/')[1].split('"')[0]
    receipt = provider.http.get(f"/account/receipts/{link}")
    assert receipt.status_code == 200
    assert receipt.headers["content-type"].startswith("application/jwt")
    assert receipt.text.count(".") == 2


def test_signing_out_everywhere_ends_every_session(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    provider.tokens_for(agency, citizen["nik"])
    page = provider.http.get("/account")
    provider.http.post(
        "/account/sessions/end",
        data={"csrf_token": hidden(page.text, "csrf_token"), "sid": "*"},
    )
    assert 'name="pin"' in provider.http.get("/account").text


def test_the_portal_speaks_english_when_asked(provider):
    citizen = provider.citizen()
    portal_login(provider, citizen["nik"])
    page = provider.http.get("/account", headers={"Accept-Language": "en"})
    assert "My account" in page.text
    assert '<html lang="en">' in page.text


def test_changing_the_pin_needs_the_old_one(provider):
    citizen = provider.citizen()
    portal_login(provider, citizen["nik"])
    form = provider.http.get("/account/pin")
    token = hidden(form.text, "csrf_token")
    wrong = provider.http.post(
        "/account/pin",
        data={"csrf_token": token, "old_pin": "135792", "pin": "975310", "pin_confirm": "975310"},
    )
    assert wrong.status_code == 400
    assert 'role="alert"' in wrong.text
    weak = provider.http.post(
        "/account/pin",
        data={"csrf_token": token, "old_pin": PIN, "pin": "123456", "pin_confirm": "123456"},
    )
    assert weak.status_code == 400
    done = provider.http.post(
        "/account/pin",
        data={"csrf_token": token, "old_pin": PIN, "pin": "975310", "pin_confirm": "975310"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    provider.http.cookies.clear()
    assert "Akun saya" in portal_login(provider, citizen["nik"], "975310").text


def test_an_authenticator_is_enrolled_and_removed_in_the_portal(provider):
    import re
    from datetime import UTC, datetime, timedelta

    import pyotp

    citizen = provider.citizen()
    portal_login(provider, citizen["nik"])
    enrol = provider.http.get("/account/otp/enrol")
    secret = re.search(r'<code class="secret">([^<]+)</code>', enrol.text).group(1).replace(" ", "")
    done = provider.http.post(
        "/account/otp/enrol",
        data={"csrf_token": hidden(enrol.text, "csrf_token"), "otp": pyotp.TOTP(secret).now()},
        follow_redirects=True,
    )
    assert "Autentikator (kode sekali pakai) aktif" in done.text
    # The next portal login asks for a code.
    provider.http.cookies.clear()
    otp_page = portal_login(provider, citizen["nik"])
    assert 'name="otp"' in otp_page.text
    later = pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30))
    account = provider.http.post(
        "/account/otp",
        data={"csrf_token": hidden(otp_page.text, "csrf_token"), "otp": later},
        follow_redirects=True,
    )
    assert "Lepas autentikator" in account.text
    removed = provider.http.post(
        "/account/otp/remove",
        data={"csrf_token": hidden(account.text, "csrf_token")},
        follow_redirects=True,
    )
    assert "Autentikator belum dipasang" in removed.text


def test_every_receipt_stays_downloadable_after_a_withdrawal(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    provider.tokens_for(agency, citizen["nik"])
    confirm = provider.http.get(f"/account/agencies/{agency.client_id}/revoke")
    page = provider.http.post(
        f"/account/agencies/{agency.client_id}/revoke",
        data={"csrf_token": hidden(confirm.text, "csrf_token")},
        follow_redirects=True,
    )
    assert "izin diberikan" in page.text
    assert "izin dicabut" in page.text
    links = page.text.split('href="/account/receipts/')[1:]
    assert len(links) == 2
    for link in links:
        assert provider.http.get("/account/receipts/" + link.split('"')[0]).status_code == 200


def test_a_pin_alone_shows_nothing_of_a_citizen_with_an_authenticator(provider):
    """The portal used to set a full session before the code page: the data download, the
    PIN change and signing out everywhere then worked with the NIK and PIN alone."""
    citizen = provider.citizen()
    enrol_in_the_portal(provider, citizen["nik"])
    provider.http.cookies.clear()
    code_page = portal_login(provider, citizen["nik"])
    assert 'name="otp"' in code_page.text
    for path in ("/account", "/account/pin", "/account/otp/enrol"):
        page = provider.http.get(path, follow_redirects=False)
        assert page.status_code == 200, path
        assert 'name="otp"' in page.text, path  # the code, asked again
        assert citizen["full_name"] not in page.text, path
        assert 'name="old_pin"' not in page.text, path
        assert "<svg" not in page.text, path
    download = provider.http.get("/account/data.json", follow_redirects=False)
    assert download.status_code == 303
    assert citizen["nik"] not in download.text


def test_a_pin_alone_changes_nothing_for_a_citizen_with_an_authenticator(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    secret = enrol_in_the_portal(provider, citizen["nik"])
    tokens = provider.tokens_for(agency, citizen["nik"])  # the citizen's own session, in full
    owner = dict(provider.http.cookies)
    provider.http.cookies.clear()
    code_page = portal_login(provider, citizen["nik"])  # someone with the NIK and PIN only
    token = hidden(code_page.text, "csrf_token")
    for path, form in (
        ("/account/pin", {"old_pin": PIN, "pin": "975310", "pin_confirm": "975310"}),
        ("/account/sessions/end", {"sid": "*"}),
        ("/account/otp/remove", {}),
        ("/account/otp/enrol", {"otp": code_at(secret, 1)}),
        (f"/account/agencies/{agency.client_id}/revoke", {}),
    ):
        answer = provider.http.post(path, data={"csrf_token": token, **form})
        assert 'name="otp"' in answer.text, path
    provider.http.cookies.clear()
    for name, value in owner.items():
        provider.http.cookies.set(name, value)
    page = provider.http.get("/account")
    assert "Lepas autentikator" in page.text  # still in, authenticator still there
    assert "Kantor Pajak Daerah" in page.text  # the agency's access stands
    assert provider.userinfo(tokens["access_token"]).status_code == 200
    provider.http.cookies.clear()
    assert 'name="otp"' in portal_login(provider, citizen["nik"], PIN).text  # the PIN stands


def test_a_session_below_the_citizens_level_is_asked_for_the_code_in_the_portal(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    secret = enrol_in_the_portal(provider, citizen["nik"])
    provider.http.cookies.clear()
    provider.code_for(agency, citizen["nik"])  # an agency that asks the PIN only: low
    code_page = provider.http.get("/account")
    assert 'name="otp"' in code_page.text
    assert 'name="pin"' not in code_page.text
    wrong = submit_code(provider, code_page, "000000" if code_at(secret, 1) != "000000" else "1")
    assert 'role="alert"' in wrong.text
    page = submit_code(provider, wrong, code_at(secret, 1))
    assert citizen["full_name"] in page.text
    assert "Lepas autentikator" in page.text


def test_the_portal_shows_times_dates_regions_and_devices_in_words(provider):
    import re

    from fastapi.testclient import TestClient

    # A citizen of Kota Jayapura (Papua: WIT, UTC+9) on an Android phone.
    citizen = provider.citizen(district_code="917101", sex="L")
    phone = TestClient(
        provider.http.app,
        base_url=str(provider.http.base_url),
        headers={
            "user-agent": "Mozilla/5.0 (Linux; Android 14; SM-A546E) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36"
        },
    )
    page = phone.get("/account")
    page = phone.post(
        "/account/login",
        data={"csrf_token": hidden(page.text, "csrf_token"), "nik": citizen["nik"], "pin": PIN},
        follow_redirects=True,
    )
    text = page.text
    assert "20 Oktober 1990" in text  # the birth date
    assert "Laki-laki" in text
    assert "Jayapura Utara, Kota Jayapura, Papua" in text
    assert "<td>917101<" not in text  # the region is named, not coded
    assert "Chrome di Android" in text
    assert re.search(r"\d{1,2} \w+ \d{4}, \d{2}\.\d{2} WIT", text)  # the session's start
    assert not re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", text)  # never ISO
    english = phone.get("/account", params={"ui_locales": "en"})
    assert "Chrome on Android" in english.text
    assert re.search(r"\d{1,2} [A-Z][a-z]+ \d{4}, \d{2}:\d{2} WIT", english.text)
