"""The device authorization grant (RFC 8628): a kiosk asks for codes at
``/device_authorization``, a citizen claims the user code on their own phone at ``/device``,
logs in and decides, and the kiosk's polls at ``/token`` answer ``authorization_pending``,
``slow_down``, ``access_denied`` or ``expired_token`` until the tokens come out, once."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from digital_id.accounts import operator_actions
from digital_id.audit.models import AuditEvent
from digital_id.db.types import utc_now
from digital_id.grants.device import USER_CODE_ALPHABET, normalized_user_code
from digital_id.grants.models import AuthorizationGrant, DeviceAuthorization
from digital_id.web.housekeeping import purge_round
from tests.web.conftest import ISSUER, PIN, Agency, Provider, hidden
from tests.web.test_rate_limits import assert_rate_limited

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
PLACE = "MPP Digital Kabupaten Banyuwangi, loket 3"


def kiosk(provider: Provider, method: str = "client_secret_basic", **metadata: Any) -> Agency:
    return provider.agency(
        method,
        **{
            "redirect_uris": [],
            "grant_types": [DEVICE_GRANT],
            "device_location": PLACE,
            "client_name#id": "Anjungan Pajak Daerah",
            "client_name#en": "Regional Tax Kiosk",
            **metadata,
        },
    )


def start(provider: Provider, agency: Agency, **parameters: str) -> httpx.Response:
    form = {"scope": "openid profile", **parameters}
    return provider.http.post("/device_authorization", **agency.authenticated(form))


def codes(provider: Provider, agency: Agency, **parameters: str) -> dict[str, Any]:
    response = start(provider, agency, **parameters)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def poll(http: httpx.Client | TestClient, agency: Agency, device_code: str) -> httpx.Response:
    form = {"grant_type": DEVICE_GRANT, "device_code": device_code}
    return http.post("/token", **agency.authenticated(form))


def phone(provider: Provider, address: str = "203.0.113.50") -> TestClient:
    """Another browser (a citizen's phone), on the same running provider."""
    return TestClient(provider.http.app, base_url=ISSUER, client=(address, 50000))


def enter_code(browser: httpx.Client | TestClient, user_code: str) -> httpx.Response:
    page = browser.get("/device", params={"user_code": user_code})
    assert page.status_code == 200, page.text[:1000]
    return browser.post(
        "/device", data={"csrf_token": hidden(page.text, "csrf_token"), "user_code": user_code}
    )


def log_in(browser: httpx.Client | TestClient, page: httpx.Response, nik: str, pin: str = PIN):
    assert 'action="/device/login"' in page.text, page.text[:2000]
    return browser.post(
        "/device/login",
        data={"csrf_token": hidden(page.text, "csrf_token"), "nik": nik, "pin": pin},
    )


def decide(browser: httpx.Client | TestClient, page: httpx.Response, decision: str = "approve"):
    assert 'action="/device/consent"' in page.text, page.text[:2000]
    return browser.post(
        "/device/consent",
        data={"csrf_token": hidden(page.text, "csrf_token"), "decision": decision},
    )


def approve(
    browser: httpx.Client | TestClient, user_code: str, nik: str, decision: str = "approve"
) -> httpx.Response:
    done = decide(browser, log_in(browser, enter_code(browser, user_code), nik), decision)
    assert done.status_code == 200, done.text[:2000]
    return done


def set_expiry(provider: Provider, when: Any) -> None:
    with provider.engine.begin() as connection:
        connection.execute(update(DeviceAuthorization).values(expires_at=when))


def events(provider: Provider, tag: str) -> int:
    with Session(provider.engine) as session:
        return session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.tag == tag)
        )


# --- discovery and the device authorization endpoint ----------------------------------------


def test_discovery_advertises_the_device_authorization_endpoint_and_grant(provider):
    metadata = provider.http.get("/.well-known/openid-configuration").json()
    assert metadata["device_authorization_endpoint"] == ISSUER + "/device_authorization"
    assert DEVICE_GRANT in metadata["grant_types_supported"]


