"""The token endpoint: client authentication, single-use codes, the tokens issued."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from joserfc.jwk import RSAKey
from sqlalchemy import update

from digital_id.db.types import utc_now
from digital_id.grants.models import AuthorizationCode
from tests.web.conftest import ISSUER

METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


@pytest.mark.parametrize("method", METHODS)
def test_happy_path_for_each_client_authentication_method(provider, method):
    citizen = provider.citizen()
    agency = provider.agency(method)
    code, verifier, _ = provider.code_for(agency, citizen["nik"])
    response = provider.token(agency, code, verifier)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert "refresh_token" not in body

    id_token = provider.verify(body["id_token"])
    assert id_token["iss"] == ISSUER
    assert id_token["aud"] == agency.client_id
    assert {"sub", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "at_hash"} <= set(
        id_token
    )
    assert id_token["acr"] == "urn:digital-id:loa:low"
    assert id_token["amr"] == ["pin"]
    assert citizen["nik"] not in json.dumps(id_token)

    access = provider.verify(body["access_token"])
    assert set(access) == {
        "iss",
        "aud",
        "sub",
        "client_id",
        "scope",
        "acr",
        "auth_time",
        "jti",
        "iat",
        "exp",
    }
    assert access["sub"] == id_token["sub"]
    assert access["exp"] - access["iat"] == 300

    info = provider.userinfo(body["access_token"])
    assert info.status_code == 200
    assert info.headers["cache-control"] == "no-store"
    assert info.json() == {
        "sub": id_token["sub"],
        "name": citizen["full_name"],
        "gender": "male",
        "birthdate": "1990-10-20",
    }


def test_the_id_token_is_signed_with_the_algorithm_the_client_registered(provider):
    provider.key_store.generate("ES256")
    provider.key_store.generate("PS256", size=2048)
    citizen = provider.citizen()
    for alg in ("ES256", "PS256"):
        agency = provider.agency(id_token_signed_response_alg=alg)
        provider.http.app.state.key_ring.check_interval = 0
        tokens = provider.tokens_for(agency, citizen["nik"])
        header = json.loads(
            __import__("base64").urlsafe_b64decode(tokens["id_token"].split(".")[0] + "==")
        )
        assert header["alg"] == alg
        assert provider.verify(tokens["id_token"])["aud"] == agency.client_id


def test_the_nonce_is_echoed_in_the_id_token(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    tokens = provider.tokens_for(agency, citizen["nik"], nonce="n-0S6_WzA2Mj")
    assert provider.verify(tokens["id_token"])["nonce"] == "n-0S6_WzA2Mj"


def test_a_nonce_used_before_by_the_same_client_is_refused(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    provider.tokens_for(agency, citizen["nik"], nonce="used-once")
    from tests.web.test_authorization_endpoint import pkce, redirected

    answer = redirected(provider.authorize(agency, nonce="used-once", **pkce()))
    assert answer["error"] == "invalid_request"


def test_claims_asked_for_the_id_token_are_in_it(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    tokens = provider.tokens_for(
        agency, citizen["nik"], scope="openid", claims='{"id_token": {"name": null}}'
    )
    assert provider.verify(tokens["id_token"])["name"] == citizen["full_name"]


def test_scopes_outside_the_registration_are_not_granted(provider):
    citizen = provider.citizen()
    agency = provider.agency(scope="openid profile")
    tokens = provider.tokens_for(agency, citizen["nik"], scope="openid profile nik family")
    assert tokens["scope"] == "openid profile"
    assert "nik" not in provider.userinfo(tokens["access_token"]).json()


def test_the_nik_scope_releases_the_nik_to_an_agency_registered_for_it(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    tokens = provider.tokens_for(agency, citizen["nik"], scope="openid nik address")
    info = provider.userinfo(tokens["access_token"]).json()
    assert info["nik"] == citizen["nik"]
    assert info["address"]["country"] == "ID"
    assert info["address"]["rt"] == citizen["rt"]


def test_a_wrong_pkce_verifier_is_invalid_grant(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    code, _, _ = provider.code_for(agency, citizen["nik"])
    response = provider.token(agency, code, "x" * 50)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_a_missing_pkce_verifier_is_refused(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    code, _, _ = provider.code_for(agency, citizen["nik"])
    response = provider.token(agency, code, None)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_a_different_redirect_uri_at_the_token_endpoint_is_invalid_grant(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    code, verifier, _ = provider.code_for(agency, citizen["nik"])
    response = provider.token(
        agency, code, verifier, redirect_uri="https://pajak.example.go.id/other"
    )
    assert response.json()["error"] == "invalid_grant"


def test_code_cannot_be_redeemed_twice_and_reuse_revokes_the_first_tokens(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    code, verifier, _ = provider.code_for(agency, citizen["nik"])
    first = provider.token(agency, code, verifier)
    assert first.status_code == 200
    assert provider.userinfo(first.json()["access_token"]).status_code == 200
    second = provider.token(agency, code, verifier)
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert provider.userinfo(first.json()["access_token"]).status_code == 401


def test_a_code_issued_to_another_client_is_invalid_grant(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    other = provider.agency()
    code, verifier, _ = provider.code_for(agency, citizen["nik"])
    response = provider.token(other, code, verifier)
    assert response.json()["error"] == "invalid_grant"
    assert provider.token(agency, code, verifier).status_code == 200  # still unredeemed


def test_an_expired_code_is_invalid_grant(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    code, verifier, _ = provider.code_for(agency, citizen["nik"])
    with provider.engine.begin() as connection:
        connection.execute(
            update(AuthorizationCode).values(expires_at=utc_now() - timedelta(seconds=1))
        )
    assert provider.token(agency, code, verifier).json()["error"] == "invalid_grant"


def test_codes_live_sixty_seconds_and_are_stored_hashed(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    code, _, _ = provider.code_for(agency, citizen["nik"])
    with provider.engine.connect() as connection:
        row = connection.execute(AuthorizationCode.__table__.select()).one()
    assert code not in repr(tuple(row))
    assert (row.expires_at - row.created_at) == timedelta(seconds=60)


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_a_wrong_client_secret_is_invalid_client_401(provider, method):
    citizen = provider.citizen()
    agency = provider.agency(method)
    code, verifier, _ = provider.code_for(agency, citizen["nik"])
    agency.secret = "dgid_cs_wrong"
    response = provider.token(agency, code, verifier)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


def test_a_client_must_use_its_registered_authentication_method(provider):
    citizen = provider.citizen()
    agency = provider.agency("client_secret_basic")
    code, verifier, _ = provider.code_for(agency, citizen["nik"])
    agency.method = "client_secret_post"
    response = provider.token(agency, code, verifier)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_a_confidential_client_cannot_act_as_public(provider):
    citizen = provider.citizen()
    agency = provider.agency("client_secret_basic")
    code, verifier, _ = provider.code_for(agency, citizen["nik"])
    agency.method = "none"
    assert provider.token(agency, code, verifier).status_code == 401


def _assertion_request(provider, agency, code, verifier, assertion):
    return provider.http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": agency.redirect_uri,
            "code_verifier": verifier,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )


def test_a_replayed_client_assertion_jti_is_refused(provider):
    citizen = provider.citizen()
    agency = provider.agency("private_key_jwt")
    assertion = agency.assertion()
    code, verifier, _ = provider.code_for(agency, citizen["nik"])
    assert _assertion_request(provider, agency, code, verifier, assertion).status_code == 200
    code, verifier, _ = provider.code_for(agency, citizen["nik"])
    replay = _assertion_request(provider, agency, code, verifier, assertion)
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"aud": "https://elsewhere.example/token"}, "wrong audience"),
        ({"aud": ISSUER + "/token"}, "the token endpoint, not the issuer (RFC 7523bis)"),
        ({"aud": [ISSUER, "https://elsewhere.example"]}, "the issuer, but not alone"),
        ({"aud": [ISSUER]}, None),
        ({"exp": lambda: int(time.time()) + 900}, "exp more than 5 minutes ahead"),
        ({"exp": lambda: int(time.time()) - 60}, "expired beyond the leeway"),
        ({"exp": lambda: int(time.time()) - 5}, None),
        ({"jti": None}, "no jti"),
        ({"iss": "dgid_someone_else"}, "iss is not the client"),
    ],
)
def test_client_assertion_rules(provider, overrides, why):
    citizen = provider.citizen()
    agency = provider.agency("private_key_jwt")
    code, verifier, _ = provider.code_for(agency, citizen["nik"])
    overrides = {name: value() if callable(value) else value for name, value in overrides.items()}
    response = _assertion_request(provider, agency, code, verifier, agency.assertion(**overrides))
    if why is None:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 401, why
        assert response.json()["error"] == "invalid_client"


def test_an_assertion_signed_by_another_key_is_refused(provider):
    citizen = provider.citizen()
    agency = provider.agency("private_key_jwt")
    code, verifier, _ = provider.code_for(agency, citizen["nik"])
    agency.private_key = RSAKey.generate_key(2048, parameters={"alg": "RS256"}, auto_kid=True)
    response = _assertion_request(provider, agency, code, verifier, agency.assertion())
    assert response.status_code == 401


def test_twenty_parallel_redemptions_of_one_code_give_exactly_one_success(provider, live_server):
    citizen = provider.citizen()
    agency = provider.agency()
    code, verifier, _ = provider.code_for(agency, citizen["nik"])
    request = agency.token_request(code, verifier)

    def redeem(_: int) -> httpx.Response:
        with httpx.Client(base_url=live_server, timeout=60) as client:
            return client.post("/token", **request)

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(redeem, range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [400] * 19, [r.text for r in responses if r.status_code >= 500]
    assert all(r.json()["error"] == "invalid_grant" for r in responses if r.status_code == 400)
    winner = next(r for r in responses if r.status_code == 200).json()
    # The losing redemptions revoked what the winner was issued.
    assert provider.userinfo(winner["access_token"]).status_code == 401


def test_issuing_tokens_adds_no_rows(provider):
    """Access tokens are self-contained: the token endpoint only marks the code redeemed (and
    the audit trail notes the issuance, the client's rate-limit window counts it)."""
    from sqlalchemy import func, select

    from digital_id.schema import metadata

    citizen = provider.citizen()
    agency = provider.agency()
    code, verifier, _ = provider.code_for(agency, citizen["nik"])

    def counts():
        with provider.engine.connect() as connection:
            return {
                table.name: connection.execute(select(func.count()).select_from(table)).scalar()
                for table in metadata.sorted_tables
                # The trail records the issuance; the client's budget counts it.
                if not table.name.startswith("audit_") and table.name != "rate_limit_windows"
            }

    before = counts()
    assert provider.token(agency, code, verifier).status_code == 200
    assert counts() == before


def test_long_expired_codes_and_assertion_ids_are_purged(provider):
    """By the housekeeping, not by the request that presents the next assertion."""
    from sqlalchemy import func, select

    from digital_id.oidc.models import SeenClientAssertion
    from digital_id.web.housekeeping import purge_round

    citizen = provider.citizen()
    agency = provider.agency("private_key_jwt")
    tokens_before = provider.tokens_for(agency, citizen["nik"])
    assert tokens_before["access_token"]
    long_ago = utc_now() - timedelta(hours=1)
    with provider.engine.begin() as connection:
        connection.execute(update(AuthorizationCode).values(expires_at=long_ago))
        connection.execute(update(SeenClientAssertion).values(expires_at=long_ago))
    provider.tokens_for(agency, citizen["nik"])
    purged = purge_round(provider.engine)
    assert (purged["authorization_codes"], purged["seen_client_assertions"]) == (1, 1)
    with provider.engine.connect() as connection:
        codes = connection.execute(select(func.count()).select_from(AuthorizationCode)).scalar()
        seen = connection.execute(select(func.count()).select_from(SeenClientAssertion)).scalar()
    assert (codes, seen) == (1, 1)  # only the new flow's


def test_a_registered_token_endpoint_auth_signing_alg_is_the_only_one_accepted(provider):
    """OpenID Connect Registration 1.0 section 2: assertions signed otherwise are refused."""
    citizen = provider.citizen()
    strict = provider.agency("private_key_jwt", token_endpoint_auth_signing_alg="PS256")
    code, verifier, _ = provider.code_for(strict, citizen["nik"])
    refused = provider.token(strict, code, verifier)  # signed RS256
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"

    matching = provider.agency("private_key_jwt", token_endpoint_auth_signing_alg="RS256")
    code, verifier, _ = provider.code_for(matching, citizen["nik"])
    assert provider.token(matching, code, verifier).status_code == 200
