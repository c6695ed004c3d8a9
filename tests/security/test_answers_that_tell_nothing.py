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