def test_device_authorization_gives_the_codes_rfc_8628_names(provider):
    body = codes(provider, kiosk(provider))
    assert set(body) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
        "interval",
    }
    user_code = body["user_code"]
    assert len(user_code) == 9
    assert user_code[4] == "-"
    assert set(user_code.replace("-", "")) <= set(USER_CODE_ALPHABET)
    assert body["verification_uri"] == ISSUER + "/device"
    assert body["verification_uri_complete"] == f"{ISSUER}/device?user_code={user_code}"
    assert body["expires_in"] == 600
    assert body["interval"] == 5
    assert len(body["device_code"]) >= 40


def test_user_codes_have_no_look_alikes_and_no_vowels():
    assert not set("AEIOUY01") & set(USER_CODE_ALPHABET)
    assert normalized_user_code("wdjb mjht") == "WDJB-MJHT"
    assert normalized_user_code("WDJB-MJHT") == "WDJB-MJHT"
    assert normalized_user_code("WDJ-BMJHT") == "WDJB-MJHT"
    assert normalized_user_code("WDJB-MJH0") is None
    assert normalized_user_code("WDJB-MJH") is None
    assert normalized_user_code("WDJB-MJHTX") is None


def test_device_authorization_is_refused_to_a_client_not_registered_for_it(provider):
    agency = provider.agency()  # an ordinary web agency: authorization_code only
    response = start(provider, agency)
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


