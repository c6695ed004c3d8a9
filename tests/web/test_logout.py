"""RP-initiated logout 1.0 (the conformance test plan's cases) and back-channel logout 1.0,
received by a real HTTP endpoint."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import parse_qs, urlencode

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from tests.local_http import LocalServer, QuietHandler
from tests.web.conftest import ISSUER, query_of
from tests.web.test_authorization_endpoint import pkce, redirected

AFTER_LOGOUT = "https://pajak.example.go.id/logged-out"


class _LogoutReceiver:
    """An agency's backchannel_logout_uri: records each POST; fails the first ``failures``."""

    def __init__(self, failures: int = 0) -> None:
        self.tokens: list[str] = []
        self.attempts = 0
        self.failures = failures
        outer = self

        class Handler(QuietHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                outer.attempts += 1
                if outer.attempts <= outer.failures:
                    self.send_response(500)
                else:
                    outer.tokens.append(form["logout_token"][0])
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.local = LocalServer(Handler, "/backchannel-logout")
        self.url = self.local.url

    def wait_for(self, count: int, timeout: float = 10) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.tokens) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.tokens

    def close(self) -> None:
        self.local.close()


@pytest.fixture
def receiver():
    server = _LogoutReceiver()
    yield server
    server.close()


def logged_in(provider, **metadata):
    citizen = provider.citizen()
    agency = provider.agency(post_logout_redirect_uris=[AFTER_LOGOUT], **metadata)
    tokens = provider.tokens_for(agency, citizen["nik"])
    return citizen, agency, tokens


def end_session(provider, **params):
    return provider.http.get("/logout?" + urlencode(params), follow_redirects=False)


def assert_logged_out(provider, agency):
    answer = redirected(provider.authorize(agency, prompt="none", **pkce()))
    assert answer["error"] == "login_required"


def assert_still_logged_in(provider, agency):
    assert "code" in redirected(provider.authorize(agency, prompt="none", **pkce()))


def test_discovery_advertises_logout(provider):
    metadata = provider.http.get("/.well-known/openid-configuration").json()
    assert metadata["end_session_endpoint"] == ISSUER + "/logout"
    assert metadata["backchannel_logout_supported"] is True
    assert metadata["backchannel_logout_session_supported"] is True


