"""The demo agency's logout against the fake Digital ID: RP-Initiated Logout 1.0 (the redirect
to the end_session_endpoint and the checked way back) and Back-Channel Logout 1.0 (each
check of section 2.6 on the logout token, and what an accepted token does to a session)."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient

from examples.agency_app import app as agency_app
from examples.agency_app.backchannel import EndedSessions, LogoutToken, RefetchLimit, SeenTokenIds
from tests.examples.fake_digital_id import (
    BACKCHANNEL_EVENT,
    END_SESSION_ENDPOINT,
    ISSUER,
    FakeDigitalID,
)
from tests.examples.test_agency_app_flow import CLIENT_ID, _agency, _log_in

AGENCY_NAME = "Kantor Pajak Daerah (demo)"
LOGGED_OUT_EVERYWHERE = f"You are logged out of {AGENCY_NAME} and of Digital ID."
NEUTRAL = "Nothing to confirm"


def _logged_in(**provider_options: Any) -> tuple[TestClient, FakeDigitalID]:
    client, provider, _jwk = _agency(**provider_options)
    assert _log_in(client, provider).status_code == 303
    assert _is_logged_in(client)
    return client, provider


def _is_logged_in(client: TestClient) -> bool:
    page = client.get("/").text
    assert ("Signed in with Digital ID" in page) != ('href="/login"' in page)
    return "Signed in with Digital ID" in page


def _end_session_request(client: TestClient) -> dict[str, str]:
    response = client.post("/logout", follow_redirects=False)
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == END_SESSION_ENDPOINT
    return {name: values[0] for name, values in parse_qs(location.query).items()}


def _back_channel(client: TestClient, token: str) -> Any:
    return client.post("/backchannel-logout", data={"logout_token": token})


# --- RP-initiated logout ------------------------------------------------------------------


def test_log_out_sends_the_browser_to_end_session_with_hint_client_id_uri_and_state():
    client, provider = _logged_in()

    query = _end_session_request(client)

    assert query["id_token_hint"] == provider.id_tokens[-1]
    assert query["client_id"] == CLIENT_ID
    assert query["post_logout_redirect_uri"] == "http://agency.test/logged-out"
    assert len(query["state"]) >= 20
    assert set(query) == {"id_token_hint", "client_id", "post_logout_redirect_uri", "state"}
    assert not _is_logged_in(client)  # logged out here before leaving


def test_every_logout_has_a_fresh_state():
    client, provider = _logged_in()
    first = _end_session_request(client)["state"]
    _log_in(client, provider)

    second = _end_session_request(client)["state"]

    assert first != second


def test_coming_back_with_the_state_says_logged_out_here_and_at_digital_id():
    client, _provider = _logged_in()
    state = _end_session_request(client)["state"]

    page = client.get(f"/logged-out?{urlencode({'state': state})}")
    again = client.get(f"/logged-out?{urlencode({'state': state})}")

    assert page.status_code == 200
    assert LOGGED_OUT_EVERYWHERE in page.text
    assert NEUTRAL in again.text  # a state confirms one logout, once
    assert "Digital ID." not in again.text.split("<main>")[1].split("</main>")[0]


@pytest.mark.parametrize(
    "query",
    ["", "?state=%3Cb%3E0800-SCAM%3C%2Fb%3E", "?state=guessed&error=0800-SCAM"],
    ids=["no-state", "forged-state", "extra-parameters"],
)
def test_logged_out_page_without_this_browsers_state_is_neutral_and_echoes_nothing(query):
    client, _provider = _logged_in()

    page = client.get(f"/logged-out{query}")

    assert page.status_code == 200
    assert NEUTRAL in page.text
    assert LOGGED_OUT_EVERYWHERE not in page.text
    assert "0800-SCAM" not in page.text
    assert _is_logged_in(client)  # a link to /logged-out logs nobody out


def test_a_state_from_another_browser_is_not_accepted():
    client, _provider = _logged_in()
    other, _other_provider = _logged_in()
    state = _end_session_request(client)["state"]

    assert NEUTRAL in other.get(f"/logged-out?{urlencode({'state': state})}").text
    assert LOGGED_OUT_EVERYWHERE in client.get(f"/logged-out?{urlencode({'state': state})}").text


def test_log_out_without_a_login_just_goes_home():
    client, _provider, _jwk = _agency()

    response = client.post("/logout", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/"


def test_log_out_here_only_keeps_the_browser_at_the_agency():
    client, _provider = _logged_in()

    response = client.post("/logout/local", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/"
    assert not _is_logged_in(client)


def test_without_an_end_session_endpoint_the_logout_is_local_and_says_so():
    client, _provider = _logged_in(advertise_end_session=False)

    page = client.post("/logout", follow_redirects=False)

    assert page.status_code == 200
    assert "could not be reached" in page.text
    assert not _is_logged_in(client)


def test_the_logout_form_may_redirect_to_digital_id():
    """CSP form-action also governs where a form's response redirects (CSP Level 3)."""
    client, _provider = _logged_in()

    csp = client.get("/").headers["content-security-policy"]

    assert f"form-action 'self' {ISSUER}" in csp
    assert 'action="/logout"' in client.get("/").text


