"""Refresh tokens: only with consent to offline access, bound to the client, rotated on every
use with a short grace window, reuse after it revokes that family alone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
from sqlalchemy import select, update

from digital_id.db.types import utc_now
from digital_id.grants.models import AuthorizationGrant, RefreshToken

OFFLINE = {"scope": "openid profile offline_access"}


def offline_agency(provider, method="client_secret_basic", **metadata):
    return provider.agency(
        method,
        grant_types=["authorization_code", "refresh_token"],
        scope="openid profile nik address offline_access",
        **metadata,
    )


def refresh(provider, agency, refresh_token, **extra):
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    return provider.http.post("/token", **agency.authenticated(form))


def test_no_refresh_token_without_offline_access(provider):
    citizen = provider.citizen()
    agency = offline_agency(provider)
    assert "refresh_token" not in provider.tokens_for(agency, citizen["nik"])


def test_no_refresh_token_for_a_client_not_registered_for_the_grant(provider):
    citizen = provider.citizen()
    agency = provider.agency(scope="openid profile offline_access")
    assert "refresh_token" not in provider.tokens_for(agency, citizen["nik"], **OFFLINE)


def test_offline_access_is_shown_on_the_consent_page(provider):
    citizen = provider.citizen()
    agency = offline_agency(provider)
    from tests.web.test_authorization_endpoint import pkce

    page = provider.log_in(provider.authorize(agency, **OFFLINE, **pkce()), citizen["nik"])
    assert "token penyegaran" in page.text


def test_a_refresh_token_is_stored_hashed_and_rotated_on_use(provider):
    citizen = provider.citizen()
    agency = offline_agency(provider)
    tokens = provider.tokens_for(agency, citizen["nik"], **OFFLINE)
    first = tokens["refresh_token"]
    with provider.engine.connect() as connection:
        assert first not in repr(connection.execute(select(RefreshToken)).all())
    response = refresh(provider, agency, first)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["refresh_token"] != first
    assert provider.userinfo(body["access_token"]).status_code == 200
    again = refresh(provider, agency, body["refresh_token"])
    assert again.status_code == 200


def test_the_previous_token_works_within_the_grace_window(provider):
    citizen = provider.citizen()
    agency = offline_agency(provider)
    first = provider.tokens_for(agency, citizen["nik"], **OFFLINE)["refresh_token"]
    lost = refresh(provider, agency, first).json()["refresh_token"]
    retry = refresh(provider, agency, first)  # the app never saw `lost`
    assert retry.status_code == 200
    newest = retry.json()["refresh_token"]
    assert refresh(provider, agency, newest).status_code == 200
    assert lost != newest


def test_reuse_after_the_grace_window_revokes_that_family_only(provider):
    citizen = provider.citizen()
    agency = offline_agency(provider)
    other_app = offline_agency(provider, redirect_uris=["https://other.example.go.id/cb"])
    family = provider.tokens_for(agency, citizen["nik"], **OFFLINE)
    second_family = provider.tokens_for(agency, citizen["nik"], **OFFLINE)
    other = provider.tokens_for(other_app, citizen["nik"], **OFFLINE)

    rotated = refresh(provider, agency, family["refresh_token"]).json()
    with provider.engine.begin() as connection:
        connection.execute(
            update(RefreshToken)
            .where(RefreshToken.rotated_at.is_not(None))
            .values(rotated_at=utc_now() - timedelta(seconds=31))
        )
    replay = refresh(provider, agency, family["refresh_token"])
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    # The family is dead: its newest token and its access tokens too.
    assert refresh(provider, agency, rotated["refresh_token"]).json()["error"] == "invalid_grant"
    assert provider.userinfo(rotated["access_token"]).status_code == 401
    # Nothing else is.
    assert refresh(provider, agency, second_family["refresh_token"]).status_code == 200
    assert refresh(provider, other_app, other["refresh_token"]).status_code == 200


def test_another_client_presenting_the_token_gets_invalid_grant_and_changes_nothing(provider):
    citizen = provider.citizen()
    agency = offline_agency(provider)
    thief = offline_agency(provider)
    token = provider.tokens_for(agency, citizen["nik"], **OFFLINE)["refresh_token"]
    stolen = refresh(provider, thief, token)
    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    assert refresh(provider, agency, token).status_code == 200


def test_an_idle_or_absolutely_expired_family_is_refused(provider):
    citizen = provider.citizen()
    agency = offline_agency(provider)
    idle = provider.tokens_for(agency, citizen["nik"], **OFFLINE)["refresh_token"]
    with provider.engine.begin() as connection:
        connection.execute(update(RefreshToken).values(idle_until=utc_now() - timedelta(seconds=1)))
    assert refresh(provider, agency, idle).json()["error"] == "invalid_grant"

    old = provider.tokens_for(agency, citizen["nik"], **OFFLINE)["refresh_token"]
    with provider.engine.begin() as connection:
        connection.execute(
            update(AuthorizationGrant).values(offline_until=utc_now() - timedelta(seconds=1))
        )
    assert refresh(provider, agency, old).json()["error"] == "invalid_grant"


def test_a_narrower_scope_may_be_asked_a_wider_one_may_not(provider):
    citizen = provider.citizen()
    agency = offline_agency(provider)
    token = provider.tokens_for(agency, citizen["nik"], **OFFLINE)["refresh_token"]
    wider = refresh(provider, agency, token, scope="openid profile nik")
    assert wider.json()["error"] == "invalid_scope"
    narrower = refresh(provider, agency, token, scope="openid")
    assert narrower.status_code == 200
    assert narrower.json()["scope"] == "openid"


def test_twenty_parallel_refreshes_leave_one_live_token_in_one_family(provider, live_server):
    citizen = provider.citizen()
    agency = offline_agency(provider)
    token = provider.tokens_for(agency, citizen["nik"], **OFFLINE)["refresh_token"]
    request = agency.authenticated({"grant_type": "refresh_token", "refresh_token": token})

    def use(_: int) -> httpx.Response:
        with httpx.Client(base_url=live_server, timeout=60) as client:
            return client.post("/token", **request)

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(use, range(20)))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    issued = [r.json()["refresh_token"] for r in responses]
    assert len(set(issued)) == 20
    with provider.engine.connect() as connection:
        assert len(connection.execute(select(AuthorizationGrant.id)).all()) == 1  # one family
    # Using one of them moves the family on: every other is stale, and presenting one
    # after the grace window ends the family.
    newest = refresh(provider, agency, issued[-1])
    assert newest.status_code == 200
    assert refresh(provider, agency, issued[0]).json()["error"] == "invalid_grant"
    assert (
        refresh(provider, agency, newest.json()["refresh_token"]).json()["error"] == "invalid_grant"
    )
