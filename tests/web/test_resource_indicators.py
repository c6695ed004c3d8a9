"""Resource indicators (RFC 8707): a client asks for a token made out to one agency API; its
``aud`` is then that API, which alone may introspect it, and UserInfo takes it only when it is
made out to UserInfo or to the client itself."""

from __future__ import annotations

import pytest
from authlib.integrations.httpx_client import OAuth2Client, OAuthError
from sqlalchemy.orm import Session

from digital_id.clients import service as clients
from digital_id.clients.metadata_fields import InvalidClientMetadataError
from tests.web.conftest import ISSUER
from tests.web.test_authorization_endpoint import redirected
from tests.web.test_refresh_tokens import OFFLINE, offline_agency, refresh
from tests.web.test_relying_party_interop import discover
from tests.web.test_revocation_and_introspection import client_credentials, machine_client

API = "https://api.pajak.example.go.id/v1"
OTHER_API = "https://api.bpjs.example.go.id"


def test_a_token_asked_for_an_api_is_made_out_to_it(provider):
    agency = provider.agency(resources=[API])
    tokens = provider.tokens_for(agency, provider.citizen()["nik"], resource=API)
    assert provider.verify(tokens["access_token"])["aud"] == API
    assert provider.verify(tokens["id_token"])["aud"] == agency.client_id


def test_userinfo_refuses_a_token_made_out_to_another_api(provider):
    agency = provider.agency(resources=[API])
    tokens = provider.tokens_for(agency, provider.citizen()["nik"], resource=API)
    refused = provider.userinfo(tokens["access_token"])
    assert refused.status_code == 401
    assert "invalid_token" in refused.headers["www-authenticate"]


@pytest.mark.parametrize("resource", [None, ISSUER + "/userinfo"], ids=["none", "userinfo"])
def test_userinfo_takes_a_token_for_the_client_or_for_userinfo(provider, resource):
    agency = provider.agency()
    citizen = provider.citizen()
    tokens = provider.tokens_for(agency, citizen["nik"], resource=resource)
    assert provider.verify(tokens["access_token"])["aud"] == (resource or agency.client_id)
    assert provider.userinfo(tokens["access_token"]).json()["name"] == citizen["full_name"]


@pytest.mark.parametrize(
    "resource",
    [OTHER_API, [API, API + "/more"], "https://api.pajak.example.go.id/v1#fragment"],
    ids=["not-registered-for-it", "two-resources", "fragment"],
)
def test_authorization_for_a_resource_the_client_may_not_reach_is_refused(provider, resource):
    agency = provider.agency(resources=[API, API + "/more"])
    query = [
        ("response_type", "code"),
        ("client_id", agency.client_id),
        ("redirect_uri", agency.redirect_uri),
        ("scope", "openid profile"),
        ("state", "state-123"),
        ("code_challenge", "x" * 43),
        ("code_challenge_method", "S256"),
        *(
            ("resource", value)
            for value in (resource if isinstance(resource, list) else [resource])
        ),
    ]
    answer = redirected(provider.http.get("/authorize", params=query, follow_redirects=False))
    assert answer["error"] == "invalid_target"
    assert answer["state"] == "state-123"


def test_the_code_and_the_refresh_token_keep_their_resource(provider):
    agency = offline_agency(provider, resources=[API, OTHER_API])
    code, verifier, _ = provider.code_for(
        agency, provider.citizen()["nik"], resource=API, **OFFLINE
    )
    elsewhere = provider.token(agency, code, verifier, resource=OTHER_API)
    assert elsewhere.status_code == 400
    assert elsewhere.json()["error"] == "invalid_target"

    code, verifier, _ = provider.code_for(
        agency, provider.citizen()["nik"], resource=API, **OFFLINE
    )
    tokens = provider.token(agency, code, verifier, resource=API).json()
    assert provider.verify(tokens["access_token"])["aud"] == API
    refused = refresh(provider, agency, tokens["refresh_token"], resource=OTHER_API)
    assert refused.json()["error"] == "invalid_target"
    renewed = refresh(provider, agency, tokens["refresh_token"]).json()
    assert provider.verify(renewed["access_token"])["aud"] == API


def test_a_client_acting_as_itself_asks_for_an_api(provider):
    machine = machine_client(provider, resources=[API])
    answer = client_credentials(provider, machine, resource=API)
    assert answer.status_code == 200, answer.text
    assert provider.verify(answer.json()["access_token"])["aud"] == API
    for resource in (OTHER_API, ISSUER + "/userinfo"):
        refused = client_credentials(provider, machine, resource=resource)
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_target"


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"resource_identifier": API}, "resource_identifier"),
        ({"resource_server": True, "resource_identifier": API + "#x"}, "resource_identifier"),
        ({"resource_server": True, "resource_identifier": "api.pajak"}, "resource_identifier"),
        ({"resources": ["not a uri"]}, "resources[0]"),
        ({"resources": [API, API]}, "resources"),
    ],
)
def test_a_registration_with_a_bad_resource_is_refused(provider, metadata, field):

    data = {"client_name": "API", "redirect_uris": ["https://api.example.go.id/cb"], **metadata}
    with Session(provider.engine) as session, pytest.raises(InvalidClientMetadataError) as refused:
        clients.register(session, data, production=False, active_algorithms={"RS256"})
    assert refused.value.field == field


def test_authlibs_client_asks_for_a_token_made_out_to_an_api(provider, issuer):
    """authlib's OAuth2Client, as an agency acting as itself: ``resource`` is a parameter of
    its token request like any other, and the token comes back made out to the API."""
    machine = machine_client(provider, resources=[API])
    metadata = discover(issuer)
    with OAuth2Client(machine.client_id, machine.secret, scope="pajak.read") as client:
        token = client.fetch_token(
            metadata["token_endpoint"], grant_type="client_credentials", resource=API
        )
        assert provider.verify(token["access_token"])["aud"] == API
        with pytest.raises(OAuthError) as refused:
            client.fetch_token(
                metadata["token_endpoint"], grant_type="client_credentials", resource=OTHER_API
            )
    assert refused.value.error == "invalid_target"
