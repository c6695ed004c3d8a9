"""Registering and managing agency clients, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from digital_id.clients import service
from digital_id.clients.metadata_fields import InvalidClientMetadataError
from digital_id.clients.models import Client
from tests.local_http import LocalServer, QuietHandler

REGISTRATION = {
    "client_name#id": "Layanan Pajak",
    "client_name#en": "Tax Service",
    "redirect_uris": ["https://pajak.example.go.id/callback"],
    "grant_types": ["authorization_code", "refresh_token"],
    "scope": "openid profile",
}
RS256 = {"RS256"}


def register(session, data=REGISTRATION, algorithms=RS256):
    registered = service.register(session, data, production=True, active_algorithms=algorithms)
    session.commit()
    return registered


def test_a_secret_client_gets_a_high_entropy_secret_stored_only_as_a_hash(session):
    registered = register(session)
    secret = registered.client_secret
    assert secret is not None
    assert secret.startswith("dgid_cs_")
    assert len(secret) >= 40
    assert registered.client.client_id.startswith("dgid_")
    assert service.verify_secret(registered.client, secret)
    assert not service.verify_secret(registered.client, secret + "x")
    row = session.execute(text("SELECT * FROM clients")).one()
    assert secret not in repr(tuple(row))


def test_the_stored_registration_uses_rfc_7591_names_and_never_a_secret(session):
    registered = register(session)
    document = service.registration_document(session.get(Client, registered.client.id))
    assert document["client_id"] == registered.client.client_id
    assert document["client_name"] == "Layanan Pajak"
    assert document["client_name#en"] == "Tax Service"
    assert document["redirect_uris"] == ["https://pajak.example.go.id/callback"]
    assert document["token_endpoint_auth_method"] == "client_secret_basic"
    assert document["subject_type"] == "pairwise"
    assert document["enabled"] is True
    assert "client_secret" not in document


@pytest.mark.parametrize("method", ["none", "private_key_jwt"])
def test_public_and_key_clients_get_no_secret(session, method):
    from joserfc.jwk import ECKey

    public = ECKey.generate_key("P-256", private=True).as_dict(private=False)
    data = {**REGISTRATION, "token_endpoint_auth_method": method, "jwks": {"keys": [public]}}
    registered = register(session, data)
    assert registered.client_secret is None
    assert registered.client.client_secret_hash is None
    assert not service.verify_secret(registered.client, "anything")


def test_a_client_needs_an_active_key_for_its_signing_algorithm(session):
    data = {**REGISTRATION, "id_token_signed_response_alg": "ES256"}
    with pytest.raises(InvalidClientMetadataError, match="no active ES256 signing key"):
        register(session, data)
    session.rollback()
    assert session.scalars(select(Client)).all() == []
    assert (
        register(session, data, algorithms={"RS256", "ES256"}).client.registration[
            "id_token_signed_response_alg"
        ]
        == "ES256"
    )


def test_update_keeps_the_secret_and_a_refused_update_changes_nothing(session):
    registered = register(session)
    client_id, secret = registered.client.client_id, registered.client_secret
    changed = {**REGISTRATION, "redirect_uris": ["https://pajak.example.go.id/cb2"]}
    updated = service.update(session, client_id, changed, production=True, active_algorithms=RS256)
    session.commit()
    assert updated.client_secret is None
    assert service.verify_secret(service.get(session, client_id), secret)

    bad = {**REGISTRATION, "redirect_uris": ["https://a.example/cb", "https://a.example/cb#x"]}
    with pytest.raises(
        InvalidClientMetadataError, match=r"redirect_uris\[1\]: fragments are not allowed"
    ):
        service.update(session, client_id, bad, production=True, active_algorithms=RS256)
    session.rollback()
    assert service.get(session, client_id).registration["redirect_uris"] == [
        "https://pajak.example.go.id/cb2"
    ]


def test_moving_to_and_from_a_secret_method_issues_and_drops_the_secret(session):
    public = register(session, {**REGISTRATION, "token_endpoint_auth_method": "none"})
    client_id = public.client.client_id
    to_secret = service.update(
        session, client_id, REGISTRATION, production=True, active_algorithms=RS256
    )
    assert to_secret.client_secret is not None
    back = service.update(
        session,
        client_id,
        {**REGISTRATION, "token_endpoint_auth_method": "none"},
        production=True,
        active_algorithms=RS256,
    )
    assert back.client.client_secret_hash is None


def test_rotate_secret_replaces_the_old_one(session):
    registered = register(session)
    old = registered.client_secret
    rotated = service.rotate_secret(session, registered.client.client_id)
    session.commit()
    client = service.get(session, registered.client.client_id)
    assert rotated.client_secret != old
    assert service.verify_secret(client, rotated.client_secret)
    assert not service.verify_secret(client, old)


def test_rotate_secret_is_refused_for_a_client_without_one(session):
    registered = register(session, {**REGISTRATION, "token_endpoint_auth_method": "none"})
    with pytest.raises(service.ClientError, match="authenticates with none, not a client secret"):
        service.rotate_secret(session, registered.client.client_id)


def test_disable_and_enable(session):
    client_id = register(session).client.client_id
    assert service.set_enabled(session, client_id, enabled=False).enabled is False
    assert service.used_algorithms(session) == set()
    assert service.set_enabled(session, client_id, enabled=True).enabled is True
    assert service.used_algorithms(session) == {"RS256"}


def test_unknown_client_id(session):
    with pytest.raises(service.UnknownClientError, match="no client with client_id dgid_nope"):
        service.get(session, "dgid_nope")


class SectorHost:
    """An agency's host serving its sector identifier document."""

    def __init__(self, document: object) -> None:
        import json

        body = json.dumps(document).encode()
        self.fetches = 0
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.local = LocalServer(Handler, "/sector.json")
        self.url = self.local.url

    def close(self) -> None:
        self.local.close()


