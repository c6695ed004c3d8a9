"""Passkeys against the running app, on SQLite and PostgreSQL: enrolled in the portal from a
substantial session, named, listed and removed; a login with no PIN (discoverable, or after
the NIK) reaching substantial with amr hwk/swk + user; a step-up from a PIN session in place
of the one-time code; and the limits: CSRF, rate limits, a counter regression, a blocked
citizen, another citizen's passkey."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digital_id.accounts import operator_actions
from digital_id.app import create_app
from digital_id.audit.models import AuditEvent
from tests.passkey_authenticator import SoftPasskey
from tests.web.conftest import Provider, hidden, pkce_pair, query_of
from tests.web.test_portal import enrol_in_the_portal, portal_login
from tests.web.test_second_factor import code_at

# Browsers take passkeys only for a domain name, never an IP address: these tests' issuer.
LOCAL_ISSUER = "http://localhost:8000"
RP_ID, ORIGIN = "localhost", LOCAL_ISSUER


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"issuer": LOCAL_ISSUER})


@pytest.fixture
def provider(settings, engine, key_store, tmp_path):
    key_store.generate("RS256", size=2048)
    key_store.generate("ES256")
    with TestClient(create_app(settings), base_url=LOCAL_ISSUER) as http:
        yield Provider(http, engine, key_store, settings, tmp_path)


SUBSTANTIAL = "urn:digital-id:loa:substantial"


def options(provider: Provider, page_text: str, purpose: str) -> httpx.Response:
    return provider.http.post(
        "/passkeys/options",
        data={"csrf_token": hidden(page_text, "csrf_token"), "purpose": purpose},
    )


def enrol_passkey(provider: Provider, nik: str, name: str = "Ponsel saya", **kind) -> SoftPasskey:
    """Log in to the portal with PIN and code (substantial), then enrol a passkey."""
    enrol_in_the_portal(provider, nik)
    return add_passkey(provider, name, **kind)


def add_passkey(provider: Provider, name: str = "Ponsel saya", **kind) -> SoftPasskey:
    account = provider.http.get("/account")
    answer = options(provider, account.text, "enrol")
    assert answer.status_code == 200, answer.text
    device = SoftPasskey(rp_id=RP_ID, origin=ORIGIN, **kind)
    done = provider.http.post(
        "/account/passkeys",
        data={
            "csrf_token": hidden(account.text, "csrf_token"),
            "name": name,
            "credential": device.create(answer.text),
        },
        follow_redirects=True,
    )
    assert done.status_code == 200, done.text[:1000]
    assert name in done.text
    return device


def log_out(provider: Provider) -> None:
    provider.http.cookies.clear()


def passkey_login(provider: Provider, page: httpx.Response, device: SoftPasskey, nik: str = "",
                  action: str = "/authorize/login", **response) -> httpx.Response:  # fmt: skip
    answer = options(provider, page.text, "login")
    assert answer.status_code == 200, answer.text
    data = {
        "csrf_token": hidden(page.text, "csrf_token"),
        "nik": nik,
        "pin": "",
        "credential": device.get(answer.text, **response),
    }
    if 'name="authorization_request"' in page.text:
        data["authorization_request"] = hidden(page.text, "authorization_request")
    return provider.http.post(action, data=data, follow_redirects=False)


def step_up(provider: Provider, page: httpx.Response, device: SoftPasskey) -> httpx.Response:
    """The one-time-code page answered with a passkey in place of the code."""
    answer = options(provider, page.text, "step_up")
    return provider.http.post(
        "/authorize/otp",
        data={
            "csrf_token": hidden(page.text, "csrf_token"),
            "authorization_request": hidden(page.text, "authorization_request"),
            "otp": "",
            "credential": device.get(answer.text),
        },
        follow_redirects=False,
    )


def tokens_after(provider, agency, page, verifier):
    if 'name="decision"' in page.text:
        page = provider.decide(page)
    assert page.status_code == 303, page.text[:2000]
    code = query_of(page.headers["location"])["code"]
    response = provider.token(agency, code, verifier)
    assert response.status_code == 200, response.text
    return provider.verify(response.json()["id_token"])


def events(provider, tag) -> int:
    with Session(provider.engine) as session:
        return session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.tag == tag)
        )


def test_a_passkey_is_enrolled_named_listed_and_removed_in_the_portal(provider):
    citizen = provider.citizen()
    enrol_passkey(provider, citizen["nik"], name="Ponsel kerja")
    page = provider.http.get("/account")
    assert "Ponsel kerja" in page.text
    assert "belum pernah dipakai" in page.text
    passkey_id = re.search(r'name="passkey" value="(\d+)"', page.text).group(1)
    removed = provider.http.post(
        "/account/passkeys/remove",
        data={"csrf_token": hidden(page.text, "csrf_token"), "passkey": passkey_id},
        follow_redirects=True,
    )
    assert "Ponsel kerja" not in removed.text
    assert events(provider, "passkey:enrolled") == 1
    assert events(provider, "passkey:removed") == 1


def test_enrolling_needs_a_session_at_the_substantial_level(provider):
    citizen = provider.citizen()
    page = portal_login(provider, citizen["nik"])  # PIN only: low
    assert "Tambah passkey" not in page.text
    refused = options(provider, page.text, "enrol")
    assert refused.status_code == 403
    device = SoftPasskey(rp_id=RP_ID, origin=ORIGIN)
    forged = provider.http.post(
        "/account/passkeys",
        data={"csrf_token": hidden(page.text, "csrf_token"), "name": "x", "credential": "{}"},
    )
    assert forged.status_code == 400
    assert device  # nothing was enrolled
    assert events(provider, "passkey:enrolled") == 0


def test_a_passkey_alone_logs_in_to_an_agency_at_substantial(provider):
    citizen = provider.citizen()
    device = enrol_passkey(provider, citizen["nik"])
    log_out(provider)
    agency = provider.agency()
    verifier, challenge = pkce_pair()
    page = provider.authorize(agency, code_challenge=challenge, code_challenge_method="S256")
    assert 'data-passkey="login"' in page.text
    after = passkey_login(provider, page, device)
    claims = tokens_after(provider, agency, after, verifier)
    assert claims["acr"] == SUBSTANTIAL
    assert claims["amr"] == ["hwk", "user"]


def test_a_synced_passkey_counts_as_a_software_key(provider):
    citizen = provider.citizen()
    device = enrol_passkey(provider, citizen["nik"], synced=True)
    log_out(provider)
    agency = provider.agency()
    verifier, challenge = pkce_pair()
    page = provider.authorize(agency, code_challenge=challenge, code_challenge_method="S256")
    claims = tokens_after(provider, agency, passkey_login(provider, page, device), verifier)
    assert claims["amr"] == ["swk", "user"]


def test_a_passkey_after_the_nik_must_be_that_citizens(provider):
    owner, other = provider.citizen(), provider.citizen()
    device = enrol_passkey(provider, owner["nik"])
    log_out(provider)
    page = provider.authorize(provider.agency(), **dict(zip(
        ("code_challenge", "code_challenge_method"), (pkce_pair()[1], "S256"), strict=True)))  # fmt: skip
    refused = passkey_login(provider, page, device, nik=other["nik"])
    assert refused.status_code == 200
    assert 'role="alert"' in refused.text  # the login page's generic failure
    assert events(provider, "auth:passkey:failed") == 1


def test_a_pin_session_steps_up_with_a_passkey_in_place_of_the_code(provider):
    citizen = provider.citizen()
    device = enrol_passkey(provider, citizen["nik"])
    log_out(provider)
    agency = provider.agency()
    verifier, challenge = pkce_pair()
    page = provider.authorize(
        agency, code_challenge=challenge, code_challenge_method="S256", acr_values=SUBSTANTIAL
    )
    second = provider.log_in(page, citizen["nik"])
    assert 'data-passkey="step_up"' in second.text
    stepped = step_up(provider, second, device)
    claims = tokens_after(provider, agency, stepped, verifier)
    assert claims["acr"] == SUBSTANTIAL
    assert claims["amr"] == ["pin", "hwk", "user", "mfa"]


def test_a_step_up_with_another_citizens_passkey_fails_and_counts(provider):
    owner, other = provider.citizen(), provider.citizen()
    device = enrol_passkey(provider, owner["nik"])
    log_out(provider)
    enrol_in_the_portal(provider, other["nik"])  # the other has an authenticator
    log_out(provider)
    page = provider.authorize(
        provider.agency(), code_challenge=pkce_pair()[1], code_challenge_method="S256",
        acr_values=SUBSTANTIAL,
    )  # fmt: skip
    second = provider.log_in(page, other["nik"])
    refused = step_up(provider, second, device)
    assert 'name="otp"' in refused.text  # asked again
    assert events(provider, "auth:passkey:failed") == 1


def test_a_regressed_counter_is_refused_at_login_and_audited(provider):
    citizen = provider.citizen()
    device = enrol_passkey(provider, citizen["nik"])
    log_out(provider)
    agency = provider.agency()
    _, challenge = pkce_pair()
    page = provider.authorize(agency, code_challenge=challenge, code_challenge_method="S256")
    assert passkey_login(provider, page, device, counter=5).status_code == 200
    log_out(provider)
    page = provider.authorize(agency, code_challenge=challenge, code_challenge_method="S256")
    cloned = passkey_login(provider, page, device, counter=5)
    assert 'role="alert"' in cloned.text
    assert events(provider, "passkey:counter_regressed") == 1


def test_a_blocked_citizens_passkey_logs_nobody_in(provider):
    citizen = provider.citizen()
    device = enrol_passkey(provider, citizen["nik"])
    log_out(provider)
    with Session(provider.engine) as session, session.begin():
        operator_actions.block(session, citizen["nik"], pairwise_secret=b"unused")
    page = provider.authorize(
        provider.agency(), code_challenge=pkce_pair()[1], code_challenge_method="S256"
    )
    refused = passkey_login(provider, page, device)
    assert 'role="alert"' in refused.text
    assert "location" not in refused.headers


def test_passkey_options_need_the_pages_csrf_token_and_are_rate_limited(provider):
    page = provider.http.get("/account")
    forged = provider.http.post("/passkeys/options", data={"csrf_token": "x", "purpose": "login"})
    assert forged.status_code == 400
    assert forged.json()["error"] == "invalid_request"
    unknown = options(provider, page.text, "anything")
    assert unknown.status_code == 400
    no_session = options(provider, page.text, "step_up")
    assert no_session.status_code == 403
    # A limit of 5 in an hour-long window: no window boundary falls inside the burst.
    limited = provider.settings.model_copy(
        update={"rate_limit_login_per_ip": 5, "rate_limit_login_per_ip_seconds": 3600}
    )
    with TestClient(
        create_app(limited), base_url=LOCAL_ISSUER, client=("198.51.100.40", 5000)
    ) as http:
        page = http.get("/account")
        csrf = hidden(page.text, "csrf_token")
        statuses = [
            http.post(
                "/passkeys/options", data={"csrf_token": csrf, "purpose": "login"}
            ).status_code
            for _ in range(6)
        ]
    assert statuses == [200] * 5 + [429]


def test_a_passkey_logs_in_to_the_portal_and_to_a_kiosk(provider):
    from tests.web.test_device_authorization_grant import codes, enter_code, kiosk, poll

    citizen = provider.citizen()
    device = enrol_passkey(provider, citizen["nik"])
    log_out(provider)
    page = provider.http.get("/account")
    portal = passkey_login(provider, page, device, action="/account/login")
    assert portal.status_code == 303
    assert "Akun saya" in provider.http.get("/account").text  # no code asked: substantial
    log_out(provider)

    agency = kiosk(provider)
    body = codes(provider, agency, acr_values=SUBSTANTIAL)
    login_page = enter_code(provider.http, body["user_code"])
    consent = passkey_login(provider, login_page, device, action="/device/login")
    done = provider.http.post(
        "/device/consent",
        data={"csrf_token": hidden(consent.text, "csrf_token"), "decision": "approve"},
    )
    assert done.status_code == 200
    tokens = poll(provider.http, agency, body["device_code"]).json()
    assert provider.verify(tokens["id_token"])["acr"] == SUBSTANTIAL


def test_a_code_still_works_for_a_citizen_with_a_passkey(provider):
    citizen = provider.citizen()
    secret = enrol_in_the_portal(provider, citizen["nik"])
    add_passkey(provider)
    log_out(provider)
    page = portal_login(provider, citizen["nik"])
    assert 'name="otp"' in page.text  # a PIN alone is not enough for this citizen
    done = provider.http.post(
        "/account/otp",
        data={"csrf_token": hidden(page.text, "csrf_token"), "otp": code_at(secret, 1)},
        follow_redirects=True,
    )
    assert "Akun saya" in done.text


def test_an_issuer_without_a_domain_name_offers_no_passkeys(settings, engine, key_store, tmp_path):
    # Browsers refuse an IP address as an RP ID (WebAuthn section 5.1.3): no button to fail.
    key_store.generate("RS256", size=2048)
    key_store.generate("ES256")
    on_an_address = settings.model_copy(update={"issuer": "http://127.0.0.1:8000"})
    with TestClient(create_app(on_an_address), base_url="http://127.0.0.1:8000") as http:
        page = http.get("/account")
        assert "data-passkey" not in page.text
        assert "passkeys.js" not in page.text


def test_hostile_credentials_at_the_login_are_a_generic_failure(provider):
    provider.citizen()
    page = provider.authorize(
        provider.agency(), code_challenge=pkce_pair()[1], code_challenge_method="S256"
    )
    for hostile in ("[" * 16000, '{"id":"' + "A" * 15000 + '"}', "null", '{"response": []}'):
        refused = provider.http.post(
            "/authorize/login",
            data={
                "csrf_token": hidden(page.text, "csrf_token"),
                "authorization_request": hidden(page.text, "authorization_request"),
                "nik": "",
                "pin": "",
                "credential": hostile,
            },
        )
        assert refused.status_code == 200
        assert 'role="alert"' in refused.text
