"""A client registered under the FAPI 2.0 Security Profile: PAR, DPoP and private_key_jwt
required, PS256 or ES256 only, codes of at most 60 s. The negative tests follow the OpenID
Foundation's FAPI 2.0 conformance modules (fapi2-security-profile-final-…): each attack is
refused with the error the profile names."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import RSAKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from digital_id.app import create_app
from digital_id.clients import service as clients
from digital_id.clients.metadata_fields import InvalidClientMetadataError
from digital_id.db.types import utc_now
from digital_id.grants.models import AuthorizationCode
from digital_id.oidc.models import PushedAuthorizationRequest
from tests.web.conftest import ISSUER, Agency, Provider, pkce_pair
from tests.web.test_authorization_endpoint import redirected
from tests.web.test_dpop import TOKEN_URL, USERINFO_URL, Holder
from tests.web.test_pushed_authorization_requests import authorization, start

PAR_URL = ISSUER + "/par"


def fapi_agency(provider: Provider, **metadata: Any) -> Agency:
    return provider.agency(
        "private_key_jwt",
        alg="ES256",
        fapi2_security_profile=True,
        token_endpoint_auth_signing_alg="ES256",
        id_token_signed_response_alg="ES256",
        **metadata,
    )


def with_proof(provider: Provider, holder: Holder, url: str, send) -> httpx.Response:
    """``send(headers)`` with a DPoP proof for ``url``, learning the server nonce first as a
    client library does (the refusal spends nothing)."""
    first = send({"DPoP": holder.proof("POST", url)})
    if first.status_code == 400 and first.json().get("error") == "use_dpop_nonce":
        return send({"DPoP": holder.proof("POST", url, nonce=first.headers["dpop-nonce"])})
    return first


def push(provider: Provider, agency: Agency, holder: Holder, **overrides: Any):
    verifier, challenge = pkce_pair()
    form = authorization(agency, challenge, **overrides)

    def send(headers):
        return provider.http.post("/par", headers=headers, **agency.authenticated(form))

    return with_proof(provider, holder, PAR_URL, send), verifier


def code_through_par(provider: Provider, agency: Agency, holder: Holder, **overrides: Any):
    citizen = provider.citizen()
    pushed, verifier = push(provider, agency, holder, **overrides)
    assert pushed.status_code == 201, pushed.text
    consent = provider.log_in(start(provider, agency, pushed.json()["request_uri"]), citizen["nik"])
    answer = redirected(provider.decide(consent))
    return answer, verifier


def redeem(
    provider: Provider, agency: Agency, holder: Holder | None, code: str, verifier: str, **form: Any
):
    request = agency.token_request(code, verifier)
    request["data"] |= form

    def send(headers):
        return provider.http.post("/token", headers=headers, **request)

    if holder is None:
        return send({})
    return with_proof(provider, holder, TOKEN_URL, send)


# --- registration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        (
            {
                "token_endpoint_auth_method": "client_secret_basic",
                "jwks": None,
                "token_endpoint_auth_signing_alg": None,
            },
            "token_endpoint_auth_method",
        ),
        ({"token_endpoint_auth_signing_alg": "RS256"}, "token_endpoint_auth_signing_alg"),
        ({"id_token_signed_response_alg": "RS256"}, "id_token_signed_response_alg"),
        ({"request_object_signing_alg": "RS256"}, "request_object_signing_alg"),
    ],
)
def test_a_fapi_registration_outside_the_profile_is_refused(provider, metadata, field):
    data = {
        "client_name": "Pajak",
        "redirect_uris": ["https://pajak.example.go.id/callback"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [RSAKey.generate_key(2048).as_dict(private=False)]},
        "token_endpoint_auth_signing_alg": "PS256",
        "id_token_signed_response_alg": "PS256",
        "fapi2_security_profile": True,
        **metadata,
    }
    data = {name: value for name, value in data.items() if value is not None}
    with Session(provider.engine) as session, pytest.raises(InvalidClientMetadataError) as refused:
        clients.register(
            session, data, production=False, active_algorithms={"RS256", "PS256", "ES256"}
        )
    assert refused.value.field == field


def test_a_fapi_registration_requires_par_and_dpop(provider):
    agency = fapi_agency(provider)
    with Session(provider.engine) as session:
        registration = clients.get(session, agency.client_id).registration
    assert registration["require_pushed_authorization_requests"] is True
    assert registration["dpop_bound_access_tokens"] is True


# --- happy paths ----------------------------------------------------------------------------


def test_fapi2_happy_flow_with_a_long_nonce_and_state(provider):
    holder, agency = Holder(), fapi_agency(provider)
    answer, verifier = code_through_par(provider, agency, holder, nonce="n" * 64, state="s" * 500)
    assert answer["state"] == "s" * 500
    assert answer["iss"] == ISSUER
    tokens = redeem(provider, agency, holder, answer["code"], verifier)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["token_type"] == "DPoP"
    assert provider.verify(body["id_token"])["nonce"] == "n" * 64
    token = body["access_token"]
    info = provider.http.get(
        "/userinfo",
        headers={
            "Authorization": f"DPoP {token}",
            "DPoP": holder.proof("GET", USERINFO_URL, access_token=token),
        },
    )
    assert info.status_code == 200, info.text


def test_fapi2_user_rejects_authentication(provider):
    holder, agency, citizen = Holder(), fapi_agency(provider), provider.citizen()
    pushed, _ = push(provider, agency, holder)
    consent = provider.log_in(start(provider, agency, pushed.json()["request_uri"]), citizen["nik"])
    assert redirected(provider.decide(consent, "deny"))["error"] == "access_denied"


# --- PAR ----------------------------------------------------------------------------------


def test_fapi2_ensure_authorization_request_without_par_fails(provider):
    agency = fapi_agency(provider)
    _verifier, challenge = pkce_pair()
    page = provider.authorize(agency, code_challenge=challenge, code_challenge_method="S256")
    assert page.status_code == 400
    assert 'name="pin"' not in page.text


def test_fapi2_par_attempt_reuse_request_uri(provider):
    holder, agency = Holder(), fapi_agency(provider)
    pushed, _ = push(provider, agency, holder)
    request_uri = pushed.json()["request_uri"]
    assert 'name="pin"' in start(provider, agency, request_uri).text
    assert start(provider, agency, request_uri).status_code == 400


def test_fapi2_par_attempt_to_use_expired_request_uri(provider):

    holder, agency = Holder(), fapi_agency(provider)
    pushed, _ = push(provider, agency, holder)
    with provider.engine.begin() as connection:
        connection.execute(
            update(PushedAuthorizationRequest).values(expires_at=utc_now() - timedelta(seconds=1))
        )
    assert start(provider, agency, pushed.json()["request_uri"]).status_code == 400


def test_fapi2_par_request_uri_of_another_client_fails(provider):
    holder, agency, other = Holder(), fapi_agency(provider), fapi_agency(provider)
    pushed, _ = push(provider, agency, holder)
    assert start(provider, other, pushed.json()["request_uri"]).status_code == 400


# --- PKCE ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [{"code_challenge": None, "code_challenge_method": None}, {"code_challenge_method": "plain"}],
    ids=["pkce-missing", "plain-pkce"],
)
def test_fapi2_par_ensure_pkce_required_and_s256(provider, overrides):
    pushed, _ = push(provider, fapi_agency(provider), Holder(), **overrides)
    assert pushed.status_code == 400
    assert pushed.json()["error"] == "invalid_request"


def test_fapi2_ensure_wrong_pkce_verifier_fails(provider):
    holder, agency = Holder(), fapi_agency(provider)
    answer, _ = code_through_par(provider, agency, holder)
    refused = redeem(provider, agency, holder, answer["code"], pkce_pair()[0])
    assert refused.json()["error"] == "invalid_grant"


# --- codes ----------------------------------------------------------------------------------


def test_fapi2_codes_live_at_most_60_seconds_whatever_the_server_setting(provider):

    settings = provider.settings.model_copy(update={"authorization_code_seconds": 300})
    with TestClient(create_app(settings), base_url=ISSUER) as http:
        lenient = Provider(http, provider.engine, provider.key_store, settings, provider.tmp_path)
        code_through_par(lenient, fapi_agency(lenient), Holder())
    with Session(provider.engine) as session:
        row = session.scalars(select(AuthorizationCode)).one()
    assert row.expires_at - row.created_at == timedelta(seconds=60)


def test_fapi2_attempt_to_use_expired_auth_code(provider):
    holder, agency = Holder(), fapi_agency(provider)
    answer, verifier = code_through_par(provider, agency, holder)
    with provider.engine.begin() as connection:
        connection.execute(
            update(AuthorizationCode).values(expires_at=AuthorizationCode.created_at)
        )
    assert (
        redeem(provider, agency, holder, answer["code"], verifier).json()["error"]
        == "invalid_grant"
    )


def test_fapi2_attempt_reuse_authorization_code_after_one_second(provider):
    holder, agency = Holder(), fapi_agency(provider)
    answer, verifier = code_through_par(provider, agency, holder)
    assert redeem(provider, agency, holder, answer["code"], verifier).status_code == 200
    time.sleep(1)
    again = redeem(provider, agency, holder, answer["code"], verifier)
    assert again.json()["error"] == "invalid_grant"


# --- client authentication -------------------------------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [{"aud": TOKEN_URL}, {"exp": int(time.time()) - 300, "iat": int(time.time()) - 360}],
    ids=["wrong-aud", "expired"],
)
def test_fapi2_ensure_bad_client_assertion_fails(provider, claims):
    holder, agency = Holder(), fapi_agency(provider)
    answer, verifier = code_through_par(provider, agency, holder)
    request = agency.token_request(answer["code"], verifier)
    request["data"]["client_assertion"] = agency.assertion(**claims)

    def send(headers):
        return provider.http.post("/token", headers=headers, **request)

    refused = with_proof(provider, holder, TOKEN_URL, send)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"


def test_fapi2_ensure_client_assertion_signed_rs256_fails(provider):
    rsa = RSAKey.generate_key(2048, parameters={"alg": "RS256"}, auto_kid=True)
    agency = fapi_agency(provider)
    holder = Holder()
    answer, verifier = code_through_par(provider, agency, holder)
    rs256 = Agency(agency.client_id, None, rsa, "private_key_jwt")
    request = agency.token_request(answer["code"], verifier)
    request["data"]["client_assertion"] = rs256.assertion()

    def send(headers):
        return provider.http.post("/token", headers=headers, **request)

    assert with_proof(provider, holder, TOKEN_URL, send).json()["error"] == "invalid_client"


# --- DPoP -----------------------------------------------------------------------------------


def test_fapi2_ensure_token_request_without_dpop_proof_fails(provider):
    holder, agency = Holder(), fapi_agency(provider)
    answer, verifier = code_through_par(provider, agency, holder)
    refused = redeem(provider, agency, None, answer["code"], verifier)
    assert refused.json()["error"] == "invalid_dpop_proof"


def test_fapi2_ensure_dpop_proof_by_another_key_fails(provider):
    """The push's proof bound the code to its key; another key cannot redeem it."""
    agency = fapi_agency(provider)
    answer, verifier = code_through_par(provider, agency, Holder())
    refused = redeem(provider, agency, Holder(), answer["code"], verifier)
    assert refused.json()["error"] == "invalid_dpop_proof"


