"""Verified claims (OpenID Connect for Identity Assurance 1.0) against the running app, on
SQLite and PostgreSQL, after the OpenID Foundation's identity-assurance test modules: the
happy path (with empty objects, with essential false), unknown claims (essential, with
special characters), a requested value omitted, and verified claims only in the ID token or
only at UserInfo."""

from __future__ import annotations

import json
from typing import Any

from tests.web.conftest import ISSUER, Provider

SCOPE = "openid profile"


def asked(target: str, claims: dict[str, Any], verification: Any = None) -> str:
    request = {
        "verification": verification if verification is not None else {"trust_framework": None}
    }
    request["claims"] = claims
    return json.dumps({target: {"verified_claims": request}})


def released(
    provider: Provider, claims_parameter: str, registered: str = "openid profile"
) -> tuple[dict, dict]:
    """The ID token's claims and the UserInfo answer for a login asking ``claims_parameter``,
    by an agency registered for the scopes ``registered``."""
    citizen = provider.citizen()
    agency = provider.agency(scope=registered)
    tokens = provider.tokens_for(agency, citizen["nik"], scope=SCOPE, claims=claims_parameter)
    userinfo = provider.userinfo(tokens["access_token"])
    assert userinfo.status_code == 200, userinfo.text
    return provider.verify(tokens["id_token"]), userinfo.json()


def check_verification(verified: dict) -> None:
    verification = verified["verification"]
    assert verification["trust_framework"] == "id_dukcapil"
    assert verification["time"].endswith("Z")
    (evidence,) = verification["evidence"]
    assert evidence["type"] == "electronic_record"
    assert evidence["record"]["type"] == "population_register"
    assert evidence["record"]["source"]["country_code"] == "IDN"
    assert evidence["record"]["version"] == "1"


def test_discovery_advertises_identity_assurance(provider):
    metadata = provider.http.get("/.well-known/openid-configuration").json()
    assert metadata["verified_claims_supported"] is True
    assert metadata["trust_frameworks_supported"] == ["id_dukcapil"]
    assert metadata["evidence_supported"] == ["electronic_record"]
    assert "name" in metadata["claims_in_verified_claims_supported"]
    assert "sub" not in metadata["claims_in_verified_claims_supported"]
    assert metadata["issuer"] == ISSUER


def test_ida_happy_path(provider):
    id_token, _ = released(provider, asked("id_token", {"name": None, "birthdate": None}))
    verified = id_token["verified_claims"]
    check_verification(verified)
    assert set(verified["claims"]) == {"name", "birthdate"}
    assert verified["claims"]["birthdate"] == "1990-10-20"


def test_ida_happy_path_with_empty_objects(provider):
    id_token, _ = released(provider, asked("id_token", {"name": {}}, verification={}))
    check_verification(id_token["verified_claims"])
    assert list(id_token["verified_claims"]["claims"]) == ["name"]


def test_ida_happy_path_with_essential_false(provider):
    id_token, _ = released(provider, asked("id_token", {"name": {"essential": False}}))
    assert list(id_token["verified_claims"]["claims"]) == ["name"]


def test_ida_unknown_claim_is_left_out(provider):
    id_token, _ = released(provider, asked("id_token", {"name": None, "shoe_size": None}))
    assert list(id_token["verified_claims"]["claims"]) == ["name"]


def test_ida_unknown_essential_claim_alone_gets_no_verified_claims(provider):
    id_token, userinfo = released(provider, asked("id_token", {"shoe_size": {"essential": True}}))
    assert "verified_claims" not in id_token
    assert "verified_claims" not in userinfo


def test_ida_unknown_claim_with_special_characters_is_left_out(provider):
    parameter = asked("id_token", {"name": None, 'näme/😀"<x>': None, "": None})
    id_token, _ = released(provider, parameter)
    assert list(id_token["verified_claims"]["claims"]) == ["name"]


def test_ida_a_requested_random_value_is_omitted(provider):
    parameter = asked("id_token", {"name": {"value": "RANDOM-7f3a9c"}, "birthdate": None})
    id_token, _ = released(provider, parameter)
    assert list(id_token["verified_claims"]["claims"]) == ["birthdate"]


def test_ida_another_trust_framework_gets_nothing(provider):
    parameter = asked(
        "id_token", {"name": None}, verification={"trust_framework": {"value": "eidas"}}
    )
    id_token, _ = released(provider, parameter)
    assert "verified_claims" not in id_token


def test_ida_verified_claims_only_in_the_id_token(provider):
    id_token, userinfo = released(provider, asked("id_token", {"name": None}))
    assert "verified_claims" in id_token
    assert "verified_claims" not in userinfo
    assert userinfo["name"]  # the profile scope's plain claims are at UserInfo as ever


def test_ida_verified_claims_only_at_userinfo(provider):
    id_token, userinfo = released(provider, asked("userinfo", {"name": None, "gender": None}))
    assert "verified_claims" not in id_token
    check_verification(userinfo["verified_claims"])
    assert set(userinfo["verified_claims"]["claims"]) == {"name", "gender"}


def test_ida_a_claim_outside_the_agencys_registration_is_not_verified_either(provider):
    id_token, _ = released(provider, asked("id_token", {"name": None, "nik": None}))
    assert list(id_token["verified_claims"]["claims"]) == ["name"]  # no nik scope registered
    registered, _ = released(
        provider, asked("id_token", {"name": None, "nik": None}), "openid profile nik"
    )
    assert set(registered["verified_claims"]["claims"]) == {"name", "nik"}


def test_ida_a_malformed_request_is_invalid_request(provider):
    agency = provider.agency()
    for malformed in (
        {"id_token": {"verified_claims": {"claims": {"name": None}}}},
        {"id_token": {"verified_claims": {"verification": {}, "claims": {}}}},
        {"id_token": {"verified_claims": [{"verification": {}, "claims": "name"}]}},
        {"userinfo": {"verified_claims": "yes"}},
    ):
        answer = provider.authorize(
            agency, claims=json.dumps(malformed), code_challenge="x" * 43,
            code_challenge_method="S256",
        )  # fmt: skip
        assert answer.status_code in (302, 303), answer.text[:500]
        assert "error=invalid_request" in answer.headers["location"]


def test_the_consent_page_asks_for_the_verified_claims(provider):
    citizen = provider.citizen()
    agency = provider.agency(scope="openid profile nik")
    page = provider.log_in(
        provider.authorize(
            agency, scope="openid", claims=asked("id_token", {"nik": None}),
            code_challenge="x" * 43, code_challenge_method="S256",
        ),
        citizen["nik"],
    )  # fmt: skip
    assert 'name="decision"' in page.text
    assert "NIK" in page.text
