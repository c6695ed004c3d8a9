"""Rate limits at the edge: 429 with Retry-After on the login and activation pages (per IP
address and per NIK) and at the token endpoint (per client), and a refusal changes nothing.

Limits are set low here; every other test runs with the production defaults."""

from __future__ import annotations

import html
import re
import threading

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from digital_id.accounts.models import CitizenAccount
from digital_id.app import create_app
from digital_id.audit.models import AuditEvent
from digital_id.grants.models import AuthorizationCode
from digital_id.registry.models import Citizen
from digital_id.web.i18n import catalogue
from tests.web.conftest import ISSUER, PIN, Provider, hidden
from tests.web.test_pages import activate, activation_code, pkce
from tests.web.test_portal import portal_login
from tests.web.test_revocation_and_introspection import client_credentials, machine_client

WRONG_PIN = "135792"
UNKNOWN_NIK = "3171012009909999"
WINDOW = 10**6
LIMITS = ("login_per_ip", "login_per_nik", "activation_per_ip", "activation_per_nik", "token_per_client", "client_auth_failures_per_ip", "request_objects_per_ip")  # fmt: skip


@pytest.fixture
def settings(settings):
    return settings.model_copy(
        update={
            "rate_limit_login_per_ip": 4,
            "rate_limit_login_per_nik": 2,
            "rate_limit_activation_per_ip": 4,
            "rate_limit_activation_per_nik": 2,
            "rate_limit_token_per_client": 2,
            "rate_limit_client_auth_failures_per_ip": 3,
            # Windows far longer than a test, so none ends (and frees its budget) midway.
            **{f"rate_limit_{name}_seconds": WINDOW for name in LIMITS},
        }
    )


def browser_at(provider: Provider, address: str) -> Provider:
    """The same running provider, seen from another IP address (with its own cookies)."""
    http = TestClient(provider.http.app, base_url=ISSUER, client=(address, 50000))
    return Provider(http, provider.engine, provider.key_store, provider.settings, provider.tmp_path)


def log_in(browser: Provider, agency, nik: str, pin: str = PIN):
    return browser.log_in(browser.authorize(agency, **pkce()), nik, pin)


