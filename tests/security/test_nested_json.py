"""JSON nested thousands of levels deep, in a JWT's header or claims or in the ``claims``
parameter, at every place that reads one: refused with that place's own error before any
parser recurses, never a 500. And the one 500 that may still happen, a bug, carries the
request id and the security headers every other answer does."""

from __future__ import annotations

import base64
from collections.abc import Callable
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI

from digital_id.app import create_app
from tests.web.conftest import Agency, Provider, free_port, pkce_pair, serving

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEPTH = 1_500  # past Python's recursion limit, in 3 KiB


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def nested(depth: int = DEPTH) -> str:
    return "[" * depth + "]" * depth


def jwt_with_deep_header() -> str:
    header = '{"alg":"RS256","kid":"k","x":' + nested() + "}"
    return f"{b64(header.encode())}.{b64(b'{}')}.{b64(b'signature')}"


def jwt_with_deep_claims() -> str:
    header = b64(b'{"alg":"RS256","kid":"k"}')
    return f"{header}.{b64(nested().encode())}.{b64(b'signature')}"


def authorize(provider: Provider, agency: Agency, **params: str) -> httpx.Response:
    query = {
        "response_type": "code",
        "client_id": agency.client_id,
        "redirect_uri": agency.redirect_uri,
        "scope": "openid profile",
        "state": "state-123",
        "nonce": "nonce-123",
        "code_challenge": pkce_pair()[1],
        "code_challenge_method": "S256",
        **params,
    }
    return provider.http.get("/authorize?" + urlencode(query), follow_redirects=False)


PLACES: dict[str, Callable[[Provider, Agency, str], httpx.Response]] = {
    "userinfo": lambda p, a, t: p.http.get("/userinfo", headers={"Authorization": f"Bearer {t}"}),
    "introspection": lambda p, a, t: p.http.post("/introspect", **a.authenticated({"token": t})),
    "revocation": lambda p, a, t: p.http.post("/revoke", **a.authenticated({"token": t})),
    "client assertion": lambda p, a, t: p.http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": "a-code",
            "client_id": a.client_id,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": t,
        },
    ),
    "logout": lambda p, a, t: p.http.get("/logout", params={"id_token_hint": t}),
    "request object": lambda p, a, t: authorize(p, a, request=t),
}


def assert_ordinary_answer(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text[:500]
    assert response.headers.get("x-request-id")
    assert "frame-ancestors 'none'" in response.headers.get("content-security-policy", "")
    assert response.headers.get("x-content-type-options") == "nosniff"


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("token", [jwt_with_deep_header, jwt_with_deep_claims])
def test_a_deeply_nested_jwt_is_refused_where_it_is_presented(live_provider, place, token):
    agency = live_provider.agency()

    response = PLACES[place](live_provider, agency, token())

    assert_ordinary_answer(response)
    if place == "client assertion":
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
    if place == "userinfo":
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"
    if place == "introspection":
        assert response.json() == {"active": False}
    if place == "request object":
        assert response.status_code == 400  # the error page: nothing of it can be trusted


def test_a_deeply_nested_claims_parameter_is_refused_to_the_agency(live_provider):
    agency = live_provider.agency()

    response = authorize(live_provider, agency, claims='{"id_token":' + nested() + "}")

    assert_ordinary_answer(response)
    assert response.status_code in (302, 303)
    assert "error=invalid_request" in response.headers["location"]


def test_a_deeply_nested_id_token_hint_for_a_logged_in_browser_gets_the_error_page(
    live_provider,
):
    citizen = live_provider.citizen()
    agency = live_provider.agency()
    live_provider.code_for(agency, citizen["nik"])  # the browser now has a session

    response = authorize(live_provider, agency, id_token_hint=jwt_with_deep_header())

    assert_ordinary_answer(response)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    ("path", "kind"), [("/token", "application/json"), ("/boom", "text/plain")]
)
def test_an_unexpected_error_is_a_500_with_the_request_id_and_security_headers(
    settings, provider, path, kind
):
    app: FastAPI = create_app(settings)

    def fail() -> None:
        raise RuntimeError("a bug")

    app.add_api_route(path, fail, methods=["POST"])
    app.router.routes.insert(0, app.router.routes.pop())  # before the real /token
    with serving(app, free_port()) as url:
        response = httpx.post(url + path, headers={"X-Request-ID": "trace-me-12345"})

    assert response.status_code == 500
    assert response.headers["x-request-id"] == "trace-me-12345"
    assert response.headers["content-type"].startswith(kind)
    assert "a bug" not in response.text
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