def test_a_login_older_than_an_hour_is_over(monkeypatch):
    client, _provider = _logged_in()
    later = time.time() + agency_app.SESSION_MAX_AGE + 1
    monkeypatch.setattr(
        agency_app, "time", SimpleNamespace(time=lambda: later, monotonic=time.monotonic)
    )

    assert not _is_logged_in(client)


# --- back-channel logout ------------------------------------------------------------------


def test_an_accepted_logout_token_logs_the_session_out():
    client, provider = _logged_in()

    response = _back_channel(client, provider.logout_token())

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.content == b""
    assert client.app.state.agency.ended_sessions.ended_sids() == {provider.sid}
    home = client.get("/")
    assert 'href="/login"' in home.text
    assert "set-cookie" in home.headers  # the session cookie is cleared, not just ignored
    assert not client.cookies


@pytest.mark.parametrize(
    "options",
    [
        {"aud": ["another-agency", CLIENT_ID]},
        {"header": {"typ": None}},  # typ is checked only when present
        {"header": {"typ": "application/logout+jwt"}},
        {"sub": None},  # sid alone
    ],
    ids=["aud-list", "no-typ", "typ-media-type", "sid-only"],
)
def test_logout_tokens_the_spec_allows_are_accepted(options):
    client, provider = _logged_in()

    response = _back_channel(client, provider.logout_token(**options))

    assert response.status_code == 200, response.text
    assert not _is_logged_in(client)


def _expired() -> dict[str, Any]:
    now = int(time.time())
    return {"iat": now - 900, "exp": now - 600}  # beyond the two minutes' leeway


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"unpublished_key": True}, "not a JWT signed by the provider"),
        ({"aud": "another-agency"}, "'aud'"),
        ({"aud": ["another-agency"]}, "'aud'"),
        ({"iss": "http://impostor.test"}, "'iss'"),
        ({"expired": True}, "expired"),
        ({"iat": None}, "'iat'"),
        ({"jti": None}, "'jti'"),
        ({"nonce": "n-0S6_WzA2Mj"}, "nonce"),
        ({"events": None}, "events"),
        ({"events": {"http://schemas.openid.net/event/other": {}}}, "events"),
        ({"events": {BACKCHANNEL_EVENT: "yes"}}, "events"),
        ({"sid": None, "sub": None}, "neither sid nor sub"),
        ({"sid": ""}, "non-empty strings"),
        ({"header": {"typ": "JWT"}}, "typ"),
    ],
    ids=[
        "bad-signature",
        "wrong-aud",
        "wrong-aud-list",
        "wrong-iss",
        "expired",
        "no-iat",
        "no-jti",
        "nonce",
        "no-events",
        "other-event",
        "event-not-object",
        "no-sid-no-sub",
        "empty-sid",
        "typ-jwt",
    ],
)
def test_a_logout_token_failing_a_check_is_refused_and_ends_nothing(options, reason):
    client, provider = _logged_in()
    if options.pop("expired", False):
        options |= _expired()

    response = _back_channel(client, provider.logout_token(**options))

    assert response.status_code == 400
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == "invalid_request"
    assert reason in body["error_description"]
    assert _is_logged_in(client)


