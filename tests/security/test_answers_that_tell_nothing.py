"""Answers that must not tell a caller more than it may know, against a live server."""

from __future__ import annotations


def test_revoking_another_clients_token_answers_like_garbage_and_changes_nothing(live_provider):
    citizen = live_provider.citizen()
    owner = live_provider.agency()
    other = live_provider.agency()
    tokens = live_provider.tokens_for(owner, citizen["nik"], scope="openid profile")
    http = live_provider.http

    foreign = http.post("/revoke", **other.authenticated({"token": tokens["access_token"]}))
    garbage = http.post("/revoke", **other.authenticated({"token": "not-a-token-at-all"}))

    assert foreign.status_code == garbage.status_code == 200
    assert foreign.json() == garbage.json()
    assert live_provider.userinfo(tokens["access_token"]).status_code == 200


def test_discovery_lists_each_claim_once(live_provider):
    claims = live_provider.http.get("/.well-known/openid-configuration").json()["claims_supported"]

    assert len(claims) == len(set(claims))
    assert "sub" in claims


def test_the_wrong_authentication_method_is_refused_naming_the_registered_one(live_provider):
    agency = live_provider.agency("client_secret_basic")
    form = {
        "grant_type": "authorization_code",
        "code": "a-code",
        "client_id": agency.client_id,
        "client_secret": agency.secret,
    }

    response = live_provider.http.post("/token", data=form)

    assert response.status_code == 401
    description = response.json()["error_description"]
    assert description.endswith("its registered method, client_secret_basic")
    assert "(" not in description
    assert "private_key_jwt" not in description
