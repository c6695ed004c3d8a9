"""Encrypted ID tokens and UserInfo answers (OpenID Connect Core 10.2): signed by us, then
encrypted to the agency's registered encryption key, so only the agency can read them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy.orm import Session

from digital_id.clients import service as clients
from digital_id.clients.jwks import ClientKeyResolver
from digital_id.clients.metadata_fields import InvalidClientMetadataError
from digital_id.outbound import Outbound
from tests.web.test_outbound_calls import AgencyHost

ALGORITHMS = ["RSA-OAEP-256", "ECDH-ES", "ECDH-ES+A256KW"]


def encryption_key(alg: str) -> RSAKey | ECKey:
    parameters = {"use": "enc", "alg": alg}
    if alg.startswith("RSA"):
        return RSAKey.generate_key(2048, parameters=parameters, auto_kid=True)
    return ECKey.generate_key("P-256", parameters=parameters, auto_kid=True)


def decrypted(token: str, key: Any, alg: str) -> tuple[dict[str, Any], bytes]:
    registry = jwe.JWERegistry(algorithms=[alg, "A256GCM"])
    opened = jwe.decrypt_compact(token, key, registry=registry)
    return dict(opened.protected), opened.plaintext or b""


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_an_id_token_is_signed_then_encrypted_to_the_agency(provider, alg):
    key = encryption_key(alg)
    agency = provider.agency(
        jwks=KeySet([key]).as_dict(private=False),
        id_token_encrypted_response_alg=alg,
        id_token_encrypted_response_enc="A256GCM",
    )
    citizen = provider.citizen()
    tokens = provider.tokens_for(agency, citizen["nik"])
    assert tokens["id_token"].count(".") == 4  # a JWE, not a JWS
    header, inner = decrypted(tokens["id_token"], key, alg)
    assert header == {"alg": alg, "enc": "A256GCM", "cty": "JWT", "kid": key.kid} | (
        {"epk": header["epk"]} if "epk" in header else {}
    )
    claims = provider.verify(inner.decode())
    assert claims["aud"] == agency.client_id
    assert claims["sub"] != citizen["nik"]
    # Another key cannot open it.
    with pytest.raises(JoseError):
        decrypted(tokens["id_token"], encryption_key(alg), alg)


@pytest.mark.parametrize("signed", [False, True], ids=["encrypted", "signed-and-encrypted"])
def test_userinfo_is_encrypted_to_the_agency(provider, signed):
    key = encryption_key("ECDH-ES")
    metadata: dict[str, Any] = {
        "jwks": KeySet([key]).as_dict(private=False),
        "userinfo_encrypted_response_alg": "ECDH-ES",
        "userinfo_encrypted_response_enc": "A256GCM",
    }
    if signed:
        metadata["userinfo_signed_response_alg"] = "ES256"
    agency = provider.agency(**metadata)
    citizen = provider.citizen()
    tokens = provider.tokens_for(agency, citizen["nik"])
    answer = provider.userinfo(tokens["access_token"])
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/jwt"
    header, inner = decrypted(answer.text, key, "ECDH-ES")
    if signed:
        assert header["cty"] == "JWT"
        claims = provider.verify(inner.decode())
        assert claims["aud"] == agency.client_id
    else:
        assert "cty" not in header
        claims = json.loads(inner)
    assert claims["name"] == citizen["full_name"]


def test_an_agency_that_asked_for_nothing_gets_plain_tokens(provider):
    tokens = provider.tokens_for(provider.agency(), provider.citizen()["nik"])
    assert tokens["id_token"].count(".") == 2


def test_discovery_lists_the_encryption_algorithms(provider):
    metadata = provider.http.get("/.well-known/openid-configuration").json()
    for purpose in ("id_token", "userinfo"):
        assert metadata[f"{purpose}_encryption_alg_values_supported"] == ALGORITHMS
        assert metadata[f"{purpose}_encryption_enc_values_supported"] == ["A256GCM"]


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"id_token_encrypted_response_enc": "A256GCM"}, "id_token_encrypted_response_enc"),
        ({"id_token_encrypted_response_alg": "RSA-OAEP-256"}, "id_token_encrypted_response_enc"),
        ({"id_token_encrypted_response_alg": "RSA1_5", "id_token_encrypted_response_enc": "A256GCM"}, "id_token_encrypted_response_alg"),
        ({"userinfo_encrypted_response_alg": "ECDH-ES", "userinfo_encrypted_response_enc": "A128CBC-HS256"}, "userinfo_encrypted_response_enc"),
        ({"id_token_encrypted_response_alg": "ECDH-ES", "id_token_encrypted_response_enc": "A256GCM", "jwks": None}, "id_token_encrypted_response_alg"),
        ({"id_token_encrypted_response_alg": "ECDH-ES", "id_token_encrypted_response_enc": "A256GCM"}, "id_token_encrypted_response_alg"),
    ],
    ids=["enc-without-alg", "alg-without-enc", "rsa1_5", "cbc", "no-keys", "no-ec-key"],
)  # fmt: skip
def test_a_registration_that_cannot_be_encrypted_to_is_refused(provider, metadata, field):
    data = {
        "client_name": "Pajak",
        "redirect_uris": ["https://pajak.example.go.id/callback"],
        "jwks": KeySet([encryption_key("RSA-OAEP-256")]).as_dict(private=False),
        **metadata,
    }
    data = {name: value for name, value in data.items() if value is not None}
    with Session(provider.engine) as session, pytest.raises(InvalidClientMetadataError) as refused:
        clients.register(session, data, production=False, active_algorithms={"RS256", "ES256"})
    assert refused.value.field == field


def test_an_agency_rotating_its_published_encryption_key_is_followed(provider):
    """With ``jwks_uri`` the key is the agency's published one: its next published key is
    used once the cached set expires (here at once, with no cache time)."""

    host = AgencyHost()
    try:
        old, new = encryption_key("RSA-OAEP-256"), encryption_key("RSA-OAEP-256")
        resolver = ClientKeyResolver(
            Outbound(deadline_seconds=5, allow_loopback=True), ttl_seconds=0, refetch_seconds=0
        )
        registration = {"jwks_uri": host.url}
        host.publish(old)
        assert resolver.encryption_key("agency", registration, "RSA-OAEP-256").kid == old.kid
        host.publish(new)
        assert resolver.encryption_key("agency", registration, "RSA-OAEP-256").kid == new.kid
    finally:
        host.close()


def test_an_id_token_is_encrypted_to_a_key_published_at_jwks_uri(provider):

    host = AgencyHost()
    try:
        key = encryption_key("RSA-OAEP-256")
        host.publish(key)
        agency = provider.agency(
            jwks_uri=host.url,
            id_token_encrypted_response_alg="RSA-OAEP-256",
            id_token_encrypted_response_enc="A256GCM",
        )
        tokens = provider.tokens_for(agency, provider.citizen()["nik"])
        header, inner = decrypted(tokens["id_token"], key, "RSA-OAEP-256")
        assert header["kid"] == key.kid
        assert provider.verify(inner.decode())["aud"] == agency.client_id
    finally:
        host.close()