TWO_HOSTS = ["https://pajak.example.go.id/callback", "https://m.pajak.example.go.id/callback"]


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (TWO_HOSTS, None),
        ([*TWO_HOSTS, "https://other.example/cb"], None),
        (TWO_HOSTS[:1], "does not list the redirect URI"),
        ({"redirect_uris": TWO_HOSTS}, "JSON array"),
    ],
)
def test_a_sector_identifier_is_fetched_and_must_list_every_redirect_uri(
    session, document, problem
):
    """OpenID Connect Core 1.0 section 8.1: otherwise a client on another host could name an
    agency's sector and be given that agency's pairwise subjects."""
    host = SectorHost(document)
    data = {**REGISTRATION, "redirect_uris": TWO_HOSTS, "sector_identifier_uri": host.url}
    try:
        if problem is None:
            registered = service.register(session, data, production=False, active_algorithms=RS256)
            assert registered.client.registration["sector_identifier_uri"] == host.url
        else:
            with pytest.raises(InvalidClientMetadataError, match=problem) as refused:
                service.register(session, data, production=False, active_algorithms=RS256)
            assert refused.value.field == "sector_identifier_uri"
        assert host.fetches == 1
    finally:
        host.close()


def test_an_update_fetches_the_sector_identifier_again(session):
    host = SectorHost(TWO_HOSTS[:1])
    data = {**REGISTRATION, "sector_identifier_uri": host.url}
    try:
        client_id = service.register(
            session, data, production=False, active_algorithms=RS256
        ).client.client_id
        with pytest.raises(InvalidClientMetadataError, match="does not list"):
            service.update(
                session,
                client_id,
                {**data, "redirect_uris": TWO_HOSTS},
                production=False,
                active_algorithms=RS256,
            )
        assert host.fetches == 2
    finally:
        host.close()


def test_in_production_a_sector_identifier_must_be_https(session):
    data = {**REGISTRATION, "sector_identifier_uri": "http://sector.example.go.id/s.json"}
    with pytest.raises(InvalidClientMetadataError, match="https"):
        register(session, data)


@pytest.mark.parametrize(
    "target",
    [
        "https://127.0.0.1/x",
        "https://localhost/x",
        "https://169.254.169.254/latest/meta-data",
        "https://10.1.2.3/x",
        "https://[::1]/x",
        "https://[::ffff:192.168.0.1]/x",
    ],
)
@pytest.mark.parametrize("field", ["jwks_uri", "sector_identifier_uri", "backchannel_logout_uri"])
def test_in_production_a_called_uri_may_not_name_a_private_address(session, field, target):
    data = {**REGISTRATION, field: target}
    if field == "jwks_uri":
        data |= {"token_endpoint_auth_method": "private_key_jwt"}
    with pytest.raises(InvalidClientMetadataError, match="private, loopback") as refused:
        register(session, data)
    assert refused.value.field == field
