"""Size limits: a parameter over its limit, a body, query or header set over the request's,
gets a clear 400 in the endpoint's format (OAuth JSON, the agency's redirect, or the error
page), never a 500, and changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digital_id.grants.models import AuthorizationCode
from digital_id.oidc.requests import DEFAULT_PARAMETER_LIMIT, MAX_PARAMETERS, PARAMETER_LIMITS
from digital_id.sessions.models import BrowserSession
from digital_id.web.limits import MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_QUERY_BYTES
from tests.web.conftest import Provider, hidden, pkce_pair, query_of


def too_long(name: str) -> str:
    return "a" * (PARAMETER_LIMITS.get(name, DEFAULT_PARAMETER_LIMIT) + 1)


def count(provider: Provider, model: Any) -> int:
    with Session(provider.engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def live_sessions(provider: Provider) -> int:
    with Session(provider.engine) as session:
        query = select(func.count()).where(BrowserSession.ended_at.is_(None))
        return int(session.scalar(query) or 0)


AUTHORIZATION_PARAMETERS = ["state", "nonce", "login_hint", "ui_locales", "acr_values", "claims",
                            "scope", "prompt", "max_age", "response_mode", "code_challenge",
                            "id_token_hint", "request", "display", "claims_locales",
                            "an_unknown_extension"]  # fmt: skip


def test_an_over_long_authorization_parameter_is_sent_back_to_the_agency(provider):
    """Client and redirect URI check out, so the agency hears ``invalid_request`` (RFC 6749
    4.1.2.1), with its state unless the state itself is the over-long value."""
    citizen = provider.citizen()
    agency = provider.agency()
    provider.code_for(agency, citizen["nik"])  # logged in: a code would come back at once
    codes = count(provider, AuthorizationCode)
    for name in AUTHORIZATION_PARAMETERS:
        params = {"code_challenge": pkce_pair()[1], "code_challenge_method": "S256"}
        response = provider.authorize(agency, **(params | {name: too_long(name)}))
        assert response.status_code == 303, (name, response.status_code)
        answer = query_of(response.headers["location"])
        assert answer["error"] == "invalid_request", name
        assert answer["error_description"].startswith(f"{name} is longer than"), answer
        assert "code" not in answer, name
        assert answer.get("state") == (None if name == "state" else "state-123"), name
    assert count(provider, AuthorizationCode) == codes


def test_an_over_long_client_or_redirect_uri_gets_the_error_page(provider):
    agency = provider.agency()
    for name in ("client_id", "redirect_uri"):
        response = provider.authorize(agency, **{name: too_long(name)})
        assert response.status_code == 400
        assert "location" not in response.headers
        assert "terlalu panjang" in response.text  # Bahasa Indonesia first
        assert f"{name} is longer than" in response.text
        english = provider.authorize(agency, ui_locales="en", **{name: too_long(name)})
        assert "too long" in english.text


def test_too_many_parameters_are_refused(provider):
    agency = provider.agency()
    extra = {f"x{i}": "1" for i in range(MAX_PARAMETERS)}
    response = provider.authorize(agency, **extra)
    answer = query_of(response.headers["location"])
    assert answer["error"] == "invalid_request"
    assert "parameters" in answer["error_description"]


@pytest.mark.parametrize(
    "params",
    [
        {"prompt": "\x1b"},
        {"prompt": 'lo"gin'},
        {"response_type": "code\u202e"},
        {"claims": json.dumps({"userinfo": {'na"me\\\x1b': 5}})},
        {"\u00e9t\u00e9": "a" * (DEFAULT_PARAMETER_LIMIT + 1)},
    ],
    ids=["control-in-prompt", "quote-in-prompt", "bidi-in-response_type", "odd-claim-name",
         "non-ascii-unknown-parameter"],
)  # fmt: skip
def test_odd_characters_an_error_would_echo_are_refused_not_a_500(provider, params):
    """RFC 6749 section 5.2 allows only printable ASCII (no quote, no backslash) in an
    error_description; authlib raises on anything else, so such values must never reach one."""
    response = provider.authorize(provider.agency(), **params)
    assert response.status_code == 303, response.text[:300]
    answer = query_of(response.headers["location"])
    assert answer["error"] == "invalid_request", answer
    assert "code" not in answer


TOKEN_PARAMETERS = ["grant_type", "code", "code_verifier", "redirect_uri", "client_id",
                    "client_secret", "client_assertion", "client_assertion_type", "scope",
                    "refresh_token", "an_unknown_extension"]  # fmt: skip


def test_an_over_long_token_parameter_is_invalid_request_and_redeems_nothing(provider):
    citizen = provider.citizen()
    agency = provider.agency("client_secret_post")
    code, verifier, _ = provider.code_for(agency, citizen["nik"])
    for name in TOKEN_PARAMETERS:
        request = agency.token_request(code, verifier)
        request["data"][name] = too_long(name)
        response = provider.http.post("/token", **request)
        assert response.status_code == 400, (name, response.text)
        assert response.json() == {
            "error": "invalid_request",
            "error_description": f"{name} is longer than "
            f"{PARAMETER_LIMITS.get(name, DEFAULT_PARAMETER_LIMIT)} characters",
        }
        assert response.headers["cache-control"] == "no-store"
    # The code was never touched: it still redeems, once.
    assert provider.token(agency, code, verifier).status_code == 200


def test_a_code_verifier_outside_43_to_128_characters_is_refused(provider):
    """RFC 7636 section 4.1: 43 to 128 characters. No tokens; and the code, presented
    with a bad verifier, is spent (RFC 6749 section 4.1.2: used once, whatever the outcome)."""
    citizen = provider.citizen()
    agency = provider.agency()
    for verifier in ("v" * 42, "v" * 129):
        code, _right, _ = provider.code_for(agency, citizen["nik"])
        response = provider.token(agency, code, verifier)
        assert response.status_code == 400
        assert response.json()["error"] in ("invalid_request", "invalid_grant")
        assert "access_token" not in response.json()


def test_an_over_long_token_at_revocation_and_introspection_is_invalid_request(provider):
    agency = provider.agency()
    for endpoint in ("/revoke", "/introspect"):
        for name in ("token", "token_type_hint"):
            form = {"token": "t", name: too_long(name)}
            response = provider.http.post(endpoint, **agency.authenticated(form))
            assert response.status_code == 400, response.text
            assert response.json()["error"] == "invalid_request"


LOGOUT_PARAMETERS = ["id_token_hint", "post_logout_redirect_uri", "state", "client_id",
                     "logout_hint", "ui_locales", "an_unknown_extension"]  # fmt: skip


def test_an_over_long_logout_parameter_gets_the_error_page_and_ends_nothing(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    tokens = provider.tokens_for(agency, citizen["nik"])
    for name in LOGOUT_PARAMETERS:
        params = {"id_token_hint": tokens["id_token"], name: too_long(name)}
        response = provider.http.get("/logout", params=params, follow_redirects=False)
        assert response.status_code == 400, name
        assert "location" not in response.headers
        assert f"{name} is longer than" in response.text
        assert live_sessions(provider) == 1, name


# --- the request as a whole ------------------------------------------------------------------


def test_an_over_large_token_request_body_is_invalid_request(provider):
    agency = provider.agency("client_secret_post")
    form = agency.authenticated({"grant_type": "authorization_code", "code": "c"})["data"]
    form |= {f"pad{i}": "p" * 2000 for i in range(40)}  # about 80 KiB
    response = provider.http.post("/token", data=form)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert f"larger than {MAX_BODY_BYTES}" in response.json()["error_description"]
    assert response.headers["cache-control"] == "no-store"


def test_an_over_large_body_without_a_length_is_refused_too(provider):
    def chunks() -> Iterator[bytes]:
        for _ in range(64):  # 128 KiB, in chunks, no Content-Length
            yield b"a" * 2048

    response = provider.http.post(
        "/token",
        content=chunks(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "content-length" not in {name.lower() for name in response.request.headers}


def test_an_over_large_login_form_gets_the_error_page_and_logs_nobody_in(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    page = provider.authorize(agency, code_challenge=pkce_pair()[1], code_challenge_method="S256")
    response = provider.http.post(
        "/authorize/login",
        data={
            "csrf_token": hidden(page.text, "csrf_token"),
            "authorization_request": hidden(page.text, "authorization_request"),
            "nik": citizen["nik"],
            "pin": "246810",
            "padding": "p" * MAX_BODY_BYTES,
        },
        follow_redirects=False,
    )
    assert response.status_code == 400
    assert "terlalu besar" in response.text
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert response.headers["cache-control"] == "no-store"
    assert live_sessions(provider) == 0


def test_an_over_long_query_string_gets_the_error_page(provider):
    response = provider.http.get("/authorize?x=" + "a" * MAX_QUERY_BYTES)
    assert response.status_code == 400
    assert "terlalu besar" in response.text
    assert "a" * 100 not in response.text  # the query is not echoed into the page


def test_over_large_headers_are_refused(provider):
    response = provider.http.get("/userinfo", headers={"x-padding": "a" * MAX_HEADER_BYTES})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_the_real_server_answers_over_large_requests_without_a_500(live_server):
    with httpx.Client(base_url=live_server, timeout=10) as http:
        answers = [
            http.get("/authorize?x=" + "a" * 60_000),
            http.get("/account", headers={"cookie": "dgid_session=" + "a" * 200_000}),
            http.get("/userinfo", headers={"authorization": "Bearer " + "a" * 60_000}),
            http.post("/token", content=b"a" * 1_000_000),
        ]
    for answer in answers:
        assert 400 <= answer.status_code < 500, answer.status_code


# --- whatever comes in -----------------------------------------------------------------------

_names = st.sampled_from([*PARAMETER_LIMITS, "x", "request_uri", ""])
_values = st.one_of(
    st.text(max_size=40),
    # Past every parameter limit but request objects', yet eight of them stay within what an
    # HTTP client will put in a URL (64 KiB).
    st.integers(min_value=0, max_value=6000).map(lambda n: "a" * n),
    st.text(alphabet="%&=;.'\"\\{}[]:,\x00\x1b\u202e\U0001f600 \t\n", max_size=30),
    st.dictionaries(
        st.sampled_from(["userinfo", "id_token"]),
        st.dictionaries(
            st.text(max_size=8),
            st.one_of(st.none(), st.just({"essential": True}), st.text(max_size=4)),
        ),
    ).map(json.dumps),
)
_params = st.lists(st.tuples(_names, _values), max_size=8)


_bearer = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=9000)
_requests = st.one_of(
    st.tuples(st.just("GET /authorize"), _params),
    st.tuples(st.just("POST /token"), _params),
    st.tuples(st.just("GET /logout"), _params),
    st.tuples(st.just("GET /userinfo"), _bearer),
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=_requests)
def test_any_request_to_the_protocol_endpoints_is_answered_below_500(provider, request):
    """Random, long and odd values: every answer is the client's error, never the server's
    (the test client re-raises any exception the app lets escape)."""
    what, value = request
    if what == "GET /userinfo":
        response = provider.http.get("/userinfo", headers={"authorization": f"Bearer {value}"})
        assert response.status_code in (400, 401)
        return
    method, path = what.split()
    if method == "GET":
        response = provider.http.get(path, params=value)
    else:
        response = provider.http.post(path, data=dict(value))
    assert response.status_code < 500
