"""UserInfo releases exactly the consented claims, and only while the grant behind the token lives."""

from __future__ import annotations

import base64
import json
import time

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import update

from digital_id.clients.models import Client
from digital_id.consent.models import Consent
from digital_id.db.types import utc_now
from digital_id.registry.models import Citizen
from tests.web.conftest import ISSUER

INVALID_TOKEN = 'error="invalid_token"'


def test_userinfo_answers_get_and_post_with_a_bearer_token(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    token = provider.tokens_for(agency, citizen["nik"])["access_token"]
    by_get = provider.http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    by_post = provider.http.post("/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert by_get.status_code == by_post.status_code == 200
    assert by_get.json() == by_post.json()


def test_without_a_token_userinfo_asks_for_one(provider):
    response = provider.http.get("/userinfo")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "error=" not in response.headers["www-authenticate"]


def test_a_signed_userinfo_jwt_for_an_agency_that_registered_for_it(provider):
    citizen = provider.citizen()
    agency = provider.agency(userinfo_signed_response_alg="RS256")
    tokens = provider.tokens_for(agency, citizen["nik"])
    response = provider.userinfo(tokens["access_token"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jwt")
    claims = provider.verify(response.text)
    assert claims["iss"] == ISSUER
    assert claims["aud"] == agency.client_id
    assert claims["name"] == citizen["full_name"]
    assert claims["sub"] == provider.verify(tokens["id_token"])["sub"]


def _refused(response) -> bool:
    return response.status_code == 401 and INVALID_TOKEN in response.headers["www-authenticate"]


def test_a_blocked_citizens_tokens_stop_working_at_once(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    token = provider.tokens_for(agency, citizen["nik"])["access_token"]
    with provider.engine.begin() as connection:
        connection.execute(update(Citizen).values(status="blocked"))
    assert _refused(provider.userinfo(token))


def test_a_withdrawn_consent_stops_userinfo(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    token = provider.tokens_for(agency, citizen["nik"])["access_token"]
    with provider.engine.begin() as connection:
        connection.execute(update(Consent).values(revoked_at=utc_now()))
    assert _refused(provider.userinfo(token))


def test_a_disabled_agency_gets_nothing(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    token = provider.tokens_for(agency, citizen["nik"])["access_token"]
    with provider.engine.begin() as connection:
        connection.execute(update(Client).values(enabled=False))
    assert _refused(provider.userinfo(token))


def test_an_expired_or_forged_token_is_invalid(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    token = provider.tokens_for(agency, citizen["nik"])["access_token"]
    claims = provider.verify(token)

    snapshot = provider.key_store.snapshot()
    expired = snapshot.sign({**claims, "exp": int(time.time()) - 10}, header={"typ": "at+jwt"})
    assert _refused(provider.userinfo(expired))

    stranger = RSAKey.generate_key(2048, parameters={"alg": "RS256"}, auto_kid=True)
    forged = jwt.encode({"alg": "RS256", "typ": "at+jwt"}, claims, KeySet([stranger]))
    assert _refused(provider.userinfo(forged))

    unsigned = (
        ".".join(
            base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
            for part in ({"alg": "none", "typ": "at+jwt"}, claims)
        )
        + "."
    )
    assert _refused(provider.userinfo(unsigned))

    id_token = provider.tokens_for(agency, citizen["nik"])["id_token"]
    assert _refused(provider.userinfo(id_token))  # an ID token is not an access token


def test_public_subjects_are_the_same_across_agencies_pairwise_ones_differ(provider):
    citizen = provider.citizen()
    first = provider.agency(subject_type="public")
    second = provider.agency(
        subject_type="public", redirect_uris=["https://other.example.go.id/cb"]
    )
    third = provider.agency(redirect_uris=["https://third.example.go.id/cb"])
    subs = [
        provider.verify(provider.tokens_for(agency, citizen["nik"])["id_token"])["sub"]
        for agency in (first, second, third)
    ]
    assert subs[0] == subs[1]
    assert subs[2] != subs[0]
    assert citizen["nik"] not in subs


def test_two_agencies_on_one_host_share_a_sector_and_so_a_subject(provider):
    citizen = provider.citizen()
    first = provider.agency()
    second = provider.agency()  # same redirect host
    subs = {
        provider.verify(provider.tokens_for(agency, citizen["nik"])["id_token"])["sub"]
        for agency in (first, second)
    }
    assert len(subs) == 1


def test_blocking_a_citizen_from_the_cli_kills_live_tokens_and_logins(
    provider, cli_env, monkeypatch
):
    from typer.testing import CliRunner

    from digital_id.cli import app
    from tests.conftest import TEST_PASSPHRASE
    from tests.web.test_authorization_endpoint import pkce

    monkeypatch.setenv("DIGITAL_ID_KEYS_PASSPHRASE", TEST_PASSPHRASE)
    citizen = provider.citizen()
    agency = provider.agency()
    tokens = provider.tokens_for(agency, citizen["nik"])
    assert provider.userinfo(tokens["access_token"]).status_code == 200
    result = CliRunner().invoke(app, ["citizens", "block", citizen["nik"]])
    assert result.exit_code == 0, result.output
    assert _refused(provider.userinfo(tokens["access_token"]))
    introspection = provider.http.post(
        "/introspect", **agency.authenticated({"token": tokens["access_token"]})
    ).json()
    assert introspection == {"active": False}
    provider.http.cookies.clear()
    page = provider.log_in(provider.authorize(agency, **pkce()), citizen["nik"])
    assert 'role="alert"' in page.text