def test_fapi2_ensure_dpop_proof_with_bad_iat_fails(provider):
    holder, agency = Holder(), fapi_agency(provider)
    answer, verifier = code_through_par(provider, agency, holder)
    request = agency.token_request(answer["code"], verifier)
    nonce = provider.http.post(
        "/token", headers={"DPoP": holder.proof("POST", TOKEN_URL)}, **request
    ).headers["dpop-nonce"]
    stale = holder.proof("POST", TOKEN_URL, nonce=nonce, iat=int(time.time()) - 3600)
    refused = provider.http.post("/token", headers={"DPoP": stale}, **request)
    assert refused.json()["error"] == "invalid_dpop_proof"


def test_fapi2_ensure_bound_token_without_its_proof_fails_at_userinfo(provider):
    holder, agency = Holder(), fapi_agency(provider)
    answer, verifier = code_through_par(provider, agency, holder)
    token = redeem(provider, agency, holder, answer["code"], verifier).json()["access_token"]
    assert provider.userinfo(token).status_code == 401


# --- the request itself -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"response_type": "code id_token"}, "unsupported_response_type"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"redirect_uri": "https://attacker.example/callback"}, "invalid_request"),
    ],
    ids=["code-id-token", "token", "unregistered-redirect-uri"],
)
def test_fapi2_ensure_bad_authorization_request_fails_at_par(provider, overrides, error):
    pushed, _ = push(provider, fapi_agency(provider), Holder(), **overrides)
    assert pushed.status_code == 400
    assert pushed.json()["error"] == error


@pytest.mark.parametrize("path", ["/par", "/token"])
def test_fapi2_ensure_wrong_http_method_fails(provider, path):
    assert provider.http.get(path).status_code == 405