def assert_rate_limited(response, language: str = "id") -> int:
    assert response.status_code == 429, response.text[:500]
    retry_after = response.headers["retry-after"]
    assert retry_after.isdigit()
    assert int(retry_after) > 0
    minutes = -(-int(retry_after) // 60)
    message = catalogue(language)["error.rate_limited"].format(minutes=minutes)
    assert message in html.unescape(response.text)
    assert response.headers["cache-control"] == "no-store"
    return int(retry_after)


def failed_attempts(provider: Provider, nik: str) -> int:
    with Session(provider.engine) as session:
        return session.scalar(
            select(CitizenAccount.failed_attempts)
            .join(Citizen, Citizen.id == CitizenAccount.citizen_id)
            .where(Citizen.nik == nik)
        )


def audit_events(provider: Provider) -> int:
    with Session(provider.engine) as session:
        return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


# --- login ---------------------------------------------------------------------------------


def test_logins_from_one_address_past_its_limit_get_429_with_retry_after(provider):
    agency = provider.agency()
    sprayer = browser_at(provider, "203.0.113.7")
    for number in range(4):  # four different NIKs: the per-NIK limit is not what stops it
        answer = log_in(sprayer, agency, f"317101200990{number:04d}", WRONG_PIN)
        assert answer.status_code == 200
    assert_rate_limited(log_in(sprayer, agency, "3171012009900009", WRONG_PIN))
    citizen = provider.citizen()
    neighbour = browser_at(provider, "203.0.113.8")
    assert 'name="decision"' in log_in(neighbour, agency, citizen["nik"]).text


def test_one_nik_tried_from_many_addresses_past_its_limit_gets_429(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    for address in ("198.51.100.1", "198.51.100.2"):
        assert (
            log_in(browser_at(provider, address), agency, citizen["nik"], WRONG_PIN).status_code
            == 200
        )
    third = browser_at(provider, "198.51.100.3")
    assert_rate_limited(log_in(third, agency, citizen["nik"], PIN))  # even the right PIN


def test_the_limit_answers_the_same_whether_or_not_the_nik_exists(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    answers = {}
    for nik in (citizen["nik"], UNKNOWN_NIK):
        for _ in range(2):
            log_in(provider, agency, nik, WRONG_PIN)
        answers[nik] = log_in(provider, agency, nik, WRONG_PIN)
    known, unknown = answers[citizen["nik"]], answers[UNKNOWN_NIK]
    assert (known.status_code, unknown.status_code) == (429, 429)
    assert abs(assert_rate_limited(known) - assert_rate_limited(unknown)) <= 1
    assert re.sub(r"\d+", "#", known.text) == re.sub(r"\d+", "#", unknown.text)


def test_a_refused_login_counts_no_failure_and_records_nothing(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    log_in(provider, agency, citizen["nik"], WRONG_PIN)
    log_in(provider, agency, citizen["nik"], WRONG_PIN)
    assert failed_attempts(provider, citizen["nik"]) == 2
    events = audit_events(provider)
    for _ in range(5):  # past the lockout threshold, had they been counted
        refused = log_in(provider, agency, citizen["nik"], WRONG_PIN)
        assert_rate_limited(refused)
        assert "dgid_session" not in refused.headers.get("set-cookie", "")
    assert failed_attempts(provider, citizen["nik"]) == 2
    assert audit_events(provider) == events


def test_the_csrf_token_is_checked_before_the_limit_and_a_forged_post_spends_nothing(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    page = provider.authorize(agency, **pkce())
    for _ in range(3):
        forged = provider.http.post(
            "/authorize/login",
            data={
                "csrf_token": "forged",
                "authorization_request": hidden(page.text, "authorization_request"),
                "nik": citizen["nik"],
                "pin": WRONG_PIN,
            },
        )
        assert forged.status_code == 400
    assert 'name="decision"' in log_in(provider, agency, citizen["nik"]).text


def test_the_portal_login_shares_the_login_limits(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    log_in(provider, agency, citizen["nik"], WRONG_PIN)
    portal_login(provider, citizen["nik"], WRONG_PIN)
    assert_rate_limited(portal_login(provider, citizen["nik"]))


def test_the_refusal_is_in_the_page_language(provider):
    agency = provider.agency()
    for _ in range(2):
        log_in(provider, agency, UNKNOWN_NIK, WRONG_PIN)
    page = provider.authorize(agency, ui_locales="en", **pkce())
    assert_rate_limited(provider.log_in(page, UNKNOWN_NIK, WRONG_PIN), language="en")


# --- activation ----------------------------------------------------------------------------


def test_activation_tries_for_one_nik_past_its_limit_get_429_and_the_code_still_works(provider):
    citizen = provider.citizen(pin=None)
    code = activation_code(provider, citizen["nik"])
    for _ in range(2):
        assert activate(provider, citizen["nik"], "ABCD-EFGH-JKMN", "975318").status_code == 400
    assert_rate_limited(activate(browser_at(provider, "192.0.2.9"), citizen["nik"], code, "975318"))
    with Session(provider.engine) as session:
        pin_hash = session.scalar(
            select(CitizenAccount.pin_hash)
            .join(Citizen, Citizen.id == CitizenAccount.citizen_id)
            .where(Citizen.nik == citizen["nik"])
        )
    assert pin_hash is None  # not activated by the refused try


def test_activation_tries_from_one_address_past_its_limit_get_429(provider):
    for number in range(4):
        answer = activate(provider, f"317101200990{number:04d}", "ABCD-EFGH-JKMN", "975318")
        assert answer.status_code == 400
    assert_rate_limited(activate(provider, "3171012009900009", "ABCD-EFGH-JKMN", "975318"))


# --- token endpoint ------------------------------------------------------------------------


def assert_slow_down(response) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"] == "slow_down"
    assert response.json()["error_description"]
    assert response.headers["retry-after"].isdigit()
    assert int(response.headers["retry-after"]) > 0
    assert response.headers["cache-control"] == "no-store"


def test_a_client_past_its_token_budget_gets_slow_down_and_others_do_not(provider):
    busy, other = machine_client(provider), machine_client(provider)
    for _ in range(2):
        assert client_credentials(provider, busy).status_code == 200
    assert_slow_down(client_credentials(provider, busy))
    assert_slow_down(client_credentials(provider, busy))  # remembered: no statement needed
    assert client_credentials(provider, other).status_code == 200


def synchronised(app) -> None:
    """One round of the worker's rate-limit sync (its thread runs one every half second)."""
    app.state.services.fleet_limiter.synchronise()


def test_the_budget_is_counted_in_the_database_so_every_worker_sees_it(provider):
    busy = machine_client(provider)
    assert client_credentials(provider, busy).status_code == 200
    synchronised(provider.http.app)
    # A second app on the same database: another worker, with its own memory.
    with TestClient(create_app(provider.settings), base_url=ISSUER) as second:
        form = {"grant_type": "client_credentials"}
        assert second.post("/token", **busy.authenticated(form)).status_code == 200
        synchronised(second.app)
        assert_slow_down(second.post("/token", **busy.authenticated(form)))


def test_a_refused_code_redemption_leaves_the_code_unredeemed(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    for _ in range(2):
        provider.tokens_for(agency, citizen["nik"])
    code, verifier, _ = provider.code_for(agency, citizen["nik"])
    issued = audit_events(provider)
    assert_slow_down(provider.token(agency, code, verifier))
    with Session(provider.engine) as session:
        row = session.scalars(
            select(AuthorizationCode).order_by(AuthorizationCode.id.desc())
        ).first()
        assert row.redeemed_at is None
    assert audit_events(provider) == issued


def test_an_authenticated_clients_refused_grants_spend_its_budget_too(provider):
    # Counted once the client has authenticated, whatever the grant's outcome: otherwise
    # a client could try codes or scopes without end.
    busy = machine_client(provider)
    refused = client_credentials(provider, busy, scope="not.registered")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"
    assert client_credentials(provider, busy).status_code == 200
    assert_slow_down(client_credentials(provider, busy))


def test_requests_with_a_wrong_secret_do_not_spend_the_clients_budget(provider):
    busy = machine_client(provider)
    impostor = browser_at(provider, "203.0.113.66")
    for _ in range(3):
        guess = impostor.http.post(
            "/token",
            data={"grant_type": "client_credentials"},
            auth=(busy.client_id, "not-the-secret"),
        )
        assert guess.status_code == 401
    for _ in range(2):
        assert client_credentials(provider, busy).status_code == 200


def test_failed_client_authentication_from_one_address_past_its_limit_gets_slow_down(provider):
    busy = machine_client(provider)
    guesser = browser_at(provider, "203.0.113.66")
    wrong = {"data": {"grant_type": "client_credentials"}, "auth": (busy.client_id, "nope")}
    for _ in range(3):
        assert guesser.http.post("/token", **wrong).status_code == 401
    assert_slow_down(guesser.http.post("/token", **wrong))
    # The address is refused before any authentication work, right credentials or not
    # (nothing is hashed or fetched for it until the window ends); other addresses are not.
    right = busy.authenticated({"grant_type": "client_credentials"})
    assert_slow_down(guesser.http.post("/token", **right))
    assert client_credentials(provider, busy).status_code == 200


def test_the_token_budget_costs_no_statement_and_no_commit_of_its_own(provider):
    busy = machine_client(provider)
    engine = provider.http.app.state.engine
    statements: list[str] = []
    commits: list[str] = []
    background = {"rate-limit-sync", "logout-courier"}  # their rounds are not the request's

    def statement(*args: object) -> None:
        if threading.current_thread().name not in background:
            statements.append(str(args[2]))

    def commit(_connection: object) -> None:
        if threading.current_thread().name not in background:
            commits.append("commit")

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    try:
        assert client_credentials(provider, busy).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)
    assert statements
    assert not [text for text in statements if "rate_limit_windows" in text]
    assert commits == ["commit"]  # the unit of work's, with the token's audit event
    assert client_credentials(provider, busy).status_code == 200
    assert_slow_down(client_credentials(provider, busy))  # and yet it was counted
