"""Pushed authorization requests (RFC 9126): ``/par`` authenticates the client as ``/token``
does, validates the request as ``/authorize`` would, and names it with a request URI that
starts one flow, for that client, within its lifetime."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from digital_id.app import create_app
from digital_id.db.types import utc_now
from digital_id.oidc.models import PushedAuthorizationRequest
from digital_id.oidc.pushed_requests import REQUEST_URI_PREFIX
from digital_id.web.housekeeping import purge_round
from tests.web.conftest import ISSUER, Agency, Provider, hidden, pkce_pair
from tests.web.test_authorization_endpoint import redirected
from tests.web.test_rate_limits import browser_at
from tests.web.test_request_objects import request_object


def authorization(agency: Agency, challenge: str, **overrides: Any) -> dict[str, str]:
    parameters = {
        "response_type": "code",
        "client_id": agency.client_id,
        "redirect_uri": agency.redirect_uri,
        "scope": "openid profile",
        "state": "pushed-state",
        "nonce": "pushed-nonce-" + challenge[:12],
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    return {name: value for name, value in parameters.items() if value is not None}


def push(provider: Provider, agency: Agency, **overrides: Any) -> tuple[httpx.Response, str]:
    """POST /par as ``agency``, authenticated as it registered; the answer and the verifier."""
    verifier, challenge = pkce_pair()
    response = provider.http.post(
        "/par", **agency.authenticated(authorization(agency, challenge, **overrides))
    )
    return response, verifier


def pushed(provider: Provider, agency: Agency, **overrides: Any) -> tuple[str, str]:
    response, verifier = push(provider, agency, **overrides)
    assert response.status_code == 201, response.text
    return response.json()["request_uri"], verifier


def start(provider: Provider, agency: Agency, request_uri: str, **extra: str) -> httpx.Response:
    query = {"client_id": agency.client_id, "request_uri": request_uri, **extra}
    return provider.http.get("/authorize", params=query, follow_redirects=False)


def stored_count(provider: Provider) -> int:
    with provider.engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(PushedAuthorizationRequest)
        ).scalar_one()


def assert_refused_page(response: httpx.Response, error: str = "") -> None:
    assert response.status_code == 400, response.text[:500]
    assert 'name="pin"' not in response.text
    assert "location" not in response.headers
    assert error in response.text


def test_discovery_advertises_the_endpoint_and_that_pushing_is_optional(provider):
    metadata = provider.http.get("/.well-known/openid-configuration").json()
    assert metadata["pushed_authorization_request_endpoint"] == ISSUER + "/par"
    assert metadata["require_pushed_authorization_requests"] is False


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "private_key_jwt"])
def test_a_pushed_request_logs_a_citizen_in_with_only_client_id_and_request_uri(provider, method):
    citizen = provider.citizen()
    agency = provider.agency(method)
    response, verifier = push(provider, agency, scope="openid nik")
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["request_uri"].startswith(REQUEST_URI_PREFIX)
    assert 0 < body["expires_in"] <= 60

    consent = provider.log_in(start(provider, agency, body["request_uri"]), citizen["nik"])
    assert "NIK (Nomor Induk Kependudukan)" in consent.text  # the pushed scope
    answer = redirected(provider.decide(consent))
    assert answer["state"] == "pushed-state"
    assert answer["iss"] == ISSUER
    tokens = provider.token(agency, answer["code"], verifier).json()
    assert tokens["scope"] == "openid nik"
    assert provider.verify(tokens["id_token"])["nonce"].startswith("pushed-nonce-")


def test_parameters_beside_the_request_uri_are_ignored(provider):
    """RFC 9126 section 4: the pushed request is the request; a browser's query cannot widen
    its scope or move its redirect."""
    citizen = provider.citizen()
    agency = provider.agency()
    request_uri, _ = pushed(provider, agency)
    page = start(
        provider,
        agency,
        request_uri,
        scope="openid nik address",
        redirect_uri="https://attacker.example/cb",
        state="from-the-query",
    )
    consent = provider.log_in(page, citizen["nik"])
    assert "NIK (Nomor Induk Kependudukan)" not in consent.text
    answer = provider.decide(consent)
    assert answer.headers["location"].startswith(agency.redirect_uri)
    assert redirected(answer)["state"] == "pushed-state"


def test_a_request_uri_starts_one_flow_only(provider):
    agency = provider.agency()
    request_uri, _ = pushed(provider, agency)
    assert 'name="pin"' in start(provider, agency, request_uri).text
    other_browser = browser_at(provider, "203.0.113.40")
    assert_refused_page(start(other_browser, agency, request_uri), "request_uri")


def test_an_expired_request_uri_is_refused(provider):
    agency = provider.agency()
    request_uri, _ = pushed(provider, agency)
    with provider.engine.begin() as connection:
        connection.execute(
            update(PushedAuthorizationRequest).values(expires_at=utc_now() - timedelta(seconds=1))
        )
    assert_refused_page(start(provider, agency, request_uri), "request_uri")


def test_another_clients_request_uri_is_refused(provider):
    agency, other = provider.agency(), provider.agency()
    request_uri, _ = pushed(provider, agency)
    assert_refused_page(start(provider, other, request_uri), "request_uri")
    # Refused for the other client, it still starts the flow of the one that pushed it.
    assert 'name="pin"' in start(provider, agency, request_uri).text


def test_an_unknown_request_uri_of_our_form_is_refused(provider):
    agency = provider.agency()
    assert_refused_page(start(provider, agency, REQUEST_URI_PREFIX + "made-up"), "request_uri")


def test_a_flow_carries_its_request_uri_through_login_and_consent_with_prompt_login(provider):
    """The login page and the consent page carry the request URI, not the request; the
    consent step reads it again (taken, within the flow's lifetime) and knows the login was
    for this very request."""
    citizen = provider.citizen()
    agency = provider.agency()
    provider.tokens_for(agency, citizen["nik"])  # a session, and consent to profile
    request_uri, verifier = pushed(provider, agency, prompt="login", scope="openid nik")
    page = start(provider, agency, request_uri)
    assert hidden(page.text, "authorization_request") == (
        f"client_id={agency.client_id}&request_uri={request_uri.replace(':', '%3A')}"
    )
    consent = provider.log_in(page, citizen["nik"])
    answer = redirected(provider.decide(consent))
    assert provider.token(agency, answer["code"], verifier).status_code == 200


def test_a_carried_request_uri_that_never_started_a_flow_is_refused(provider):
    """A request URI posted straight to the login form, never taken at /authorize, starts
    nothing there."""
    citizen = provider.citizen()
    agency = provider.agency()
    started, _ = pushed(provider, agency)
    page = start(provider, agency, started)
    never_started, _ = pushed(provider, agency)
    response = provider.http.post(
        "/authorize/login",
        data={
            "csrf_token": hidden(page.text, "csrf_token"),
            "authorization_request": f"client_id={agency.client_id}&request_uri={never_started}",
            "nik": citizen["nik"],
            "pin": "246810",
        },
        follow_redirects=False,
    )
    assert response.status_code == 400
    assert "code=" not in response.headers.get("location", "")


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        pytest.param({"redirect_uri": "https://attacker.example/cb"}, "invalid_request", id="unregistered-redirect"),
        pytest.param({"code_challenge": None, "code_challenge_method": None}, "invalid_request", id="no-pkce"),
        pytest.param({"code_challenge_method": "plain"}, "invalid_request", id="plain-pkce"),
        pytest.param({"response_type": "token"}, "unsupported_response_type", id="implicit"),
        pytest.param({"response_type": "code id_token"}, "unsupported_response_type", id="hybrid"),
        pytest.param({"scope": "profile"}, "invalid_scope", id="no-openid"),
        pytest.param({"request_uri": REQUEST_URI_PREFIX + "x"}, "invalid_request", id="request-uri-inside"),
        pytest.param({"client_id": "dgid_someone_else"}, "invalid_request", id="another-client-id"),
        pytest.param({"redirect_uri": "https://pajak.example.go.id/cb\u00e9"}, "invalid_request", id="non-ascii-redirect"),
        pytest.param({"state": "s" * 5000}, "invalid_request", id="oversized-parameter"),
        pytest.param({"prompt": "sideways"}, "invalid_request", id="unknown-prompt"),
    ],
)  # fmt: skip
def test_a_bad_pushed_request_is_refused_as_json_and_kept_nowhere(provider, overrides, error):
    agency = provider.agency()
    response, _ = push(provider, agency, **overrides)
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    body = response.json()
    assert body["error"] == error
    assert "state" not in body
    assert stored_count(provider) == 0


@pytest.mark.parametrize("method", ["client_secret_basic", "private_key_jwt"])
def test_a_push_without_valid_client_authentication_is_refused(provider, method):
    agency = provider.agency(method)
    _verifier, challenge = pkce_pair()
    form = authorization(agency, challenge)
    if method == "client_secret_basic":
        response = provider.http.post("/par", data=form, auth=(agency.client_id, "wrong"))
    else:
        response = provider.http.post(
            "/par",
            data=form
            | {
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": agency.assertion(aud=ISSUER + "/elsewhere"),
            },
        )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert stored_count(provider) == 0


def test_a_client_assertion_is_spent_by_the_push(provider):
    """The same private_key_jwt assertion cannot push twice (nor then get a token)."""
    agency = provider.agency("private_key_jwt")
    _verifier, challenge = pkce_pair()
    form = authorization(agency, challenge) | {
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": agency.assertion(),
    }
    assert provider.http.post("/par", data=form).status_code == 201
    replay = provider.http.post("/par", data=form)
    assert replay.status_code == 401


def test_a_pushed_signed_request_object_is_verified_and_spent(provider):
    citizen = provider.citizen()
    agency = provider.agency("private_key_jwt")
    verifier, challenge = pkce_pair()
    signed = request_object(
        agency, scope="openid nik", code_challenge=challenge, code_challenge_method="S256"
    )
    response = provider.http.post(
        "/par", **agency.authenticated({"client_id": agency.client_id, "request": signed})
    )
    assert response.status_code == 201, response.text
    consent = provider.log_in(
        start(provider, agency, response.json()["request_uri"]), citizen["nik"]
    )
    answer = redirected(provider.decide(consent))
    assert answer["state"] == "from-the-object"
    assert provider.token(agency, answer["code"], verifier).json()["scope"] == "openid nik"
    again = provider.http.post(
        "/par", **agency.authenticated({"client_id": agency.client_id, "request": signed})
    )
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_request_object"


def test_a_client_registered_to_push_cannot_start_a_flow_without(provider):
    citizen = provider.citizen()
    agency = provider.agency(require_pushed_authorization_requests=True)
    _verifier, challenge = pkce_pair()
    plain = provider.authorize(agency, code_challenge=challenge, code_challenge_method="S256")
    assert plain.status_code in (302, 303, 400)
    assert 'name="pin"' not in plain.text
    if plain.status_code != 400:
        assert redirected(plain)["error"] == "invalid_request"
    request_uri, verifier = pushed(provider, agency)
    consent = provider.log_in(start(provider, agency, request_uri), citizen["nik"])
    answer = redirected(provider.decide(consent))
    assert provider.token(agency, answer["code"], verifier).status_code == 200


def test_a_server_that_requires_pushing_says_so_and_refuses_plain_requests(provider):
    settings = provider.settings.model_copy(update={"require_pushed_authorization_requests": True})
    agency = provider.agency()
    with TestClient(create_app(settings), base_url=ISSUER) as http:
        metadata = http.get("/.well-known/openid-configuration").json()
        assert metadata["require_pushed_authorization_requests"] is True
        strict = Provider(http, provider.engine, provider.key_store, settings, provider.tmp_path)
        _verifier, challenge = pkce_pair()
        plain = strict.authorize(agency, code_challenge=challenge, code_challenge_method="S256")
        assert 'name="pin"' not in plain.text
        request_uri, _ = pushed(strict, agency)
        assert 'name="pin"' in start(strict, agency, request_uri).text


def test_pushes_spend_the_clients_budget(provider):
    settings = provider.settings.model_copy(update={"rate_limit_token_per_client": 2})
    agency = provider.agency()
    with TestClient(create_app(settings), base_url=ISSUER) as http:
        limited = Provider(http, provider.engine, provider.key_store, settings, provider.tmp_path)
        answers = [push(limited, agency)[0] for _ in range(3)]
    assert [answer.status_code for answer in answers[:2]] == [201, 201]
    assert answers[2].status_code in (400, 429)
    assert answers[2].json()["error"] == "slow_down"


def test_two_browsers_presenting_one_request_uri_at_once_start_one_flow(provider, issuer):
    """Real parallel requests to a live server: the taking UPDATE lets one through."""
    agency = provider.agency()
    request_uri, _ = pushed(provider, agency)
    barrier = threading.Barrier(6)
    pages: list[httpx.Response] = []

    def browser() -> None:
        with httpx.Client(base_url=issuer) as http:
            barrier.wait()
            pages.append(
                http.get(
                    "/authorize",
                    params={"client_id": agency.client_id, "request_uri": request_uri},
                )
            )

    threads = [threading.Thread(target=browser) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(pages) == 6
    assert sum('name="pin"' in page.text for page in pages) == 1
    assert sorted(page.status_code for page in pages) == [200, 400, 400, 400, 400, 400]


def test_housekeeping_purges_pushed_requests_no_flow_can_use(provider):
    agency = provider.agency()
    pushed(provider, agency)
    taken, _ = pushed(provider, agency)
    start(provider, agency, taken)
    purged = purge_round(provider.engine, utc_now() + timedelta(seconds=61))
    assert purged["pushed_authorization_requests"] == 1  # the untaken one: its flow never began
    assert stored_count(provider) == 1
    purged = purge_round(provider.engine, utc_now() + timedelta(hours=2))
    assert purged["pushed_authorization_requests"] == 1
    assert stored_count(provider) == 0


def test_the_pages_speak_the_language_the_pushed_request_asks_for(provider):
    agency = provider.agency()
    request_uri, _ = pushed(provider, agency, ui_locales="en")
    page = start(provider, agency, request_uri)
    assert '<html lang="en"' in page.text
