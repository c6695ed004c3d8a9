"""Revocation (RFC 7009), introspection (RFC 7662) and the client credentials grant."""

from __future__ import annotations

import pytest

from tests.web.test_refresh_tokens import OFFLINE, offline_agency, refresh


def revoke(provider, agency, token, **extra):
    return provider.http.post("/revoke", **agency.authenticated({"token": token, **extra}))


def introspect(provider, agency, token, **extra):
    response = provider.http.post("/introspect", **agency.authenticated({"token": token, **extra}))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()


def test_discovery_advertises_revocation_introspection_and_the_grants(provider):
    metadata = provider.http.get("/.well-known/openid-configuration").json()
    assert metadata["revocation_endpoint"].endswith("/revoke")
    assert metadata["introspection_endpoint"].endswith("/introspect")
    assert set(metadata["grant_types_supported"]) == {
        "authorization_code", "refresh_token", "client_credentials",
        "urn:ietf:params:oauth:grant-type:device_code",
    }  # fmt: skip
    assert "offline_access" in metadata["scopes_supported"]


def test_revoking_a_refresh_token_revokes_its_access_tokens(provider):
    citizen = provider.citizen()
    agency = offline_agency(provider)
    tokens = provider.tokens_for(agency, citizen["nik"], **OFFLINE)
    response = revoke(provider, agency, tokens["refresh_token"], token_type_hint="refresh_token")
    assert response.status_code == 200
    assert refresh(provider, agency, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert provider.userinfo(tokens["access_token"]).status_code == 401


def test_revoking_an_access_token_stops_it_at_userinfo(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    tokens = provider.tokens_for(agency, citizen["nik"])
    assert revoke(provider, agency, tokens["access_token"]).status_code == 200
    assert provider.userinfo(tokens["access_token"]).status_code == 401
    assert introspect(provider, agency, tokens["access_token"]) == {"active": False}


def test_revoking_an_unknown_token_is_not_an_error(provider):
    agency = provider.agency()
    assert revoke(provider, agency, "not-a-token-we-issued").status_code == 200


def test_a_client_cannot_revoke_another_clients_token(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    other = provider.agency()
    tokens = provider.tokens_for(agency, citizen["nik"])
    assert (
        revoke(provider, other, tokens["access_token"]).status_code == 200
    )  # as for an unknown token
    assert provider.userinfo(tokens["access_token"]).status_code == 200


def test_revocation_requires_client_authentication(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    tokens = provider.tokens_for(agency, citizen["nik"])
    agency.secret = "dgid_cs_wrong"
    response = revoke(provider, agency, tokens["access_token"])
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_introspection_describes_a_live_access_token_to_its_own_client(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    tokens = provider.tokens_for(agency, citizen["nik"])
    answer = introspect(provider, agency, tokens["access_token"])
    assert answer["active"] is True
    assert answer["client_id"] == agency.client_id
    assert answer["sub"] == provider.verify(tokens["id_token"])["sub"]
    assert answer["scope"] == "openid profile"
    assert answer["token_type"] == "Bearer"
    assert "name" not in answer  # never a claim value


def test_introspection_of_a_refresh_token(provider):
    citizen = provider.citizen()
    agency = offline_agency(provider)
    tokens = provider.tokens_for(agency, citizen["nik"], **OFFLINE)
    answer = introspect(provider, agency, tokens["refresh_token"], token_type_hint="refresh_token")
    assert answer["active"] is True
    assert answer["token_type"] == "refresh_token"
    assert answer["sub"] == provider.verify(tokens["id_token"])["sub"]


def test_another_clients_token_is_inactive_unless_asked_by_the_api_it_is_for(provider):
    citizen = provider.citizen()
    api_url = "https://api.pajak.example.go.id/v1"
    agency = provider.agency(resources=[api_url])
    other = provider.agency()
    api = provider.agency(resource_server=True, resource_identifier=api_url)
    another_api = provider.agency(
        resource_server=True, resource_identifier="https://api.bpjs.example.go.id"
    )
    for_the_agency = provider.tokens_for(agency, citizen["nik"])
    for_the_api = provider.tokens_for(agency, citizen["nik"], resource=api_url)
    assert introspect(provider, other, for_the_api["access_token"]) == {"active": False}
    assert introspect(provider, another_api, for_the_api["access_token"]) == {"active": False}
    assert introspect(provider, api, for_the_agency["access_token"]) == {"active": False}
    answer = introspect(provider, api, for_the_api["access_token"])
    assert answer["active"] is True
    assert answer["aud"] == api_url


@pytest.mark.parametrize("token", ["garbage", "a.b.c", ""])
def test_unknown_or_malformed_tokens_are_inactive(provider, token):
    agency = provider.agency()
    assert introspect(provider, agency, token) == {"active": False}


def test_an_expired_or_logged_out_token_is_inactive(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    tokens = provider.tokens_for(agency, citizen["nik"])
    claims = provider.verify(tokens["access_token"])
    expired = provider.key_store.snapshot().sign(
        {**claims, "exp": claims["iat"] - 1}, header={"typ": "at+jwt"}
    )
    assert introspect(provider, agency, expired) == {"active": False}


def test_public_clients_cannot_introspect(provider):
    citizen = provider.citizen()
    agency = provider.agency("none")
    tokens = provider.tokens_for(agency, citizen["nik"])
    response = provider.http.post(
        "/introspect", **agency.authenticated({"token": tokens["access_token"]})
    )
    assert response.status_code == 401


def machine_client(provider, scope="pajak.read pajak.write", **metadata):
    return provider.agency(
        grant_types=["client_credentials"],
        redirect_uris=[],
        scope=scope,
        **metadata,
    )


def client_credentials(provider, agency, **form):
    return provider.http.post(
        "/token", **agency.authenticated({"grant_type": "client_credentials", **form})
    )


def test_client_credentials_gives_a_token_for_the_registered_scopes(provider):
    agency = machine_client(provider)
    response = client_credentials(provider, agency, scope="pajak.read")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "pajak.read"
    assert "refresh_token" not in body
    assert "id_token" not in body
    claims = provider.verify(body["access_token"])
    assert claims["sub"] == agency.client_id
    assert introspect(provider, agency, body["access_token"])["active"] is True
    everything = client_credentials(provider, agency).json()
    assert everything["scope"] == "pajak.read pajak.write"


@pytest.mark.parametrize("scope", ["pajak.admin", "openid", "profile", "nik", "offline_access"])
def test_client_credentials_never_grants_unregistered_or_citizen_scopes(provider, scope):
    agency = machine_client(provider, scope="pajak.read openid profile")
    response = client_credentials(provider, agency, scope=scope)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_client_credentials_is_only_for_clients_registered_for_it(provider):
    agency = provider.agency(scope="openid profile pajak.read")
    response = client_credentials(provider, agency, scope="pajak.read")
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


def test_a_client_credentials_token_gets_no_citizen_data_and_can_be_revoked(provider):
    agency = machine_client(provider)
    token = client_credentials(provider, agency).json()["access_token"]
    assert provider.userinfo(token).status_code == 401
    assert revoke(provider, agency, token).status_code == 200
    assert introspect(provider, agency, token) == {"active": False}
