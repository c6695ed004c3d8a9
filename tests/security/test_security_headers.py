"""Security headers on every page a citizen sees, and ``no-store`` on everything that shows
personal data or a token; HSTS only when the issuer is https."""

from __future__ import annotations

import httpx

from tests.web.conftest import PIN, Provider, hidden, pkce_pair
from tests.web.test_portal import portal_login

SUBSTANTIAL = "urn:digital-id:loa:substantial"


def assert_page_headers(name: str, response: httpx.Response, *, https: bool = False) -> None:
    headers = response.headers
    csp = headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, name
    assert "unsafe-inline" not in csp, name
    assert "unsafe-eval" not in csp, name
    assert headers.get("x-content-type-options") == "nosniff", name
    assert headers.get("referrer-policy") == "no-referrer", name
    assert headers.get("cache-control") == "no-store", name
    hsts = headers.get("strict-transport-security")
    assert hsts == ("max-age=63072000; includeSubDomains" if https else None), name


def every_page(provider: Provider) -> dict[str, httpx.Response]:
    """Each HTML page and personal-data response, reached as a citizen's browser would."""
    http = provider.http
    citizen = provider.citizen()
    agency = provider.agency()
    seen: dict[str, httpx.Response] = {}
    seen["error page"] = http.get("/authorize?client_id=dgid_nobody&response_type=code")
    login = provider.authorize(agency, code_challenge=pkce_pair()[1], code_challenge_method="S256")
    seen["login"] = login
    failed = http.post(
        "/authorize/login",
        data={
            "csrf_token": hidden(login.text, "csrf_token"),
            "authorization_request": hidden(login.text, "authorization_request"),
            "nik": citizen["nik"],
            "pin": "135791",
        },
    )
    seen["login, wrong PIN"] = failed
    consent = provider.log_in(login, citizen["nik"])
    seen["consent"] = consent
    seen["redirect to the agency"] = provider.decide(consent)
    tokens = provider.tokens_for(agency, citizen["nik"])
    seen["token response"] = http.post(
        "/token",
        **agency.authenticated({"grant_type": "refresh_token", "refresh_token": "none"}),
    )
    seen["userinfo"] = provider.userinfo(tokens["access_token"])
    step_up = provider.authorize(
        agency, acr_values=SUBSTANTIAL, code_challenge=pkce_pair()[1], code_challenge_method="S256"
    )
    seen["one-time code (enrolment)"] = step_up
    seen["activation"] = http.get("/activate")
    seen["portal"] = http.get("/account")  # the browser's session from the agency login
    seen["portal: data download"] = http.get("/account/data.json")
    receipt = seen["portal"].text.split('href="/account/receipts/')[1].split('"')[0]
    seen["portal: consent receipt"] = http.get(f"/account/receipts/{receipt}")
    seen["portal: change PIN"] = http.get("/account/pin")
    seen["portal: enrol authenticator"] = http.get("/account/otp/enrol")
    seen["portal: withdraw access"] = http.get(f"/account/agencies/{agency.client_id}/revoke")
    seen["logout confirmation"] = http.get("/logout")
    seen["logged out"] = http.post(
        "/logout", data={"csrf_token": hidden(seen["logout confirmation"].text, "csrf_token")}
    )
    seen["portal login"] = http.get("/account")
    seen["portal, after a portal login"] = portal_login(provider, citizen["nik"], PIN)
    return seen


def test_every_page_and_personal_response_carries_the_security_headers(provider):
    pages = every_page(provider)
    html = [
        name
        for name, r in pages.items()
        if r.headers.get("content-type", "").startswith("text/html")
    ]
    assert len(html) >= 12, html  # the walk really reached the pages
    for name, response in pages.items():
        assert response.status_code < 500, name
        assert_page_headers(name, response)


def test_behind_an_https_issuer_every_response_also_carries_hsts(https_provider):
    for name, response in every_page(https_provider).items():
        assert_page_headers(name, response, https=True)
    assert "strict-transport-security" in https_provider.http.get("/healthz").headers