def test_device_authorization_needs_the_clients_own_authentication(provider):
    agency = kiosk(provider)
    response = provider.http.post(
        "/device_authorization",
        data={"scope": "openid", "client_id": agency.client_id},
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    wrong = provider.http.post(
        "/device_authorization", data={"scope": "openid"}, auth=(agency.client_id, "wrong")
    )
    assert wrong.status_code == 401
    with Session(provider.engine) as session:
        assert session.scalar(select(func.count()).select_from(DeviceAuthorization)) == 0


def test_device_authorization_needs_an_openid_scope_and_a_well_formed_claims(provider):
    agency = kiosk(provider)
    no_openid = start(provider, agency, scope="profile")
    assert no_openid.status_code == 400
    assert no_openid.json()["error"] == "invalid_scope"
    bad_claims = start(provider, agency, claims="[1, 2]")
    assert bad_claims.status_code == 400
    assert bad_claims.json()["error"] == "invalid_request"
    deep = start(provider, agency, claims='{"id_token":' * 200 + "{}" + "}" * 200)
    assert deep.status_code == 400
    with Session(provider.engine) as session:
        assert session.scalar(select(func.count()).select_from(DeviceAuthorization)) == 0


def test_a_public_kiosk_authenticates_with_its_client_id_alone(provider):
    agency = kiosk(provider, "none")
    body = codes(provider, agency)
    assert poll(provider.http, agency, body["device_code"]).json()["error"] == (
        "authorization_pending"
    )


# --- polling -------------------------------------------------------------------------------


def test_the_whole_grant_gives_tokens_on_the_first_poll_after_approval_and_only_once(provider):
    citizen = provider.citizen()
    agency = kiosk(provider)
    body = codes(provider, agency)
    first = poll(provider.http, agency, body["device_code"])
    assert first.status_code == 400
    assert first.json()["error"] == "authorization_pending"
    assert first.headers["cache-control"] == "no-store"

    browser = phone(provider)
    done = approve(browser, body["user_code"], citizen["nik"])
    assert "Anjungan Pajak Daerah" in done.text

    tokens = poll(provider.http, agency, body["device_code"])
    assert tokens.status_code == 200, tokens.text
    issued = tokens.json()
    assert issued["token_type"] == "Bearer"
    assert "refresh_token" not in issued
    claims = provider.verify(issued["id_token"])
    assert claims["aud"] == agency.client_id
    assert claims["iss"] == ISSUER
    assert claims["acr"] == "urn:digital-id:loa:low"
    assert "sid" in claims
    assert claims["sub"] != citizen["nik"]
    userinfo = provider.userinfo(issued["access_token"])
    assert userinfo.status_code == 200
    assert userinfo.json()["sub"] == claims["sub"]
    assert userinfo.json()["name"]

    again = poll(provider.http, agency, body["device_code"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert events(provider, "device:approved") == 1
    assert events(provider, "token:issued") == 1


def test_the_kiosks_subject_is_the_same_as_its_web_logins_would_be(provider):
    citizen = provider.citizen()
    agency = kiosk(
        provider,
        redirect_uris=["https://pajak.example.go.id/callback"],
        grant_types=[DEVICE_GRANT, "authorization_code"],
    )
    body = codes(provider, agency)
    approve(phone(provider), body["user_code"], citizen["nik"])
    device_sub = provider.verify(
        poll(provider.http, agency, body["device_code"]).json()["id_token"]
    )["sub"]
    assert (
        device_sub
        == provider.verify(provider.tokens_for(agency, citizen["nik"])["id_token"])["sub"]
    )


def test_polling_faster_than_the_interval_is_told_to_slow_down_for_good(provider):
    agency = kiosk(provider)
    body = codes(provider, agency)
    assert poll(provider.http, agency, body["device_code"]).json()["error"] == (
        "authorization_pending"
    )
    fast = poll(provider.http, agency, body["device_code"])
    assert fast.status_code == 400
    assert fast.json()["error"] == "slow_down"
    assert "10 seconds" in fast.json()["error_description"]
    faster = poll(provider.http, agency, body["device_code"])
    assert faster.json()["error"] == "slow_down"
    assert "15 seconds" in faster.json()["error_description"]
    with provider.engine.begin() as connection:
        connection.execute(
            update(DeviceAuthorization).values(last_polled_at=utc_now() - timedelta(seconds=16))
        )
    assert poll(provider.http, agency, body["device_code"]).json()["error"] == (
        "authorization_pending"
    )


def test_a_denial_reaches_the_kiosk_as_access_denied_and_releases_nothing(provider):
    citizen = provider.citizen()
    agency = kiosk(provider)
    body = codes(provider, agency)
    done = approve(phone(provider), body["user_code"], citizen["nik"], decision="deny")
    assert "Anjungan Pajak Daerah" in done.text
    denied = poll(provider.http, agency, body["device_code"])
    assert denied.status_code == 400
    assert denied.json()["error"] == "access_denied"
    with Session(provider.engine) as session:
        assert session.scalar(select(func.count()).select_from(AuthorizationGrant)) == 0
    assert events(provider, "device:denied") == 1


def test_an_expired_code_answers_expired_token_and_cannot_be_claimed(provider):
    citizen = provider.citizen()
    agency = kiosk(provider)
    body = codes(provider, agency)
    set_expiry(provider, utc_now() - timedelta(seconds=1))
    expired = poll(provider.http, agency, body["device_code"])
    assert expired.status_code == 400
    assert expired.json()["error"] == "expired_token"
    refused = enter_code(phone(provider), body["user_code"])
    assert refused.status_code == 400
    assert 'name="nik"' not in refused.text
    assert citizen  # nobody logged in


def test_a_code_that_expires_during_the_login_is_not_approved(provider):
    citizen = provider.citizen()
    agency = kiosk(provider)
    body = codes(provider, agency)
    browser = phone(provider)
    consent = log_in(browser, enter_code(browser, body["user_code"]), citizen["nik"])
    set_expiry(provider, utc_now() - timedelta(seconds=1))
    late = decide(browser, consent)
    assert late.status_code == 400
    assert poll(provider.http, agency, body["device_code"]).json()["error"] == "expired_token"
    with Session(provider.engine) as session:
        assert session.scalar(select(func.count()).select_from(AuthorizationGrant)) == 0


def test_another_clients_device_code_is_an_invalid_grant(provider):
    agency, other = kiosk(provider), kiosk(provider)
    body = codes(provider, agency)
    stolen = poll(provider.http, other, body["device_code"])
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    unknown = poll(provider.http, agency, "not-a-device-code")
    assert unknown.json()["error"] == "invalid_grant"
    missing = provider.http.post("/token", **agency.authenticated({"grant_type": DEVICE_GRANT}))
    assert missing.json()["error"] == "invalid_request"


def test_a_blocked_citizens_approval_gives_the_kiosk_nothing(provider):
    citizen = provider.citizen()
    agency = kiosk(provider)
    body = codes(provider, agency)
    approve(phone(provider), body["user_code"], citizen["nik"])
    with Session(provider.engine) as session, session.begin():
        operator_actions.block(session, citizen["nik"], pairwise_secret=b"unused")
    refused = poll(provider.http, agency, body["device_code"])
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"


# --- the citizen's pages -------------------------------------------------------------------


def test_the_consent_page_names_the_kiosks_agency_and_place_in_both_languages(provider):
    citizen = provider.citizen()
    agency = kiosk(provider)
    body = codes(provider, agency, ui_locales="en")
    browser = phone(provider)
    consent = log_in(browser, enter_code(browser, body["user_code"]), citizen["nik"])
    assert consent.status_code == 200
    assert "Regional Tax Kiosk" in consent.text
    assert PLACE in consent.text
    assert "Approve" in consent.text
    switched = browser.get(
        "/language", params={"to": "id", "next": "/device/continue"}, follow_redirects=True
    )
    assert switched.status_code == 200
    assert "Anjungan Pajak Daerah" in switched.text
    assert PLACE in switched.text
    assert "Setujui" in switched.text


def test_the_first_browser_to_claim_a_code_holds_it(provider):
    first_citizen = provider.citizen()
    agency = kiosk(provider)
    body = codes(provider, agency)
    first = phone(provider, "203.0.113.51")
    assert 'action="/device/login"' in enter_code(first, body["user_code"]).text
    second = phone(provider, "203.0.113.52")
    refused = enter_code(second, body["user_code"])
    assert refused.status_code == 400
    assert 'name="nik"' not in refused.text
    # The second browser cannot step into the first one's flow either.
    stray = second.post("/device/consent", data={"csrf_token": "x", "decision": "approve"})
    assert stray.status_code == 400
    approve_page = log_in(first, enter_code_page_of(first), first_citizen["nik"])
    assert decide(first, approve_page).status_code == 200
    assert poll(provider.http, agency, body["device_code"]).status_code == 200


def enter_code_page_of(browser: TestClient) -> httpx.Response:
    """The step a browser that claimed a code is at."""
    return browser.get("/device/continue")


def test_the_device_steps_refuse_a_foreign_csrf_token(provider):
    citizen = provider.citizen()
    agency = kiosk(provider)
    body = codes(provider, agency)
    browser = phone(provider)
    consent = log_in(browser, enter_code(browser, body["user_code"]), citizen["nik"])
    forged = browser.post("/device/consent", data={"csrf_token": "forged", "decision": "approve"})
    assert forged.status_code == 400
    assert poll(provider.http, agency, body["device_code"]).json()["error"] == (
        "authorization_pending"
    )
    assert decide(browser, consent).status_code == 200


def test_a_kiosk_that_needs_substantial_asks_for_the_one_time_code(provider):
    citizen = provider.citizen()
    agency = kiosk(provider)
    body = codes(provider, agency, acr_values="urn:digital-id:loa:substantial")
    browser = phone(provider)
    second = log_in(browser, enter_code(browser, body["user_code"]), citizen["nik"])
    assert 'action="/device/otp"' in second.text
    wrong = browser.post(
        "/device/otp", data={"csrf_token": hidden(second.text, "csrf_token"), "otp": "000000"}
    )
    assert 'action="/device/otp"' in wrong.text
    assert poll(provider.http, agency, body["device_code"]).json()["error"] == (
        "authorization_pending"
    )


def test_a_wrong_pin_on_the_device_login_is_a_generic_failure(provider):
    citizen = provider.citizen()
    agency = kiosk(provider)
    body = codes(provider, agency)
    browser = phone(provider)
    failed = log_in(browser, enter_code(browser, body["user_code"]), citizen["nik"], "999999")
    assert failed.status_code == 200
    assert 'action="/device/login"' in failed.text
    assert 'role="alert"' in failed.text
    unknown = log_in(browser, failed, "3171011507900001", "999999")
    assert unknown.text.count('role="alert"') == 1


# --- guarding the codes --------------------------------------------------------------------


def test_user_code_guessing_is_limited_per_address(settings, engine, key_store):
    from digital_id.app import create_app

    key_store.generate("RS256", size=2048)
    key_store.generate("ES256")
    # Hour-long windows: no window boundary falls inside the burst.
    limited = settings.model_copy(
        update={"rate_limit_user_codes_per_ip": 3, "rate_limit_user_codes_per_ip_seconds": 3600}
    )
    app = create_app(limited)
    with TestClient(app, base_url=ISSUER, client=("198.51.100.7", 5000)) as browser:
        page = browser.get("/device")
        csrf = hidden(page.text, "csrf_token")
        for _ in range(3):
            wrong = browser.post("/device", data={"csrf_token": csrf, "user_code": "BBBB-BBBB"})
            assert wrong.status_code == 400
        assert_rate_limited(
            browser.post("/device", data={"csrf_token": csrf, "user_code": "BBBB-BBBB"})
        )
        other = TestClient(app, base_url=ISSUER, client=("198.51.100.8", 5000))
        page = other.get("/device")
        elsewhere = other.post(
            "/device", data={"csrf_token": hidden(page.text, "csrf_token"), "user_code": "BBBBBBBB"}
        )
        assert elsewhere.status_code == 400  # another address has its own budget
    with Session(engine) as session:
        refused = session.scalar(
            select(func.count()).where(AuditEvent.tag == "device:code_refused")
        )
    assert refused == 4


def test_user_code_guessing_is_limited_in_total_across_addresses(settings, engine, key_store):
    from digital_id.app import create_app

    key_store.generate("RS256", size=2048)
    key_store.generate("ES256")
    app = create_app(
        settings.model_copy(
            update={"rate_limit_user_codes_total": 3, "rate_limit_user_codes_total_seconds": 3600}
        )
    )
    with TestClient(app, base_url=ISSUER):
        answers = []
        for index in range(4):
            browser = TestClient(app, base_url=ISSUER, client=(f"198.51.100.{index + 10}", 5000))
            page = browser.get("/device")
            answers.append(
                browser.post(
                    "/device",
                    data={"csrf_token": hidden(page.text, "csrf_token"), "user_code": "BBBBBBBB"},
                ).status_code
            )
    assert answers == [400, 400, 400, 429]


def test_housekeeping_purges_device_authorizations_past_their_retention(provider):
    agency = kiosk(provider)
    codes(provider, agency)
    codes(provider, agency)
    set_expiry(provider, utc_now() - timedelta(minutes=11))
    assert purge_round(provider.engine)["device_authorizations"] == 2


# --- against a live server, in parallel ----------------------------------------------------


@pytest.mark.parametrize("pollers", [6])
def test_parallel_polls_after_approval_have_one_winner(provider, live_server, pollers):
    citizen = provider.citizen()
    agency = kiosk(provider)
    with httpx.Client(base_url=live_server) as http:
        response = http.post(
            "/device_authorization", **agency.authenticated({"scope": "openid profile"})
        )
        body = response.json()
        with httpx.Client(base_url=live_server, follow_redirects=True) as browser:
            approve(browser, body["user_code"], citizen["nik"])
    barrier = threading.Barrier(pollers)
    statuses: list[int] = []

    def one_poll() -> None:
        with httpx.Client(base_url=live_server) as http:
            barrier.wait()
            statuses.append(poll(http, agency, body["device_code"]).status_code)

    threads = [threading.Thread(target=one_poll) for _ in range(pollers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [200] + [400] * (pollers - 1)
    with Session(provider.engine) as session:
        assert session.scalar(select(func.count()).where(AuditEvent.tag == "token:issued")) == 1


def test_parallel_claims_of_one_code_have_one_winner(provider, live_server):
    agency = kiosk(provider)
    body = codes(provider, agency)
    barrier = threading.Barrier(5)
    statuses: list[int] = []

    def one_claim(index: int) -> None:
        with httpx.Client(base_url=live_server, headers={"X-Test": str(index)}) as browser:
            page = browser.get("/device")
            csrf = hidden(page.text, "csrf_token")
            barrier.wait()
            statuses.append(
                browser.post(
                    "/device", data={"csrf_token": csrf, "user_code": body["user_code"]}
                ).status_code
            )

    threads = [threading.Thread(target=one_claim, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [200, 400, 400, 400, 400]


def test_a_kiosk_disabled_during_the_login_gets_nothing(provider):
    from digital_id.clients import service as clients

    citizen = provider.citizen()
    agency = kiosk(provider)
    body = codes(provider, agency)
    browser = phone(provider)
    consent = log_in(browser, enter_code(browser, body["user_code"]), citizen["nik"])
    with Session(provider.engine) as session, session.begin():
        clients.set_enabled(session, agency.client_id, False)
    refused = decide(browser, consent)
    assert refused.status_code == 400
    with Session(provider.engine) as session:
        assert session.scalar(select(func.count()).select_from(AuthorizationGrant)) == 0
