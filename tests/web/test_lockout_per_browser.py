"""A lock belongs to a browser (issue 13, Medium 6): a stranger typing a NIK from a KTP with
wrong PINs locks strangers out, not the citizen at a browser they logged in from; wrong PINs
at that browser lock that browser. And the login and logout cookie rules that go with it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.web.conftest import ISSUER, PIN, Provider, hidden
from tests.web.test_authorization_endpoint import pkce, redirected
from tests.web.test_portal import portal_login
from tests.web.test_refresh_tokens import OFFLINE, offline_agency, refresh

WRONG_PIN = "135792"


@pytest.fixture
def settings(settings):
    return settings.model_copy(
        update={
            "lockout_threshold": 2,
            "rate_limit_login_per_nik": 4,
            "rate_limit_login_per_nik_seconds": 10**6,
        }
    )


def browser_at(provider: Provider, address: str) -> Provider:
    """The same running provider, from another browser at another IP address."""
    http = TestClient(provider.http.app, base_url=ISSUER, client=(address, 50000))
    return Provider(http, provider.engine, provider.key_store, provider.settings, provider.tmp_path)


def in_portal(page) -> bool:
    return page.status_code == 200 and "Akun saya" in page.text and 'name="pin"' not in page.text


def recognised_then_away(provider: Provider, nik: str) -> None:
    """The citizen logs in at this browser, then the session ends (the browser stays)."""
    assert in_portal(portal_login(provider, nik))
    provider.http.cookies.delete("dgid_session")


def test_a_strangers_lock_and_spent_nik_budget_do_not_keep_the_citizen_out_of_their_browser(
    provider,
):
    citizen = provider.citizen()
    recognised_then_away(provider, citizen["nik"])
    for number in range(4):  # locks the NIK for strangers and spends its whole budget
        portal_login(browser_at(provider, f"198.51.100.{number + 1}"), citizen["nik"], WRONG_PIN)
    stranger = portal_login(browser_at(provider, "198.51.100.9"), citizen["nik"])
    assert not in_portal(stranger)  # even with the right PIN
    assert in_portal(portal_login(provider, citizen["nik"]))
    agency = provider.agency()
    assert provider.tokens_for(agency, citizen["nik"])["access_token"]


def test_wrong_pins_at_a_recognised_browser_lock_that_browser_only(provider):
    citizen = provider.citizen()
    recognised_then_away(provider, citizen["nik"])
    for _ in range(2):
        assert not in_portal(portal_login(provider, citizen["nik"], WRONG_PIN))
    assert not in_portal(portal_login(provider, citizen["nik"]))  # this browser is locked
    elsewhere = browser_at(provider, "198.51.100.7")
    assert in_portal(portal_login(elsewhere, citizen["nik"]))


def test_the_portal_tells_the_citizen_about_failed_logins_and_locks_while_away(provider):
    citizen = provider.citizen()
    recognised_then_away(provider, citizen["nik"])
    stranger = browser_at(provider, "198.51.100.5")
    for _ in range(3):
        portal_login(stranger, citizen["nik"], WRONG_PIN)
    page = portal_login(provider, citizen["nik"])
    assert in_portal(page)
    assert "ada 3 percobaan masuk yang gagal" in page.text
    assert "dikunci 1 kali" in page.text
    english = provider.http.get("/account", headers={"Accept-Language": "en"})
    assert "there were 3 failed attempts to log in" in english.text
    assert "it was locked 1 times" in english.text
    provider.http.cookies.delete("dgid_session")
    assert "percobaan masuk yang gagal" not in portal_login(provider, citizen["nik"]).text


def test_the_portal_login_ends_the_browsers_previous_session(provider):
    first, second = provider.citizen(), provider.citizen()
    assert in_portal(portal_login(provider, first["nik"]))
    old_session = provider.http.cookies["dgid_session"]
    page = provider.http.get("/account")
    again = provider.http.post(
        "/account/login",
        data={"csrf_token": hidden(page.text, "csrf_token"), "nik": second["nik"], "pin": PIN},
        follow_redirects=True,
    )
    assert second["full_name"] in again.text
    with TestClient(provider.http.app, base_url=ISSUER) as other:
        other.cookies.set("dgid_session", old_session)
        assert first["full_name"] not in other.get("/account").text


def test_the_browser_cookie_rotates_at_login_and_logout_and_old_csrf_tokens_die(provider):
    citizen = provider.citizen()
    login_page = provider.http.get("/account")
    before = provider.http.cookies["dgid_browser"]
    token_before = hidden(login_page.text, "csrf_token")
    assert in_portal(portal_login(provider, citizen["nik"]))
    after = provider.http.cookies["dgid_browser"]
    assert after != before
    forged = provider.http.post(
        "/account/sessions/end", data={"csrf_token": token_before, "sid": "*"}
    )
    assert forged.status_code == 400
    assert in_portal(provider.http.get("/account"))
    confirm = provider.http.get("/logout")
    provider.http.post("/logout", data={"csrf_token": hidden(confirm.text, "csrf_token")})
    assert provider.http.cookies["dgid_browser"] not in (before, after)
    assert "dgid_session" not in provider.http.cookies


def test_changing_the_pin_ends_the_other_sessions_and_refresh_tokens(provider):
    citizen = provider.citizen()
    agency = offline_agency(provider)
    phone = browser_at(provider, "198.51.100.8")
    tokens = phone.tokens_for(agency, citizen["nik"], **OFFLINE)
    assert in_portal(portal_login(provider, citizen["nik"]))
    form = provider.http.get("/account/pin")
    changed = provider.http.post(
        "/account/pin",
        data={
            "csrf_token": hidden(form.text, "csrf_token"),
            "old_pin": PIN,
            "pin": "975310",
            "pin_confirm": "975310",
        },
        follow_redirects=False,
    )
    assert changed.status_code == 303
    assert refresh(phone, agency, tokens["refresh_token"]).status_code == 400
    assert phone.userinfo(tokens["access_token"]).status_code == 401
    sso = redirected(phone.authorize(agency, prompt="none", **pkce()))
    assert sso["error"] == "login_required"
    assert in_portal(provider.http.get("/account"))  # this session stays