@pytest.mark.parametrize(
    "token",
    ["", "not-a-jwt", "a.b.c", None],
    ids=["empty", "garbage", "three-parts", "missing"],
)
def test_a_request_without_a_usable_logout_token_is_refused(token):
    client, _provider = _logged_in()

    data = {} if token is None else {"logout_token": token}
    response = client.post("/backchannel-logout", data=data)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert _is_logged_in(client)


def test_an_id_token_is_not_a_logout_token():
    client, provider = _logged_in()

    response = _back_channel(client, provider.id_tokens[-1])

    assert response.status_code == 400
    assert _is_logged_in(client)


def test_a_replayed_logout_token_is_refused():
    client, provider = _logged_in()
    token = provider.logout_token()

    first = _back_channel(client, token)
    replayed = _back_channel(client, token)

    assert first.status_code == 200
    assert replayed.status_code == 400
    assert "used before" in replayed.json()["error_description"]


def test_a_logout_for_another_session_leaves_this_one_alone():
    client, provider = _logged_in()

    response = _back_channel(client, provider.logout_token(sid="another-session"))

    assert response.status_code == 200
    assert _is_logged_in(client)


def test_a_logout_by_subject_alone_ends_that_citizens_logins_made_before_it():
    client, provider = _logged_in()

    response = _back_channel(client, provider.logout_token(sid=None))
    logged_in_before = _is_logged_in(client)
    _log_in(client, provider)

    assert response.status_code == 200
    assert not logged_in_before
    assert _is_logged_in(client)  # a login after the logout is a new one


def test_a_new_signing_key_is_fetched_once_and_made_up_kids_fetch_no_more():
    client, provider = _logged_in()
    fetched = provider.jwks_requests
    provider.rotate_key()

    rotated = _back_channel(client, provider.logout_token(sid="session-a"))
    unknown = [
        _back_channel(client, provider.logout_token(header={"kid": f"made-up-{n}"}))
        for n in range(3)
    ]

    assert rotated.status_code == 200
    assert [response.status_code for response in unknown] == [400, 400, 400]
    assert provider.jwks_requests == fetched + 1


def test_when_the_keys_cannot_be_fetched_digital_id_is_asked_to_retry():
    client, provider, _jwk = _agency(jwks_down=True)

    response = _back_channel(client, provider.logout_token())

    assert response.status_code == 503
    assert response.json() == {"error": "temporarily_unavailable"}


# --- the bounded in-memory stores ---------------------------------------------------------


def _token(sid: str | None = "sid-1", sub: str | None = "sub-1") -> LogoutToken:
    return LogoutToken(jti="jti", exp=0.0, sid=sid, sub=sub)


def test_seen_token_ids_forget_expired_ids_and_stay_bounded():
    seen = SeenTokenIds(capacity=2)

    assert seen.first_use("a", until=100, now=0)
    assert not seen.first_use("a", until=100, now=50)
    assert seen.first_use("a", until=300, now=100)  # expired, so forgotten
    assert seen.first_use("b", until=300, now=100)
    assert seen.first_use("c", until=300, now=100)
    assert len(seen) == 2
    assert seen.first_use("a", until=300, now=100)  # the oldest went to make room


def test_ended_sessions_keep_entries_for_the_retention_and_stay_bounded():
    ended = EndedSessions(retention=100, capacity=2)
    for n in range(3):
        ended.end(_token(sid=f"sid-{n}"), now=10)

    assert ended.ended_sids() == {"sid-1", "sid-2"}
    assert ended.has_ended(sid="sid-2", sub=None, logged_in_at=0, now=109)
    assert not ended.has_ended(sid="sid-2", sub=None, logged_in_at=0, now=111)


def test_a_token_with_a_sid_ends_only_that_session_of_the_subject():
    ended = EndedSessions(retention=100)
    ended.end(_token(sid="sid-1", sub="sub-1"), now=10)

    assert ended.has_ended(sid="sid-1", sub="sub-1", logged_in_at=5, now=20)
    assert not ended.has_ended(sid="sid-2", sub="sub-1", logged_in_at=5, now=20)


def test_refetch_limit_allows_one_refetch_per_interval():
    limit = RefetchLimit(interval=60)

    assert [limit.allow(t) for t in (0, 30, 61, 62)] == [True, False, True, False]