def test_logout_with_a_hint_and_a_registered_uri_returns_to_the_agency_with_state(provider):
    _, agency, tokens = logged_in(provider)
    response = end_session(
        provider,
        id_token_hint=tokens["id_token"],
        post_logout_redirect_uri=AFTER_LOGOUT,
        state="bye-1",
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith(AFTER_LOGOUT)
    assert query_of(response.headers["location"]) == {"state": "bye-1"}
    assert_logged_out(provider, agency)
    assert provider.userinfo(tokens["access_token"]).status_code == 401


def test_logout_by_post_works_too(provider):
    _, agency, tokens = logged_in(provider)
    response = provider.http.post(
        "/logout",
        data={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": AFTER_LOGOUT},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert_logged_out(provider, agency)


def test_an_expired_id_token_hint_is_accepted(provider):
    _, agency, tokens = logged_in(provider)
    claims = provider.verify(tokens["id_token"])
    expired = provider.key_store.snapshot().sign({**claims, "exp": claims["iat"] - 60})
    response = end_session(provider, id_token_hint=expired, post_logout_redirect_uri=AFTER_LOGOUT)
    assert response.status_code == 303
    assert_logged_out(provider, agency)


@pytest.mark.parametrize(
    "uri",
    [
        "https://evil.example/logged-out",
        AFTER_LOGOUT + "?extra=1",  # a query added to a registered URI
        AFTER_LOGOUT + "/",
    ],
)
def test_an_unregistered_post_logout_redirect_uri_shows_the_logged_out_page(provider, uri):
    _, agency, tokens = logged_in(provider)
    response = end_session(
        provider, id_token_hint=tokens["id_token"], post_logout_redirect_uri=uri, state="s"
    )
    assert response.status_code == 200
    assert "location" not in response.headers
    assert "Anda sudah keluar" in response.text
    assert_logged_out(provider, agency)


def _unsigned(claims: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return part({"alg": "none", "typ": "JWT"}) + "." + part(claims) + "."


def _foreign(claims: dict) -> str:
    stranger = RSAKey.generate_key(2048, parameters={"alg": "RS256"}, auto_kid=True)
    return jwt.encode({"alg": "RS256"}, claims, KeySet([stranger]))


@pytest.mark.parametrize("forge", [_unsigned, _foreign], ids=["alg-none", "foreign-signed"])
def test_a_forged_id_token_hint_never_redirects_and_asks_to_confirm(provider, forge):
    _, agency, tokens = logged_in(provider)
    hint = forge(provider.verify(tokens["id_token"]))
    response = end_session(
        provider, id_token_hint=hint, post_logout_redirect_uri=AFTER_LOGOUT, state="s"
    )
    assert response.status_code == 200
    assert "location" not in response.headers
    assert 'name="csrf_token"' in response.text  # the confirmation form
    assert_still_logged_in(provider, agency)


@pytest.mark.parametrize("params", [{}, {"state": "only-state"}], ids=["no-params", "only-state"])
def test_logout_without_a_hint_asks_to_confirm_then_logs_out(provider, params):
    _, agency, _ = logged_in(provider)
    page = end_session(provider, **params)
    assert page.status_code == 200
    assert "location" not in page.headers
    assert_still_logged_in(provider, agency)
    from tests.web.conftest import hidden

    done = provider.http.post(
        "/logout", data={"csrf_token": hidden(page.text, "csrf_token")}, follow_redirects=False
    )
    assert done.status_code == 200
    assert "Anda sudah keluar" in done.text
    assert_logged_out(provider, agency)


def test_a_client_id_that_is_not_the_hints_audience_is_refused(provider):
    _, agency, tokens = logged_in(provider)
    other = provider.agency(post_logout_redirect_uris=[AFTER_LOGOUT])
    response = end_session(
        provider,
        id_token_hint=tokens["id_token"],
        client_id=other.client_id,
        post_logout_redirect_uri=AFTER_LOGOUT,
    )
    assert response.status_code == 200
    assert "location" not in response.headers
    assert_still_logged_in(provider, agency)


def test_back_channel_logout_reaches_each_agency_with_a_session(provider, receiver):
    citizen = provider.citizen()
    tax = provider.agency(
        post_logout_redirect_uris=[AFTER_LOGOUT], backchannel_logout_uri=receiver.url
    )
    aid = provider.agency(
        redirect_uris=["https://bansos.example.go.id/cb"], backchannel_logout_uri=receiver.url
    )
    untouched = provider.agency(
        redirect_uris=["https://kesehatan.example.go.id/cb"], backchannel_logout_uri=receiver.url
    )
    assert untouched.client_id
    tax_tokens = provider.tokens_for(tax, citizen["nik"])
    aid_tokens = provider.tokens_for(aid, citizen["nik"])
    end_session(
        provider, id_token_hint=tax_tokens["id_token"], post_logout_redirect_uri=AFTER_LOGOUT
    )

    received = receiver.wait_for(2)
    time.sleep(0.5)  # nothing more comes: the third agency had no session
    assert len(received) == 2
    keys = KeySet.import_key_set(provider.http.get("/jwks").json())
    by_audience = {}
    for token in received:
        decoded = jwt.decode(token, keys, algorithms=["RS256"])
        assert decoded.header["typ"] == "logout+jwt"
        claims = decoded.claims
        assert claims["iss"] == ISSUER
        assert "nonce" not in claims
        assert claims["jti"]
        assert claims["exp"] > claims["iat"]
        assert claims["events"] == {"http://schemas.openid.net/event/backchannel-logout": {}}
        by_audience[claims["aud"]] = claims
    for agency, tokens in ((tax, tax_tokens), (aid, aid_tokens)):
        id_token = provider.verify(tokens["id_token"])
        assert by_audience[agency.client_id]["sub"] == id_token["sub"]
        assert by_audience[agency.client_id]["sid"] == id_token["sid"]


def test_a_failing_back_channel_endpoint_is_retried_with_backoff(provider):
    receiver = _LogoutReceiver(failures=2)
    try:
        _, _, tokens = logged_in(provider, backchannel_logout_uri=receiver.url)
        started = time.monotonic()
        response = end_session(
            provider, id_token_hint=tokens["id_token"], post_logout_redirect_uri=AFTER_LOGOUT
        )
        assert response.status_code == 303
        assert time.monotonic() - started < 2  # the citizen's page did not wait
        assert len(receiver.wait_for(1)) == 1
        assert receiver.attempts == 3
    finally:
        receiver.close()


def test_a_hint_from_an_earlier_session_does_not_end_the_current_one_unasked(provider):
    citizen, agency, earlier = logged_in(provider)
    provider.http.cookies.delete("dgid_session")  # that session is gone from this browser
    provider.tokens_for(agency, citizen["nik"])  # a new login: a new session and sid
    response = end_session(
        provider, id_token_hint=earlier["id_token"], post_logout_redirect_uri=AFTER_LOGOUT
    )
    assert response.status_code == 200
    assert 'name="csrf_token"' in response.text  # asked to confirm
    assert "location" not in response.headers
    assert_still_logged_in(provider, agency)


def _asked_to_confirm(response) -> bool:
    return (
        response.status_code == 200
        and 'name="csrf_token"' in response.text
        and "location" not in response.headers
    )


def test_a_client_credentials_access_token_is_no_id_token_hint(provider):
    from tests.web.test_revocation_and_introspection import client_credentials, machine_client

    _, agency, _ = logged_in(provider)
    machine = machine_client(provider, post_logout_redirect_uris=[AFTER_LOGOUT])
    access_token = client_credentials(provider, machine, scope="pajak.read").json()["access_token"]
    response = end_session(
        provider, id_token_hint=access_token, post_logout_redirect_uri=AFTER_LOGOUT
    )
    assert _asked_to_confirm(response)
    assert_still_logged_in(provider, agency)


def test_a_consent_receipt_is_no_id_token_hint(provider):
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from digital_id.consent.models import ConsentReceipt

    _, agency, _ = logged_in(provider)
    with Session(provider.engine) as session:
        receipt = session.scalars(select(ConsentReceipt.token)).first()
    assert receipt is not None
    response = end_session(provider, id_token_hint=receipt)
    assert _asked_to_confirm(response)
    assert_still_logged_in(provider, agency)


def test_an_id_token_without_a_sid_or_for_no_registered_agency_is_no_hint(provider):
    _, agency, tokens = logged_in(provider)
    claims = provider.verify(tokens["id_token"])
    snapshot = provider.key_store.snapshot()
    without_sid = snapshot.sign({k: v for k, v in claims.items() if k != "sid"})
    unknown_audience = snapshot.sign({**claims, "aud": "no-such-agency"})
    access_token = provider.tokens_for(agency, provider.citizen()["nik"])["access_token"]
    for hint in (without_sid, unknown_audience, access_token):
        response = end_session(provider, id_token_hint=hint)
        assert _asked_to_confirm(response)
        assert_still_logged_in(provider, agency)
