"""Access tokens are signed with ES256 unless DIGITAL_ID_ACCESS_TOKEN_ALGORITHM says RS256;
ID tokens stay RS256; a token signed before a switch still works after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from joserfc import jws

from digital_id.app import create_app
from digital_id.keys import KeyStoreError
from tests.web.conftest import ISSUER, Provider
from tests.web.test_revocation_and_introspection import client_credentials, machine_client


def algorithm_of(token: str) -> str:
    return str(jws.extract_compact(token.encode()).protected["alg"])


@pytest.fixture
def rs256_provider(provider: Provider) -> Iterator[Provider]:
    """A second server on the same database and keys, configured for RS256 access tokens."""
    settings = provider.settings.model_copy(update={"access_token_algorithm": "RS256"})
    with TestClient(create_app(settings), base_url=ISSUER) as http:
        yield Provider(http, provider.engine, provider.key_store, settings, provider.tmp_path)


def test_access_tokens_are_es256_and_id_tokens_rs256_by_default(provider):
    citizen = provider.citizen()
    tokens = provider.tokens_for(provider.agency(), citizen["nik"])
    assert algorithm_of(tokens["access_token"]) == "ES256"
    assert algorithm_of(tokens["id_token"]) == "RS256"
    assert provider.userinfo(tokens["access_token"]).status_code == 200
    machine = machine_client(provider)
    issued = client_credentials(provider, machine, scope="pajak.read").json()["access_token"]
    assert algorithm_of(issued) == "ES256"
    assert provider.verify(issued)["sub"] == machine.client_id
    metadata = provider.http.get("/.well-known/openid-configuration").json()
    assert metadata["access_token_signing_alg_values_supported"] == ["ES256"]


def test_the_setting_signs_access_tokens_with_rs256(rs256_provider):
    citizen = rs256_provider.citizen()
    tokens = rs256_provider.tokens_for(rs256_provider.agency(), citizen["nik"])
    assert algorithm_of(tokens["access_token"]) == "RS256"
    metadata = rs256_provider.http.get("/.well-known/openid-configuration").json()
    assert metadata["access_token_signing_alg_values_supported"] == ["RS256"]


def test_access_tokens_signed_before_a_switch_still_work_after_it(provider, rs256_provider):
    citizen = provider.citizen()
    before = rs256_provider.tokens_for(rs256_provider.agency(), citizen["nik"])["access_token"]
    assert algorithm_of(before) == "RS256"
    # The ES256 server (the default) takes the RS256 token at UserInfo and introspection.
    assert provider.userinfo(before).status_code == 200
    after = provider.tokens_for(provider.agency(), citizen["nik"])["access_token"]
    assert rs256_provider.userinfo(after).status_code == 200


def test_a_server_refuses_to_start_without_an_active_access_token_key(settings, key_store):
    key_store.generate("RS256", size=2048)
    with (
        pytest.raises(KeyStoreError, match="no active ES256 signing key"),
        TestClient(create_app(settings)),
    ):
        pass
